"""Dispatch ``python -m bench NAME [args...]`` to ``bench/NAME_bench.py:main``."""

from __future__ import annotations

import importlib
import sys

SUITES = ("core", "zarr", "stream", "fiji")


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUITES:
        print(f"usage: python -m bench {{{'|'.join(SUITES)}}} [options]")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module = importlib.import_module(f"bench.{argv[0]}_bench")
    result: int = module.main(argv[1:])
    return result


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
