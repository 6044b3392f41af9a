#!/usr/bin/env bash
# Refresh uv.lock to the newest releases pyproject.toml allows, then run the whole test suite on it.
#   bash scripts/lock.sh                          # everything
#   bash scripts/lock.sh --upgrade-package torch  # one package (and what it needs)
# Commit uv.lock only when the tests pass. To move torch past what torchaudio accepts, widen the
# bounds in pyproject.toml first (see the comment there) and check `hwr info` on the result.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --extra test >/dev/null  # makes sure the pinned uv is there
args=("$@"); [ ${#args[@]} -gt 0 ] || args=(--upgrade)
UV_PYTHON_DOWNLOADS=never .tools/bin/uv lock "${args[@]}"
exec bash scripts/test.sh
