#!/usr/bin/env bash
# Run uv at the version pyproject.toml requires (tool.uv.required-version), installing it into .tools/
# first if needed:  bash scripts/uv.sh lock --check
# pip --target needs neither venv/ensurepip nor a writable system site; uv then makes .venv itself.
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python3}"
uv_version="$(sed -n 's/^required-version = "==\(.*\)"$/\1/p' pyproject.toml)"
if [ "$(.tools/bin/uv --version 2>/dev/null | cut -d' ' -f2)" != "$uv_version" ]; then
  rm -rf .tools
  "$py" -m pip install -q --disable-pip-version-check --target .tools "uv==$uv_version"
fi
export UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT="${UV_PROJECT_ENVIRONMENT:-.venv}"
exec .tools/bin/uv "$@"
