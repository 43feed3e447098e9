# Sourced by run_app.sh and run_tests.sh: make ./.venv with Python >= 3.11 and install $1.
# On a fresh Debian machine `python3 -m venv` needs the python3-venv package; install it
# (as root, or with sudo) when venv creation fails.
set -euo pipefail
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    echo "python3 -m venv failed; installing Debian's python3-venv" >&2
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv
    "$PYTHON" -m venv .venv
  fi
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r "$1"
