"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The offline datasets folder: $W2SLAB_DATA_ROOT, else ../shared/datasets next to the repo.

    Tests that need it are skipped when it is absent, except in CI (CI set and truthy), where a
    missing data root must fail loudly instead of silently skipping the real-data checks.
    """
    env = os.environ.get("W2SLAB_DATA_ROOT")
    candidate = Path(env).expanduser() if env else REPO_ROOT.parent / "shared" / "datasets"
    if candidate.is_dir():
        return candidate
    message = f"data root {candidate} not found; set W2SLAB_DATA_ROOT to the shared datasets folder"
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(message)
    pytest.skip(message)
