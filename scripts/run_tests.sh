#!/usr/bin/env bash
# Install what the tests need and run every test: lint, unit, property, page and browser tests.
#   - a venv with the pinned requirements-test.txt (which includes requirements.txt);
#   - Debian's chromium when /usr/bin/chromium is missing (Playwright drives it; it never
#     downloads a browser of its own).
# Extra arguments go to pytest (e.g. `bash scripts/run_tests.sh -k valley`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh requirements-test.txt
if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian's chromium for the browser tests" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
fi
.venv/bin/python -m ruff check .
set +e
.venv/bin/python -m pytest -n 2 "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose (a green run must have run tests)" >&2
  exit 1
fi
exit "$status"
