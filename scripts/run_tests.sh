#!/usr/bin/env bash
# Install what the tests need and run every test: lint, unit, property, page and browser tests.
#   - a venv with the pinned requirements-test.txt (which includes requirements.txt);
#   - Debian's chromium when /usr/bin/chromium is missing (Playwright drives it; it never
#     downloads a browser of its own), and Debian's nginx when it is missing (the deployment test).
# Extra arguments go to pytest (e.g. `bash scripts/run_tests.sh -k valley`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh requirements-test.txt
missing=""
[ -x /usr/bin/chromium ] || missing=" chromium"
# nginx: tests/test_deploy_nginx.py runs its binary as a plain process on a free port of
# 127.0.0.1 in front of two replicas; it never uses the system service (which Debian starts on
# port 80 after installing, where the machine allows services to start).
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx"
if [ -n "$missing" ]; then
  echo "installing Debian's package(s)$missing for the browser and deployment tests" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086 # one word per package
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
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
