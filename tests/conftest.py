"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def library_messages_on_stdout() -> None:
    """As the ``w2s`` command does: the library logs, and its messages reach stdout (where tests read them)."""
    from w2slab.progress import configure_logging

    configure_logging()


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


@pytest.fixture(scope="module")
def tasks(data_root: Path):
    """Each dataset loaded once per module (imdb/sst2 are big), keyed by name: ``tasks(name)``."""
    from w2slab.data import load_task

    cache: dict[str, object] = {}

    def get(name: str):
        if name not in cache:
            cache[name] = load_task(name, data_root=data_root, seed=0)
        return cache[name]

    return get


@pytest.fixture
def test_label_readers(monkeypatch) -> list[str]:
    """The functions that read the test labels while the test runs (``StageFolder.test_labels`` traced to its
    caller), in order: what the leakage checks assert on."""
    import inspect

    from w2slab.pipeline.artifacts import StageFolder

    readers: list[str] = []
    original = StageFolder.test_labels

    def traced(self, reader):
        readers.append(inspect.stack()[1].function)
        return original(self, reader)

    monkeypatch.setattr(StageFolder, "test_labels", traced)
    return readers


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    """Two tiny text models built from configs (weak: 1 layer x 16, strong: 1 layer x 32) and a 300-row toy file."""
    from types import SimpleNamespace

    from tests.helpers.tiny import write_tiny_model, write_toy_dataset

    root = tmp_path_factory.mktemp("tiny")
    return SimpleNamespace(weak=str(write_tiny_model(root / "weak", layers=1, hidden=16)),
                           strong=str(write_tiny_model(root / "strong", layers=1, hidden=32, seed=1)),
                           data=str(write_toy_dataset(root / "toy.jsonl", n=300)))


@pytest.fixture
def fresh_tiny(tmp_path):
    """Two tiny text models and a 300-row toy file in this test's own folder (tests that edit them), with a run root."""
    from types import SimpleNamespace

    from tests.helpers.tiny import write_tiny_model, write_toy_dataset

    return SimpleNamespace(weak=str(write_tiny_model(tmp_path / "weak", layers=1, hidden=16)),
                           strong=str(write_tiny_model(tmp_path / "strong", layers=1, hidden=32, seed=1)),
                           data=str(write_toy_dataset(tmp_path / "toy.jsonl", n=300)), root=tmp_path / "runs")
