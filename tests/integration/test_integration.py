"""The whole pipeline on a real packaged model (minilm-l3) with a few dozen real examples."""

import json
import os

import numpy as np
import pytest

from w2slab.config import ExperimentConfig, TrainConfig
from w2slab.models.loading import default_cache_dir
from w2slab.models.packaged import COMPLETE_MARKER, PACKAGED

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def minilm_l3_ready():
    cache, name = default_cache_dir(), "minilm-l3"
    if not (cache / name / COMPLETE_MARKER).exists() and PACKAGED[name].missing_wheels(cache, name):
        if os.environ.get("CI"):
            pytest.fail("minilm-l3 weights are not downloaded in CI; .ci/run must run `w2s models install minilm-l3`")
        pytest.skip("minilm-l3 not downloaded (w2s models install minilm-l3)")


def test_pipeline_end_to_end_on_minilm_l3(minilm_l3_ready, data_root, tmp_path):
    from w2slab.api import run
    from w2slab.config import RuntimeConfig

    cfg = ExperimentConfig(
        dataset="sst2", weak="minilm-l3", strong="minilm-l3", losses=["xent", "logconf"], n_train=48, n_test=32,
        seed=0, max_ctx=48,
        weak_train=TrainConfig(mode="full", epochs=1, batch_size=8),
        strong_train=TrainConfig(mode="probe", epochs=3, batch_size=8))
    lines = []
    result = run(cfg, RuntimeConfig(run_root=str(tmp_path), data_root=str(data_root), echo=lines.append))
    folder = tmp_path / cfg.default_name()
    assert result.folder == folder and result.summary.folder == str(folder)
    saved = json.loads((folder / "metrics.json").read_text())
    for stage in ("weak", "ceiling"):
        assert 0.0 <= saved[stage]["accuracy"] <= 1.0
    assert set(saved["students"]) == {"xent", "logconf"}
    for entry in saved["students"].values():
        assert "pgr" in entry and 0.0 <= entry["accuracy"] <= 1.0
    config = json.loads((folder / "config.json").read_text())
    assert config["dataset"] == "sst2" and config["resolved"]["weak"]["lr"] > 0
    sizes = config["resolved"]["split_sizes"]
    assert {k: sizes[k] for k in ("weak_train", "transfer", "test")} == {"weak_train": 24, "transfer": 24, "test": 32}
    assert sizes["validation"] == 500  # the default n_val, beside the pool
    preds = np.load(folder / "predictions" / "weak_transfer.npz")
    assert preds["probs"].shape == (24, 2) and len(preds["ids"]) == 24
    assert np.allclose(preds["probs"].sum(1), 1.0, atol=1e-5)
    for stage in ("weak", "ceiling", "student_xent", "student_logconf"):
        rows = [json.loads(line) for line in (folder / "logs" / f"{stage}.jsonl").read_text().splitlines()]
        assert rows and {"step", "loss", "grad_norm", "lr"} <= set(rows[0])
    assert saved["stability"]["weak"]["skipped_steps"] == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind
