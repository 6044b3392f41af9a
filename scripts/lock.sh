#!/usr/bin/env bash
# Refresh uv.lock to the newest releases pyproject.toml allows, then install it and run the whole test suite.
#   bash scripts/lock.sh                          # everything
#   bash scripts/lock.sh --upgrade-package torch  # one package (and what it needs)
# Commit uv.lock only when the tests pass. To move torch past what torchaudio accepts, widen the
# bounds in pyproject.toml first (see the comment there) and check `hwr info` on the result.
set -euo pipefail
cd "$(dirname "$0")/.."
args=("$@"); [ ${#args[@]} -gt 0 ] || args=(--upgrade)
bash scripts/uv.sh lock "${args[@]}"
exec bash scripts/test.sh
