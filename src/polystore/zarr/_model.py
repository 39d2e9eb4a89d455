"""Typed zarr metadata: a node's documents parsed and validated once, v2 and v3 alike.

:func:`parse_node` turns the raw bytes of ``zarr.json`` (v3) or ``.zarray`` /
``.zgroup`` + ``.zattrs`` (v2) into an :class:`ArrayMeta` or :class:`GroupMeta`.
Everything the backend later relies on (shape, chunk grid, dtype, fill value,
chunk key separator, codec, OME multiscales) is checked here, so hostile or
damaged metadata is refused with :class:`~polystore.exceptions.ImageLoadError`
before anything is allocated or any chunk key is built. The rules are listed in
``docs/zarr-layout.md`` ("Metadata validation").
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from polystore.exceptions import ImageLoadError
from polystore.zarr._codec import _SHUFFLE_IDS, _Codec
from polystore.zarr._dtypes import _parse_fill


#: More axes than this is not an image (NumPy itself stops at 64).
MAX_NDIM = 32
#: An array's logical size in bytes must stay below this (NumPy's own limit is 2**63).
MAX_ARRAY_BYTES = 2**62
#: One chunk is decoded into one buffer: larger chunks are refused (Blosc's limit is 2 GiB).
MAX_CHUNK_BYTES = 2**31 - 1
#: A lazy (dask) view has at most this many blocks.
MAX_LAZY_BLOCKS = 2**20
#: The chunk key separators the zarr specs define.
SEPARATORS = ("/", ".")

_V3_DTYPES = frozenset(
    {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
     "float16", "float32", "float64", "complex64", "complex128"}
)
_BLOSC_CNAMES = frozenset({"lz4", "lz4hc", "blosclz", "zstd", "snappy", "zlib"})


def _refuse(where: str, what: str) -> ImageLoadError:
    return ImageLoadError(f"zarr: invalid metadata at {where!r}: {what}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_list(value: Any, name: str, where: str, low: int) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(_is_int(v) for v in value):
        raise _refuse(where, f"{name} must be a list of integers, got {value!r:.80}")
    if len(value) > MAX_NDIM:
        raise _refuse(where, f"{name} has {len(value)} axes (at most {MAX_NDIM})")
    if any(v < low or v > MAX_ARRAY_BYTES for v in value):
        raise _refuse(where, f"{name} {value!r:.80} has entries out of range (each must be >= {low})")
    return tuple(value)


@dataclass(frozen=True)
class ArrayMeta:
    """A validated zarr array (v2 or v3).

    ``dtype`` is the in-memory (native little-endian) dtype, None for dtypes
    only zarr-python understands; ``codec`` is set when polystore decodes the
    chunks itself (``bytes`` + optional ``blosc``, C order), else None.
    ``raw`` is the document as read (v2: ``.zarray`` plus ``attributes`` from
    ``.zattrs`` and ``node_type``), for rewriting it.
    """

    zarr_format: int
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype[Any] | None
    fill: np.ndarray | None
    separator: str
    v2_keys: bool
    codec: _Codec | None
    attributes: dict[str, Any]
    raw: dict[str, Any]
    dimension_names: tuple[Any, ...] | None = None
    names: list[str | None] | None = None

    node_type = "array"

    @property
    def ndim(self) -> int:
        """Number of axes."""
        return len(self.shape)

    @property
    def chunk_nbytes(self) -> int:
        """Bytes of one decoded chunk."""
        itemsize = self.dtype.itemsize if self.dtype is not None else 1
        return math.prod(self.chunks) * itemsize

    @property
    def grid(self) -> tuple[int, ...]:
        """Number of chunks along each axis."""
        return tuple(-(-s // c) for s, c in zip(self.shape, self.chunks))

    @property
    def lazy_chunks(self) -> tuple[int, ...]:
        """Block shape of a lazy (dask) view: the chunks, merged while there are too many."""
        return self.lazy_blocks(0)

    def lazy_blocks(self, block_bytes: int) -> tuple[int, ...]:
        """Block shape of a lazy (dask) view: whole chunks, merged up to ``block_bytes`` per block.

        Chunks are merged along the last axis first, then the one before it
        while the axes after it are whole (a block is a slab in C order, e.g.
        a whole 2-D frame of four chunks), as long as the block stays within
        ``block_bytes`` (0: one chunk per block). dask pays per task; the own
        reader decodes the chunks of one block in parallel. Then, since dask
        keeps (and on compute, enumerates) every block, past
        ``MAX_LAZY_BLOCKS`` blocks the axis with the most blocks gets blocks
        twice as long until the count fits.
        """
        blocks = list(self.chunks)
        itemsize = self.dtype.itemsize if self.dtype is not None else 1
        nbytes = math.prod(blocks) * itemsize
        for axis in reversed(range(self.ndim)):
            count = -(-self.shape[axis] // blocks[axis])
            if count == 1:
                continue  # whole already
            times = min(count, block_bytes // max(1, nbytes))
            if times <= 1:
                break
            blocks[axis] *= times
            nbytes *= times
            if times < count:  # this axis is not whole: the axes before it keep one chunk
                break
        counts = [-(-s // c) for s, c in zip(self.shape, blocks)]
        while math.prod(counts) > MAX_LAZY_BLOCKS:
            axis = counts.index(max(counts))
            blocks[axis] *= 2
            counts[axis] = -(-self.shape[axis] // blocks[axis])
        return tuple(blocks)

    def chunk_key(self, idx: Sequence[int]) -> str:
        """The key of chunk ``idx`` relative to the array (always inside it)."""
        if self.v2_keys:
            return self.separator.join(str(int(i)) for i in idx) if len(idx) else "0"
        return "c" + "".join(self.separator + str(int(i)) for i in idx)


@dataclass(frozen=True)
class Dataset:
    """One level of an OME multiscale image: its array path (inside the group) and scale."""

    path: str
    scale: tuple[float, ...] | None


@dataclass(frozen=True)
class Multiscale:
    """The first ``multiscales`` entry of an OME-Zarr image, validated."""

    axes: tuple[str, ...]
    datasets: tuple[Dataset, ...]
    ome: dict[str, Any]  # the container holding "multiscales" (and "omero")


@dataclass(frozen=True)
class GroupMeta:
    """A validated zarr group (v2 or v3) and, for an OME-Zarr image, its multiscales."""

    zarr_format: int
    attributes: dict[str, Any]
    raw: dict[str, Any]
    multiscale: Multiscale | None = None
    names: list[str | None] | None = field(default=None)

    node_type = "group"


def _dataset_path(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise _refuse(where, f"OME dataset path {value!r:.80} is not a non-empty string")
    parts = value.split("/")
    if "\\" in value or any(p in ("", ".", "..") for p in parts):
        raise _refuse(
            where, f"OME dataset path {value!r:.80} must name an array inside the image group "
            "(relative, no '.', '..' or empty parts)"
        )
    return value


def _multiscale(attrs: Mapping[str, Any], where: str) -> Multiscale | None:
    ome = attrs.get("ome")
    container: Any = ome if isinstance(ome, dict) and ome.get("multiscales") else attrs
    multiscales = container.get("multiscales")
    if not multiscales:
        return None
    if not isinstance(multiscales, list) or not isinstance(multiscales[0], dict):
        raise _refuse(where, "OME 'multiscales' must be a list of objects")
    ms = multiscales[0]
    axes_raw = ms.get("axes") or []
    if not isinstance(axes_raw, list):
        raise _refuse(where, "OME 'axes' must be a list")
    axes: list[str] = []
    for a in axes_raw:
        name = a.get("name") if isinstance(a, dict) else a
        if not isinstance(name, str):
            raise _refuse(where, f"OME axis {a!r:.80} has no string name")
        axes.append(name)
    raw_sets = ms.get("datasets")
    if not isinstance(raw_sets, list) or not raw_sets or not all(isinstance(d, dict) for d in raw_sets):
        raise _refuse(where, "OME 'datasets' must be a non-empty list of objects")
    datasets = []
    for d in raw_sets:
        path = _dataset_path(d.get("path"), where)
        scale = None
        transforms = d.get("coordinateTransformations")
        for t in transforms if isinstance(transforms, list) else ():
            values = t.get("scale") if isinstance(t, dict) and t.get("type") == "scale" else None
            if isinstance(values, list) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                for v in values
            ):
                scale = tuple(float(v) for v in values)
        datasets.append(Dataset(path, scale))
    return Multiscale(tuple(axes), tuple(datasets), container)


def _names(attrs: Mapping[str, Any], where: str) -> list[str | None] | None:
    info = attrs.get("polystore")
    if not isinstance(info, dict) or "names" not in info:
        return None
    names = info["names"]
    if not isinstance(names, list) or not all(n is None or isinstance(n, str) for n in names):
        raise _refuse(where, "attributes.polystore.names must be a list of strings")
    return names


def _group(raw: dict[str, Any], attrs: Any, fmt: int, where: str) -> GroupMeta:
    if not isinstance(attrs, dict):
        raise _refuse(where, "attributes must be an object")
    return GroupMeta(fmt, attrs, raw, _multiscale(attrs, where), _names(attrs, where))


def _v3_dtype(value: Any, where: str) -> np.dtype[Any] | None:
    if isinstance(value, str):
        return np.dtype(value) if value in _V3_DTYPES else None
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        return None  # an extension data type: zarr-python's business
    raise _refuse(where, f"data_type {value!r:.80} is not a string")


def _v3_codec(codecs: Any, dtype: np.dtype[Any] | None, where: str) -> _Codec | None:
    if not isinstance(codecs, list) or not codecs or not all(
        isinstance(c, dict) and isinstance(c.get("name"), str) for c in codecs
    ):
        raise _refuse(where, "codecs must be a non-empty list of objects with a name")
    for c in codecs:
        if c.get("configuration") is not None and not isinstance(c["configuration"], dict):
            raise _refuse(where, f"codec {c['name']!r} has a configuration that is not an object")
    if dtype is None or codecs[0]["name"] != "bytes":
        return None
    endian = (codecs[0].get("configuration") or {}).get("endian", "little")
    if endian != "little" and dtype.itemsize > 1:
        return None
    if len(codecs) == 1:
        return _Codec(None)
    if len(codecs) == 2 and codecs[1]["name"] == "blosc":
        return _blosc(codecs[1].get("configuration") or {}, where)
    return None


def _blosc(conf: Mapping[str, Any], where: str) -> _Codec | None:
    cname, clevel, shuffle = conf.get("cname"), conf.get("clevel", 5), conf.get("shuffle", "shuffle")
    if isinstance(shuffle, int) and not isinstance(shuffle, bool):  # v2 numbers
        shuffle = {0: "noshuffle", 1: "shuffle", 2: "bitshuffle"}.get(shuffle, shuffle)
    if cname not in _BLOSC_CNAMES or not _is_int(clevel) or not 0 <= clevel <= 9:
        raise _refuse(where, f"blosc configuration {dict(conf)!r:.120} is invalid")
    if shuffle not in _SHUFFLE_IDS:
        return None  # e.g. v2's -1 (auto): let zarr-python decide
    return _Codec(str(cname), int(clevel), str(shuffle))


def _check_sizes(shape: tuple[int, ...], chunks: tuple[int, ...], itemsize: int, where: str) -> None:
    if len(chunks) != len(shape):
        raise _refuse(where, f"chunk shape {list(chunks)} does not match shape {list(shape)}")
    if math.prod(shape) * itemsize >= MAX_ARRAY_BYTES:
        raise _refuse(where, f"shape {list(shape)} is larger than any array can be")
    if math.prod(chunks) * itemsize > MAX_CHUNK_BYTES:
        raise _refuse(where, f"chunk shape {list(chunks)} makes chunks larger than 2 GiB")


def _v3_array(raw: dict[str, Any], where: str) -> ArrayMeta:
    shape = _int_list(raw.get("shape"), "shape", where, 0)
    grid = raw.get("chunk_grid")
    conf = grid.get("configuration") if isinstance(grid, dict) else None
    if not isinstance(grid, dict) or not isinstance(grid.get("name"), str) or not isinstance(conf, dict):
        raise _refuse(where, "chunk_grid must be an object with a name and a configuration")
    if grid["name"] != "regular":
        raise _refuse(where, f"chunk grid {grid['name']!r} is not supported (only 'regular')")
    chunks = _int_list(conf.get("chunk_shape"), "chunk_shape", where, 1)
    dtype = _v3_dtype(raw.get("data_type"), where)
    _check_sizes(shape, chunks, dtype.itemsize if dtype is not None else 1, where)
    enc = raw.get("chunk_key_encoding", {"name": "default"})
    if isinstance(enc, str):
        enc = {"name": enc}
    if not isinstance(enc, dict) or enc.get("name") not in ("default", "v2"):
        raise _refuse(where, f"chunk_key_encoding {enc!r:.80} is not 'default' or 'v2'")
    econf = enc.get("configuration") or {}
    if not isinstance(econf, dict):
        raise _refuse(where, "chunk_key_encoding configuration must be an object")
    sep = econf.get("separator", "/" if enc["name"] == "default" else ".")
    if sep not in SEPARATORS:
        raise _refuse(where, f"chunk key separator {sep!r:.40} is not '/' or '.'")
    codec = _v3_codec(raw.get("codecs"), dtype, where)
    fill = _parse_fill(raw.get("fill_value"), dtype, 3, where) if dtype is not None else None
    attrs = raw.get("attributes", {})
    if not isinstance(attrs, dict):
        raise _refuse(where, "attributes must be an object")
    names = raw.get("dimension_names")
    if names is not None and (not isinstance(names, list) or len(names) != len(shape)):
        raise _refuse(where, f"dimension_names {names!r:.80} must list one name per axis")
    return ArrayMeta(
        3, shape, chunks, dtype, fill, sep, enc["name"] == "v2", codec, attrs, raw,
        tuple(names) if names is not None else None, _names(attrs, where),
    )


def _v2_array(raw: dict[str, Any], where: str) -> ArrayMeta:
    shape = _int_list(raw.get("shape"), "shape", where, 0)
    chunks = _int_list(raw.get("chunks"), "chunks", where, 1)
    spec = raw.get("dtype")
    dtype: np.dtype[Any] | None = None
    native = False
    if isinstance(spec, str):
        try:
            parsed = np.dtype(spec)
        except (TypeError, ValueError) as exc:
            raise _refuse(where, f"dtype {spec!r:.40} is not a NumPy dtype") from exc
        if parsed.fields is None and parsed.name in _V3_DTYPES:
            dtype = parsed.newbyteorder("<")
            native = parsed.byteorder != ">"
    elif not isinstance(spec, list):
        raise _refuse(where, f"dtype {spec!r:.40} is not a string or a list")
    _check_sizes(shape, chunks, dtype.itemsize if dtype is not None else 1, where)
    sep = raw.get("dimension_separator") or "."
    if sep not in SEPARATORS:
        raise _refuse(where, f"dimension_separator {sep!r:.40} is not '/' or '.'")
    order, filters, comp = raw.get("order", "C"), raw.get("filters"), raw.get("compressor")
    if order not in ("C", "F"):
        raise _refuse(where, f"order {order!r:.20} is not 'C' or 'F'")
    if filters is not None and not (isinstance(filters, list) and all(isinstance(f, dict) for f in filters)):
        raise _refuse(where, "filters must be null or a list of objects")
    if comp is not None and not (isinstance(comp, dict) and isinstance(comp.get("id"), str)):
        raise _refuse(where, "compressor must be null or an object with an id")
    codec: _Codec | None = None
    if native and order == "C" and not filters:
        if comp is None:
            codec = _Codec(None)
        elif comp["id"] == "blosc":
            codec = _blosc(comp, where)
    fill = _parse_fill(raw.get("fill_value"), dtype, 2, where) if dtype is not None else None
    attrs = raw.get("attributes", {})
    if not isinstance(attrs, dict):
        raise _refuse(where, ".zattrs must hold an object")
    return ArrayMeta(2, shape, chunks, dtype, fill, sep, True, codec, attrs, raw, None, _names(attrs, where))


def _load_json(raw: bytes, where: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ImageLoadError(f"zarr: unreadable metadata at {where!r}: {exc}") from exc


def parse_doc(meta: dict[str, Any], zarr_format: int, where: str) -> ArrayMeta | GroupMeta:
    """Validate one node's metadata dict (v2: ``.zarray``/``.zgroup`` with ``node_type``
    and ``attributes`` merged in, as :func:`parse_node` builds it)."""
    kind = meta.get("node_type")
    if zarr_format == 2:
        return _v2_array(meta, where) if kind == "array" else _group(meta, meta.get("attributes", {}), 2, where)
    if kind == "array":
        return _v3_array(meta, where)
    if kind != "group":
        raise _refuse(where, f"node_type {kind!r:.40} is not 'array' or 'group'")
    return _group(meta, meta.get("attributes", {}), 3, where)


def parse_node(
    raw3: bytes | None, rawa: bytes | None, rawg: bytes | None, zattrs: bytes | None, where: str
) -> ArrayMeta | GroupMeta | None:
    """Parse and validate a node's metadata documents (None: no zarr node here).

    ``raw3`` is ``zarr.json``; ``rawa``, ``rawg`` and ``zattrs`` the v2
    ``.zarray``, ``.zgroup`` and ``.zattrs``. A ``zarr.json`` that is not
    zarr v3 means "no node" (as before); anything malformed or out of bounds
    raises :class:`~polystore.exceptions.ImageLoadError` naming ``where``.
    """
    if raw3 is not None:
        meta = _load_json(raw3, where)
        if not isinstance(meta, dict) or meta.get("zarr_format") != 3:
            return None
        return parse_doc(meta, 3, where)
    if rawa is None and rawg is None:
        return None
    doc = _load_json(rawa if rawa is not None else rawg, where)  # type: ignore[arg-type]
    if not isinstance(doc, dict):
        raise _refuse(where, "a v2 metadata document must hold an object")
    doc["node_type"] = "array" if rawa is not None else "group"
    doc["attributes"] = _load_json(zattrs, where) if zattrs else {}
    return parse_doc(doc, 2, where)
