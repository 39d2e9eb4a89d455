"""Saving and lazy loading on a real dask.distributed LocalCluster of worker processes (issue 14).

Local stores and the session's moto S3 server; one cluster per module (``dist_testing``).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest

pytest.importorskip("zarr")
da = pytest.importorskip("dask.array")

from dist_testing import client, cluster, gate_blocks, started_pid, write_pool_threads  # noqa: E402,F401
from s3_testing import s3_options  # noqa: E402

import distributed  # noqa: E402

from polystore.exceptions import ImageSaveError  # noqa: E402
from polystore.filemanager import FileManager  # noqa: E402
from polystore.zarr import ZarrBackend  # noqa: E402
from polystore.zarr._ome import _downsample_yx  # noqa: E402

SHAPE = (2, 3, 5, 150, 130)  # tczyx, odd sizes: edge chunks and dropped odd rows on the levels
SMALL = (2, 2, 3, 70, 66)  # on S3: few objects (the bucket fixture deletes them one by one)
CHUNKS = (1, 1, 2, 32, 32)


def _image(seed: int = 0, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 60000, size=shape, dtype=np.uint16)


def _tree(root: pathlib.Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _write_tasks(stream: Any) -> int:
    """Blocks written by the workers (one ``write_block-*`` key each)."""
    return sum(1 for t in stream.data if str(t.get("key", "")).startswith("('write_block-"))


def test_save_on_cluster_writes_what_a_local_save_writes(client: Any, tmp_path: pathlib.Path) -> None:
    a = _image()
    data = da.from_array(a, chunks=(1, 2, 3, 70, 70))  # not the zarr grid: rechunked to it
    backend = ZarrBackend()
    with distributed.get_task_stream(client) as stream:
        backend.save(data, tmp_path / "c.zarr/A/1/0", axes="tczyx", pyramid_levels=2, chunks=CHUNKS)
    workers = {t["worker"] for t in stream.data if "write_block" in str(t.get("key", ""))}
    assert _write_tasks(stream) > 1 and workers  # written by tasks on the workers
    backend.save(data, tmp_path / "l.zarr/A/1/0", axes="tczyx", pyramid_levels=2, chunks=CHUNKS, client=False)
    assert _tree(tmp_path / "c.zarr/A/1/0") == _tree(tmp_path / "l.zarr/A/1/0")  # byte for byte, metadata too
    np.testing.assert_array_equal(backend.load(tmp_path / "c.zarr/A/1/0"), a)
    level2 = _downsample_yx(_downsample_yx(a, "tczyx"), "tczyx")
    np.testing.assert_array_equal(backend.load(tmp_path / "c.zarr/A/1/0", level=2), level2)


def test_a_worker_encodes_with_as_many_threads_as_dask_gave_it(client: Any, tmp_path: pathlib.Path) -> None:
    """One thread per worker (the cluster's setting), so a second worker process adds a core (issue 14)."""
    if os.environ.get("POLYSTORE_ZARR_THREADS"):
        pytest.skip("POLYSTORE_ZARR_THREADS overrides the pool size")
    data = da.from_array(_image(11), chunks=(1, 3, 5, 64, 64))
    ZarrBackend().save(data, tmp_path / "t.zarr/img", axes="tczyx", chunks=CHUNKS)
    nthreads = client.nthreads()
    sizes = client.run(write_pool_threads)
    assert set(sizes) == set(nthreads)
    for worker, size in sizes.items():
        assert size == nthreads[worker] == 1  # not one thread per core of the machine


def test_plain_array_and_filemanager_client_keyword(cluster: Any, tmp_path: pathlib.Path) -> None:
    a = np.arange(7 * 90 * 50, dtype=np.float32).reshape(7, 90, 50)
    fm = FileManager()
    with distributed.Client(cluster, set_as_default=False) as c:
        with distributed.get_task_stream(c) as stream:
            fm.save(da.from_array(a, chunks=(3, 40, 50)), tmp_path / "s.zarr/x", "zarr", chunks=(2, 16, 16), client=c)
        assert _write_tasks(stream) > 1
    np.testing.assert_array_equal(fm.load(tmp_path / "s.zarr/x", "zarr"), a)


def test_without_a_client_the_save_is_local_and_the_core_imports_no_distributed(tmp_path: pathlib.Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys, numpy as np
        import polystore, polystore.zarr
        from polystore.zarr import ZarrBackend
        print("distributed" in sys.modules, "dask" in sys.modules)
        import dask.array as da
        ZarrBackend().save(da.ones((4, 64, 64), chunks=(1, 64, 64)), {str(tmp_path / "n.zarr")!r}, axes="zyx")
        import distributed  # dask's own compute imports it; no client was made
        try:
            distributed.default_client()
        except ValueError:
            print("no client")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False", "no", "client"]


def test_a_failing_task_publishes_nothing_and_keeps_the_old_image(client: Any, tmp_path: pathlib.Path) -> None:
    backend = ZarrBackend()
    path = tmp_path / "f.zarr/A/1/0"
    old = _image(1)
    backend.save(old, path, axes="tczyx", chunks=CHUNKS)

    def boom(block: np.ndarray, block_info: Any = None) -> np.ndarray:
        if block_info[0]["chunk-location"][0] == 1:
            raise RuntimeError("bad block")
        return block

    bad = da.from_array(_image(2), chunks=(1, 3, 5, 150, 130)).map_blocks(boom, dtype=np.uint16)
    with pytest.raises(ImageSaveError, match="bad block"):
        backend.save(bad, path, axes="tczyx", pyramid_levels=1, chunks=CHUNKS)
    np.testing.assert_array_equal(backend.load(path), old)
    assert json.loads((path / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]["datasets"][-1]["path"] == "0"
    backend.cleanup(tmp_path / "f.zarr")
    assert not [p for p in (tmp_path / "f.zarr/A/1").iterdir() if p.name != "0" and p.name != "zarr.json"]


def test_lazy_load_runs_on_the_workers(client: Any, tmp_path: pathlib.Path) -> None:
    a = _image(3)
    backend = ZarrBackend()
    backend.save(a, tmp_path / "z.zarr/img", axes="tczyx", chunks=CHUNKS)
    lazy = backend.load(tmp_path / "z.zarr/img", lazy=True)
    with distributed.get_task_stream(client) as stream:
        got = lazy[:, 1].compute()
    np.testing.assert_array_equal(got, a[:, 1])
    assert {t["worker"] for t in stream.data}  # computed by the workers, not here


@pytest.mark.s3
def test_save_and_lazy_load_on_s3(client: Any, s3_server: str, bucket: str) -> None:
    pytest.importorskip("s3fs")
    a = _image(4, SMALL)
    backend = ZarrBackend(root=f"s3://{bucket}", storage_options=s3_options(s3_server))
    with distributed.get_task_stream(client) as stream:
        backend.save(da.from_array(a, chunks=(1, 2, 3, 40, 40)), "p.zarr/A/1/0", axes="tczyx", pyramid_levels=1, chunks=CHUNKS)
    assert _write_tasks(stream) > 1
    fresh = ZarrBackend(root=f"s3://{bucket}", storage_options=s3_options(s3_server))
    np.testing.assert_array_equal(fresh.load("p.zarr/A/1/0"), a)
    np.testing.assert_array_equal(fresh.load("p.zarr/A/1/0", level=1), _downsample_yx(a, "tczyx"))
    lazy = fresh.load("p.zarr/A/1/0", lazy=True)
    with distributed.get_task_stream(client) as stream:
        np.testing.assert_array_equal(lazy.compute(), a)
    assert stream.data
    # what travels to the workers is the store's settings, never a live s3fs filesystem
    import pickle

    blob = pickle.dumps(fresh._locate("p.zarr").fs)
    assert b"s3fs" not in blob and b"endpoint_url" in blob


def _kill_target(kind: str, tmp_path: pathlib.Path, s3_server: str | None, bucket: str | None) -> tuple[ZarrBackend, str]:
    if kind == "local":
        return ZarrBackend(root=tmp_path / "store"), "k.zarr/A/1/0"
    assert s3_server is not None and bucket is not None
    return ZarrBackend(root=f"s3://{bucket}", storage_options=s3_options(s3_server)), "k.zarr/A/1/0"


def _kill_setup(kind: str, tmp_path: pathlib.Path, request: pytest.FixtureRequest) -> tuple[Any, ...]:
    """An old image saved at the target, and an empty gates folder; (backend, path, shape, old, gates, s3, bucket)."""
    s3_server = request.getfixturevalue("s3_server") if kind == "s3" else None
    bucket = request.getfixturevalue("bucket") if kind == "s3" else None
    backend, path = _kill_target(kind, tmp_path, s3_server, bucket)
    shape = SHAPE if kind == "local" else SMALL
    old = _image(5, shape)
    backend.save(old, path, axes="tczyx", chunks=CHUNKS)
    gates = tmp_path / "gates"
    gates.mkdir()
    return backend, path, shape, old, gates, s3_server, bucket


def _keys(s3_server: str, bucket: str, prefix: str = "") -> list[str]:
    """Every object key under ``prefix``, listed with boto3 (an s3fs listing would fill the shared cache)."""
    import boto3

    s3 = boto3.client(
        "s3", endpoint_url=s3_server, aws_access_key_id="testing", aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def _wait_for_written_chunks(kind: str, tmp_path: pathlib.Path, s3_server: str | None, bucket: str | None) -> None:
    import time

    end = time.monotonic() + 120
    while time.monotonic() < end:
        if kind == "local":  # the hidden build folder of the save
            found = [p for p in (tmp_path / "store/k.zarr/A/1").glob(".0.polystore-tmp-*/0/c/*/*/*/*/*")]
        else:  # the save's new generation inside the image (no metadata names it yet)
            assert s3_server is not None and bucket is not None
            found = [k for k in _keys(s3_server, bucket, "k.zarr/A/1/0/gen-") if "/0/c/" in k]
        if found:
            return
        time.sleep(0.05)
    raise AssertionError("no block was written while one was held")


@pytest.mark.parametrize("kind", ["local", pytest.param("s3", marks=pytest.mark.s3)])
def test_worker_killed_mid_save(client: Any, tmp_path: pathlib.Path, request: pytest.FixtureRequest, kind: str) -> None:
    import threading

    backend, path, shape, old, gates, s3_server, bucket = _kill_setup(kind, tmp_path, request)
    new = _image(6, shape)
    data = gate_blocks(da.from_array(new, chunks=shape[:3] + (64, 64)), gates)  # = the write blocks
    outcome: list[BaseException | None] = []

    def save() -> None:
        try:
            backend.save(data, path, axes="tczyx", pyramid_levels=1, chunks=CHUNKS)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - inspected below
            outcome.append(exc)

    thread = threading.Thread(target=save)
    thread.start()
    pid = started_pid(gates)
    _wait_for_written_chunks(kind, tmp_path, s3_server, bucket)  # other blocks are on the store already: mid-write
    os.kill(pid, 9)  # SIGKILL the worker process while the save runs
    (gates / "go").write_text("")
    thread.join(timeout=240)
    assert not thread.is_alive()
    fresh, _ = _kill_target(kind, tmp_path, s3_server, bucket)
    if outcome[0] is None:  # dask reran the lost tasks: complete and pixel-exact
        np.testing.assert_array_equal(fresh.load(path), new)
        np.testing.assert_array_equal(fresh.load(path, level=1), _downsample_yx(new, "tczyx"))
    else:
        assert isinstance(outcome[0], ImageSaveError)
        np.testing.assert_array_equal(fresh.load(path), old)  # the old image, whole
    client.wait_for_workers(2, timeout=120)


_CLIENT_SCRIPT = """
import sys, numpy as np, dask.array as da, distributed
sys.path.insert(0, {tests!r})
from dist_testing import gate_blocks
from s3_testing import s3_options
from polystore.zarr import ZarrBackend
import pathlib
root, path, gates, endpoint = sys.argv[1:5]
backend = ZarrBackend(root=root, storage_options=s3_options(endpoint) if endpoint else None)
new = np.random.default_rng(7).integers(0, 60000, size={shape!r}, dtype=np.uint16)
with distributed.Client({address!r}):
    backend.save(gate_blocks(da.from_array(new, chunks=new.shape[:3] + (32, 32)), pathlib.Path(gates)), path,
                 axes="tczyx", chunks={chunks!r})
print("saved")
"""


def _wait_until_workers_idle(address: str) -> None:
    """Wait until no worker executes a task (tasks of a killed client still run to their end)."""
    import time

    with distributed.Client(address, timeout=30) as observer:
        end = time.monotonic() + 120
        while time.monotonic() < end:
            busy = observer.run(lambda dask_worker: dask_worker.state.executing_count)
            if not any(busy.values()):
                return
            time.sleep(0.1)
    raise AssertionError("the workers still run the killed client's tasks after 120 s")


@pytest.mark.parametrize("kind", ["local", pytest.param("s3", marks=pytest.mark.s3)])
def test_client_killed_mid_save_publishes_nothing(
    cluster: Any, tmp_path: pathlib.Path, request: pytest.FixtureRequest, kind: str
) -> None:
    backend, path, shape, old, gates, s3_server, bucket = _kill_setup(kind, tmp_path, request)
    script = _CLIENT_SCRIPT.format(
        tests=str(pathlib.Path(__file__).parent), shape=shape, chunks=CHUNKS, address=cluster.scheduler_address
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(backend.root), path, str(gates), s3_server or ""],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        started_pid(gates)  # a task of the save is running on a worker
        proc.kill()  # the client disappears mid-save
        proc.wait(timeout=60)
    finally:
        (gates / "go").write_text("")  # let the orphaned task end
        if proc.poll() is None:
            proc.kill()
        _wait_until_workers_idle(cluster.scheduler_address)  # its writes land now, not in a later test
    assert "saved" not in (proc.stdout.read() if proc.stdout else "")
    fresh, _ = _kill_target(kind, tmp_path, s3_server, bucket)
    np.testing.assert_array_equal(fresh.load(path), old)  # the old image, whole
    assert fresh.list_dir("k.zarr/A/1") == ["0"]  # the orphaned tasks' chunks are not listed
    if kind == "s3":  # they are in a generation no metadata names; cleanup deletes it
        assert s3_server is not None and bucket is not None
        assert [k for k in _keys(s3_server, bucket) if "/gen-" in k]
        removed = fresh.cleanup("k.zarr")
        assert len(removed) == 1 and removed[0].rpartition("/")[2].startswith("gen-"), removed
        assert not [k for k in _keys(s3_server, bucket) if "/gen-" in k]
        np.testing.assert_array_equal(fresh.load(path), old)


def _boom(block: np.ndarray, block_info: Any = None) -> np.ndarray:
    if block_info[0]["chunk-location"][-1] == 1:
        raise RuntimeError("bad block")
    return block


@pytest.mark.s3
def test_failed_cluster_save_on_s3_keeps_the_old_image_and_the_next_save_removes_orphan_generations(
    client: Any, s3_server: str, bucket: str
) -> None:
    pytest.importorskip("s3fs")
    backend = ZarrBackend(root=f"s3://{bucket}", storage_options=s3_options(s3_server))
    old = _image(8, SMALL)
    backend.save(old, "o.zarr/A/1/0", axes="tczyx", chunks=CHUNKS)
    bad = da.from_array(_image(9, SMALL), chunks=SMALL[:3] + (32, 32)).map_blocks(_boom, dtype=np.uint16)
    with pytest.raises(ImageSaveError, match="bad block"):
        backend.save(bad, "o.zarr/A/1/0", axes="tczyx", pyramid_levels=1, chunks=CHUNKS)
    fresh = ZarrBackend(root=f"s3://{bucket}", storage_options=s3_options(s3_server))
    np.testing.assert_array_equal(fresh.load("o.zarr/A/1/0"), old)  # never deleted: the old image, whole
    assert not [k for k in _keys(s3_server, bucket) if "/gen-" in k]  # its generation is gone
    # what a killed client's tasks leave: chunks of a generation no metadata names
    stale = "o.zarr/A/1/0/gen-0123456789ab/0/c/0/0/0/0/0"
    fresh._locate("o.zarr").fs.write(f"{bucket}/{stale}", b"orphan")
    assert fresh.list_dir("o.zarr/A/1") == ["0"]
    np.testing.assert_array_equal(fresh.load("o.zarr/A/1/0"), old)
    new = _image(10, SMALL)
    backend.save(da.from_array(new, chunks=SMALL[:3] + (32, 32)), "o.zarr/A/1/0", axes="tczyx", chunks=CHUNKS)
    np.testing.assert_array_equal(fresh.load("o.zarr/A/1/0"), new)
    keys = _keys(s3_server, bucket, "o.zarr/A/1/0/")
    assert stale not in keys  # the next save removed the orphan generation and the old levels
    group = json.loads(fresh._locate("o.zarr").fs.read(f"{bucket}/o.zarr/A/1/0/zarr.json") or b"{}")
    generation = group["attributes"]["ome"]["multiscales"][0]["datasets"][0]["path"].split("/")[0]
    assert {k.split("/")[4] for k in keys} == {"zarr.json", generation}


@pytest.mark.s3
def test_failed_cluster_save_of_a_plain_array_on_s3_keeps_it_and_the_next_save_removes_stale_staging(
    client: Any, s3_server: str, bucket: str
) -> None:
    pytest.importorskip("s3fs")
    backend = ZarrBackend(root=f"s3://{bucket}", storage_options=s3_options(s3_server))
    old = _image(8, SMALL)
    backend.save(old, "p.zarr/a", chunks=CHUNKS)
    bad = da.from_array(_image(9, SMALL), chunks=SMALL[:3] + (32, 32)).map_blocks(_boom, dtype=np.uint16)
    with pytest.raises(ImageSaveError, match="bad block"):
        backend.save(bad, "p.zarr/a", chunks=CHUNKS)
    fresh = ZarrBackend(root=f"s3://{bucket}", storage_options=s3_options(s3_server))
    np.testing.assert_array_equal(fresh.load("p.zarr/a"), old)  # never deleted: the old array, whole
    assert not [k for k in _keys(s3_server, bucket) if ".polystore-tmp-" in k]  # its staging is gone
    stale = "p.zarr/.a.polystore-tmp-0123abcd/c/0/0/0/0/0"  # what a killed client's tasks leave
    fresh._locate("p.zarr").fs.write(f"{bucket}/{stale}", b"orphan")
    assert fresh.list_dir("p.zarr") == ["a"]
    new = _image(10, SMALL)
    backend.save(da.from_array(new, chunks=SMALL[:3] + (32, 32)), "p.zarr/a", chunks=CHUNKS)
    np.testing.assert_array_equal(fresh.load("p.zarr/a"), new)
    assert not [k for k in _keys(s3_server, bucket) if ".polystore-tmp-" in k]  # the next save removed it


def test_save_batch_writes_each_image_as_a_task(client: Any, tmp_path: pathlib.Path) -> None:
    images = [np.random.default_rng(i).integers(0, 4000, size=(3, 40, 36), dtype=np.uint16) for i in range(5)]
    fm = FileManager()
    paths = [tmp_path / f"b.zarr/well/f{i}" for i in range(5)]
    with distributed.get_task_stream(client) as stream:
        fm.save_batch(images, paths, "zarr", axes="tzyx")
    assert _write_tasks(stream) == 5  # one task per image, written by the workers
    fm.save_batch(images, [tmp_path / f"l.zarr/well/f{i}" for i in range(5)], "zarr", axes="tzyx", client=False)
    assert _tree(tmp_path / "b.zarr/well") == _tree(tmp_path / "l.zarr/well")  # the same batch layout, byte for byte
    for path, image in zip(paths, images):
        np.testing.assert_array_equal(fm.load(path, "zarr"), image)


def _group_tasks(stream: Any) -> int:
    """Tasks that wrote a group of neighbouring blocks (one ``write_blocks-*`` key each)."""
    return sum(1 for t in stream.data if str(t.get("key", "")).startswith("('write_blocks-"))


def test_many_small_blocks_are_written_in_groups_of_neighbours(client: Any, tmp_path: pathlib.Path) -> None:
    """The scheduler's CPU per task is a fixed cost: 128 blocks go to the 2 one-thread workers as 16 tasks
    of 8 blocks (8 tasks per worker thread kept), each computing and writing its blocks in turn (issue 14)."""
    a = _image(3, (4, 2, 8, 128, 128))
    data = da.from_array(a, chunks=(1, 1, 2, 64, 64))  # whole zarr chunks: the dask chunks are the blocks
    backend = ZarrBackend()
    with distributed.get_task_stream(client) as stream:
        backend.save(data, tmp_path / "g.zarr/A/1/0", axes="tczyx", chunks=CHUNKS)
    assert (_group_tasks(stream), _write_tasks(stream)) == (16, 0)
    backend.save(data, tmp_path / "l.zarr/A/1/0", axes="tczyx", chunks=CHUNKS, client=False)
    assert _tree(tmp_path / "g.zarr/A/1/0") == _tree(tmp_path / "l.zarr/A/1/0")  # channel ranges included
    np.testing.assert_array_equal(backend.load(tmp_path / "g.zarr/A/1/0"), a)


def test_blocks_made_by_other_tasks_are_not_grouped(client: Any, tmp_path: pathlib.Path) -> None:
    """A block rechunked from several dask chunks depends on their tasks: one task per block, placed by
    the scheduler where its inputs are (a group would have to gather inputs from both workers)."""
    a = _image(4, (1, 1, 2, 512, 512))
    data = da.from_array(a, chunks=(1, 1, 1, 50, 50))  # not whole zarr chunks: rechunked to blocks
    backend = ZarrBackend()
    with distributed.get_task_stream(client) as stream:
        backend.save(data, tmp_path / "r.zarr/A/1/0", axes="tczyx", chunks=CHUNKS)
    assert (_group_tasks(stream), _write_tasks(stream)) == (0, 256)  # 16 x 16 blocks of (1, 1, 2, 32, 32)
    np.testing.assert_array_equal(backend.load(tmp_path / "r.zarr/A/1/0"), a)


class _QueuedWrites(distributed.diagnostics.plugin.SchedulerPlugin):  # type: ignore[misc]
    """Scheduler plugin: the write tasks that the scheduler held back in its root-task queue."""

    name = "polystore-test-queued-writes"

    def __init__(self) -> None:
        super().__init__()
        self.queued: list[str] = []
        self.written: list[str] = []

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if "write_block-" in str(key):
            if finish == "queued":
                self.queued.append(str(key))
            if finish == "memory":
                self.written.append(str(key))


def test_write_tasks_go_to_the_workers_at_once_not_through_the_root_task_queue(
    cluster: Any, tmp_path: pathlib.Path
) -> None:
    """The scheduler queues root tasks and releases one per finished task; a write task's result is a
    few numbers, so the queue protects nothing and costs scheduler work per block (issue 14 figures)."""
    recorder = _QueuedWrites()
    cluster.scheduler.add_plugin(recorder)
    try:
        with distributed.Client(cluster) as c:
            # 24 blocks of root tasks on 2 one-thread workers: root-ish for the scheduler (> 2 x threads)
            data = da.ones((24, 64, 64), dtype=np.uint16, chunks=(1, 64, 64)) * 7
            ZarrBackend().save(data, tmp_path / "q.zarr/img", axes="zyx", chunks=(1, 64, 64), client=c)
    finally:
        cluster.scheduler.remove_plugin(recorder.name)
    assert len(recorder.written) == 24
    assert recorder.queued == []
    np.testing.assert_array_equal(ZarrBackend().load(tmp_path / "q.zarr/img"), np.full((24, 64, 64), 7, np.uint16))
