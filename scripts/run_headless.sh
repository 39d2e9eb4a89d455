#!/usr/bin/env bash
# Run a command with Qt on the xcb platform: on the real display if there is one,
# else on a private Xvfb display (napari draws real pixels only there).
set -euo pipefail
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-xcb}"
if [ -n "${DISPLAY:-}" ]; then
  exec "$@"
fi
export POLYSTORE_HEADLESS=1
exec xvfb-run -a -s "-screen 0 1600x1200x24 -nolisten tcp" "$@"
