#!/usr/bin/env bash
# Set up (first time only) and launch the drawing app with the shipped model: hwr demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/hwr demo "$@"
