#!/usr/bin/env bash
# Make .venv hold exactly the locked dependency set (uv.lock) plus hwr itself (editable).
#   bash scripts/setup.sh                  # what scripts/demo.sh runs: runtime only
#   bash scripts/setup.sh --extra test     # what scripts/test.sh runs
# Arguments go to `uv sync`. `--locked` makes it fail when pyproject.toml and uv.lock disagree:
# refresh the lock with `bash scripts/lock.sh`. Safe to re-run: an up-to-date .venv takes a second.
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python3}"
if ! "$py" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))' 2>/dev/null; then
  echo "hwr needs Python 3.11 or 3.12 (flashlight-text, the beam search, has wheels for those only):" \
       "install one and run again with PYTHON=python3.12" >&2
  exit 2
fi
exec bash scripts/uv.sh sync --locked --python "$py" "$@"
