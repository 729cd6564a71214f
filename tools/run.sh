#!/usr/bin/env bash
# Run a command with the environment tools/setup.sh installed into: .venv/ first on PATH where
# setup.sh made one (an externally managed system Python), else the PATH as it is.
#   bash tools/run.sh timm-gcp demo
#   bash tools/run.sh python -m pytest -q
set -euo pipefail
venv="$(cd "$(dirname "$0")/.." && pwd)/.venv"
if [ -x "$venv/bin/python" ]; then
    export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH"
fi
exec "$@"
