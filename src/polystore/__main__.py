"""``python -m polystore``: the same as the ``polystore`` command."""

from __future__ import annotations

import sys

from polystore.cli import main

if __name__ == "__main__":
    sys.exit(main())
