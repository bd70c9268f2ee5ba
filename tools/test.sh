#!/usr/bin/env bash
# Install hwnas with its test extras into a fresh virtual environment and run the whole test suite.
# Needs only Python 3.11; installs Debian's `adb` client (the ADB tests drive the real client) when
# it is missing and we are root. Usage: bash tools/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
VENV=${HWNAS_TEST_VENV:-$(mktemp -d)/venv}
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e '.[dev]'
if ! command -v adb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq adb) >/dev/null
  else
    echo "the ADB tests need Debian's adb client: sudo apt-get install -y adb" >&2
    exit 1
  fi
fi
set +e
WORKERS=${HWNAS_TEST_WORKERS:-2}
if [ "$WORKERS" -gt 0 ]; then XDIST=(-n "$WORKERS" --dist loadfile); else XDIST=(-p no:xdist); fi
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "${XDIST[@]}" "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  # pytest's "no tests collected": the suite vanished or failed to import; never report that as green
  echo "pytest collected no tests (exit 5): the test suite is missing or misconfigured" >&2
  exit 1
fi
exit "$rc"
