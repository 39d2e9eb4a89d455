#!/usr/bin/env bash
# Set up everything a target needs on a fresh Debian machine; safe to run again.
#   scripts/setup.sh demo   -> Debian Qt/Xvfb packages, .venv with the demo's extras
#   scripts/setup.sh test   -> the above plus Java/ImageJ/JeroMQ and every test extra
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:?usage: scripts/setup.sh demo|test}"

QT_PACKAGES=(xvfb xauth libgl1 libegl1 libgl1-mesa-dri libglx-mesa0 libegl-mesa0
  libglib2.0-0 libfontconfig1 libdbus-1-3 libxkbcommon-x11-0 libxcb-icccm4
  libxcb-keysyms1 libxcb-xinerama0 libxcb-image0 libxcb-render-util0 libxcb-randr0
  libxcb-shape0 libxcb-xfixes0 libxcb-xkb1 libxcb-cursor0 x11-utils)
JAVA_PACKAGES=(openjdk-17-jdk-headless imagej libjeromq-java libgoogle-gson-java)

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

case "$target" in
  demo) apt_install "${QT_PACKAGES[@]}"; extras="napari" ;;
  test) apt_install "${QT_PACKAGES[@]}" "${JAVA_PACKAGES[@]}"; extras="all,test,docs,bench" ;;
  *) echo "unknown target: $target" >&2; exit 2 ;;
esac

[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=".venv/.setup-$target-$(cat pyproject.toml scripts/setup.sh requirements/constraints.txt | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  if [ "$target" = test ]; then
    # The CPU build that lies on these machines; a bare "torch" would fetch a CUDA build.
    .venv/bin/python -m pip install -q "torch==2.13.0"
  fi
  .venv/bin/python -m pip install -q -c requirements/constraints.txt -e ".[$extras]"
  if [ "$target" = test ]; then
    # PyQt6 beside the venv (not in it): tests/test_napari_pyqt6.py runs the napari
    # tests again on it, since napari 0.9 deprecates the default PyQt5.
    .venv/bin/python -m pip install -q --upgrade --target .venv/pyqt6 \
      "PyQt6==6.11.0" "PyQt6-Qt6==6.11.2" "PyQt6-sip==13.13.0"
  fi
  touch "$stamp"
fi
echo "setup: $target ready (.venv)"
