#!/usr/bin/env bash
# Set up (first time only) and run the whole test suite, browser tests included.
# Lists the 15 slowest tests at the end: CI allows the suite about 15 minutes, so watch them.
# Installs Debian's chromium for the browser tests when it is missing (needs root or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --extra test
if ! command -v chromium >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
export HWR_REQUIRE_BROWSER=1
exec .venv/bin/python -m pytest -q -rs --durations=15 "$@"
