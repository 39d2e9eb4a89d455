"""Dispatch ``python -m bench NAME [args...]`` to ``bench/NAME_bench.py:main``."""

from __future__ import annotations

import importlib
import sys
import time

from bench._timing import RECORD
from polystore.cli.bench import SUITES  # one list: `polystore bench` and `python -m bench` take the same suites


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUITES:
        print(f"usage: python -m bench {{{'|'.join(SUITES)}}} [--record FILE.jsonl] [options]")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    suite, rest = argv[0], list(argv[1:])
    if "--record" in rest:
        at = rest.index("--record")
        if at + 1 >= len(rest):
            print("python -m bench: --record needs a file name")
            return 2
        RECORD.update(suite=suite, path=rest[at + 1], run=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
        del rest[at : at + 2]
    module = importlib.import_module(f"bench.{suite}_bench")
    result: int = module.main(rest)
    return result


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
