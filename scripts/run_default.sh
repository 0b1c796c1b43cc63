#!/usr/bin/env bash
# Install everything and run the default experiment, offline (data root: ../shared/datasets by default).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh minilm-l3 mpnet-base  # the default pair
export HF_HUB_OFFLINE=1 W2SLAB_DATA_ROOT="${W2SLAB_DATA_ROOT:-$(cd .. && pwd)/shared/datasets}"
.venv/bin/w2s run "$@"
