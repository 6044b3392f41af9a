#!/usr/bin/env bash
# Create .venv with exactly the locked dependency set (uv.lock) plus hwr itself (editable).
#   bash scripts/setup.sh --extra test     # what scripts/test.sh runs
#   bash scripts/setup.sh --inexact        # what scripts/demo.sh runs (keeps extras already there)
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
# uv itself, at the version pyproject.toml requires, in its own small venv so .venv holds only the lock
uv_version="$(sed -n 's/^required-version = "==\(.*\)"$/\1/p' pyproject.toml)"
if [ "$(.tools/bin/uv --version 2>/dev/null | cut -d' ' -f2)" != "$uv_version" ]; then
  "$py" -m venv .tools
  .tools/bin/python -m pip install -q --disable-pip-version-check "uv==$uv_version"
fi
export UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=.venv
.tools/bin/uv sync --locked --python "$py" "$@"
