"""``python -m polystore.streaming.fiji``: see :mod:`polystore.streaming.fiji.cli`."""

from __future__ import annotations

import sys

from polystore.streaming.fiji.cli import main

sys.exit(main())
