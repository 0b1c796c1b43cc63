"""Every committed table whose per-example outcomes are committed rebuilds byte-identical, without training."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_committed_tables_rebuild_byte_identical_from_committed_outcomes():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "rebuild.py"), "--check"], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    identical = [line for line in done.stdout.splitlines() if line.endswith(": identical")]
    # the methods benchmark's table and CSV, and the paper's claims recomputed from the same outcomes
    assert {"methods_field/README.md", "methods_field/methods.csv", "sst2_claims/README.md",
            "sst2_claims/claims.json"} <= {line.rsplit(":", 1)[0] for line in identical}, done.stdout
