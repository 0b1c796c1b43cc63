"""The pipeline's core on tiny config-built models and a toy JSONL file: no data root, no packaged model.

Covers a probe-mode weak model, LoRA through the pipeline, PGR and its CI recomputed from the saved
predictions, the truncation modes, and the resolved values that stages record.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
from safetensors.torch import load_file

from tests.helpers.tiny import write_tiny_model, write_toy_dataset
from w2slab import stats
from w2slab.api import run
from w2slab.config import ExperimentConfig, RuntimeConfig, TrainConfig
from w2slab.models.loading import resolve_model
from w2slab.pipeline.role_model import RoleModel
from w2slab.pipeline.store import StageStore
from w2slab.train.precision import resolve_precision


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return SimpleNamespace(weak=str(write_tiny_model(root / "weak", layers=1, hidden=16)),
                           strong=str(write_tiny_model(root / "strong", layers=2, hidden=32, seed=1)),
                           data=str(write_toy_dataset(root / "toy.jsonl", n=400)), root=root)


def tiny_config(tiny, **overrides) -> ExperimentConfig:
    fields = dict(dataset=tiny.data, weak=tiny.weak, strong=tiny.strong, losses=["xent"], n_train=96, n_test=32,
                  max_ctx=16, weak_train=TrainConfig(mode="full", epochs=2, batch_size=16, lr=3e-3),
                  strong_train=TrainConfig(mode="full", epochs=2, batch_size=16, lr=3e-3))
    return ExperimentConfig(**{**fields, **overrides})


def quiet(*_args) -> None:
    pass


@pytest.fixture(scope="module")
def probe_lora_run(tiny, tmp_path_factory):
    """Weak: a linear probe on the frozen tiny backbone. Strong: LoRA adapters (and the head)."""
    # seed 1: a partition on which the tiny LoRA model learns the toy task within 6 epochs (it does on about
    # half of the seeds), so that the ceiling beats the weak probe and PGR is defined
    cfg = tiny_config(tiny, losses=["xent", "logconf"], seed=1,
                      weak_train=TrainConfig(mode="probe", epochs=2, batch_size=16, lr=1e-2),
                      strong_train=TrainConfig(mode="lora", epochs=6, batch_size=16, lr=3e-2, lora_r=4))
    root = tmp_path_factory.mktemp("runs")
    return run(cfg, RuntimeConfig(run_root=str(root), echo=quiet)), root


def test_probe_weak_and_lora_strong_run_through_the_pipeline(probe_lora_run):
    result, root = probe_lora_run
    metrics = json.loads((result.folder / "metrics.json").read_text())
    assert set(metrics["students"]) == {"xent", "logconf"}
    store = StageStore(root)
    kinds = {row["kind"] for row in store.status()}
    assert "features" not in kinds  # a LoRA strong model trains its backbone: no cached features
    (weak_folder,) = [p for p in (root / "stages" / "weak_train").iterdir() if p.is_dir()]
    weak_state = load_file(str(weak_folder / "trainable.safetensors"))
    assert weak_state and all(name.startswith("head.") for name in weak_state)  # probe: the head only
    config = json.loads((result.folder / "config.json").read_text())
    resolved = config["resolved"]
    assert resolved["weak"]["mode"] == "probe" and resolved["weak"]["lr"] == 1e-2
    assert resolved["strong"]["mode"] == "lora" and resolved["strong"]["precision"] == resolve_precision("auto")
    assert resolved["strong"]["device"] == "cpu" and resolved["strong"]["pooling"] == "cls"
    assert config["strong_train"]["lora_r"] == 4
    # each result records the code and the data and weight revisions it ran with (its config id covers them)
    from w2slab.pipeline.graph import result_versions

    results = [json.loads(p.read_text()) for p in (root / "experiments").glob("*/result.json")]
    assert len(results) == 2
    for record in results:
        assert record["resolved"]["versions"] == result_versions()
        revisions = record["resolved"]["revisions"]
        assert any(k.startswith("dataset:") for k in revisions)
        assert {f"model:{config['weak']}", f"model:{config['strong']}"} <= set(revisions)
    for name in ("weak", "ceiling", "student_xent", "student_logconf"):
        assert metrics["stability"][name]["skipped_steps"] == 0


def test_pgr_and_its_interval_are_recomputed_from_the_saved_predictions(probe_lora_run):
    result, _ = probe_lora_run
    folder = result.folder
    metrics = json.loads((folder / "metrics.json").read_text())

    def correct(name: str) -> np.ndarray:
        with np.load(folder / "predictions" / name) as data:
            return data["probs"].argmax(-1) == data["labels"]

    weak, ceiling = correct("weak_test.npz"), correct("ceiling_test.npz")
    assert metrics["weak"]["accuracy"] == pytest.approx(weak.mean())
    assert metrics["ceiling"]["accuracy"] == pytest.approx(ceiling.mean())
    assert metrics["ceiling"]["accuracy"] > metrics["weak"]["accuracy"]  # so that PGR is defined
    for loss, entry in metrics["students"].items():
        student = correct(f"student_{loss}_test.npz")
        assert entry["accuracy"] == pytest.approx(student.mean())
        w, s, c = weak.mean(), student.mean(), ceiling.mean()
        assert entry["pgr"] == pytest.approx((s - w) / (c - w))
        low, high = stats.pgr_estimate([{"weak": weak, "student": student, "ceiling": ceiling}]).ci95
        saved = [math.nan if v is None else v for v in entry["pgr_ci95"]]  # null: the gap was not significant
        assert saved == pytest.approx([low, high], nan_ok=True)
        assert math.isnan(low) or low <= entry["pgr"] <= high


def test_experiment_folder_name_depends_on_the_config_only(tiny, monkeypatch):
    cfg = tiny_config(tiny)
    name = cfg.default_name()
    monkeypatch.setenv("W2SLAB_DATA_ROOT", "/somewhere/else")
    monkeypatch.setenv("W2SLAB_CACHE", "/another/cache")
    assert tiny_config(tiny).default_name() == name
    assert tiny_config(tiny, seed=1).default_name() != name
    assert name.startswith("toy_weak_to_strong_s0_")


@pytest.mark.parametrize("side, kept", [("left", ["w17", "w18", "w19"]), ("right", ["w10", "w11", "w12"])])
def test_truncation_keeps_the_end_or_the_start(tiny, side, kept):
    model = RoleModel("weak", resolve_model(tiny.weak), TrainConfig(), max_ctx=5, truncation=side)
    encoded = model.encode("test", [{"text": " ".join(f"w{i}" for i in range(10, 20))}, {"text": "w5 w6"}])
    ids = encoded.examples[0]["input_ids"]
    assert len(ids) == 5 and model.tokenizer.convert_ids_to_tokens(ids) == ["[CLS]", *kept, "[SEP]"]
    assert encoded.n_truncated == 1 and len(encoded.examples[1]["input_ids"]) == 4


def test_truncation_drop_removes_long_rows_before_training(tiny, tmp_path):
    lines: list[str] = []
    cfg = tiny_config(tiny, max_ctx=10, truncation="drop", weak_train=TrainConfig(mode="probe", epochs=1),
                      strong_train=TrainConfig(mode="probe", epochs=1))
    result = run(cfg, RuntimeConfig(run_root=str(tmp_path), echo=lines.append))
    sizes = result.summary.resolved["split_sizes"]
    assert sizes["weak_train"] < 48 and sizes["transfer"] < 48 and sizes["test"] < 32
    dropped = [note for note in result.summary.notes if "longer than 10 tokens" in note]
    assert len(dropped) == 4  # one note per split, validation included
    splits = json.loads((result.folder / "splits.json").read_text())
    assert len(splits["test"]) == sizes["test"]


def test_truncation_drop_splits_depend_on_the_tokenizers_that_decide_which_rows_drop(tiny, tmp_path):
    import shutil

    from w2slab.pipeline.graph import build_experiment

    strong = tmp_path / "strong"
    shutil.copytree(tiny.strong, strong)
    cfg = tiny_config(tiny, strong=str(strong), max_ctx=10, truncation="drop")
    before = build_experiment(cfg)
    left = build_experiment(tiny_config(tiny, strong=str(strong))).split.id  # truncation=left
    tokenizer = strong / "tokenizer.json"
    assert tokenizer.is_file()
    tokenizer.write_text(tokenizer.read_text().replace('"[UNK]"', '"[UNKNOWN]"'))  # another tokenizer
    after = build_experiment(cfg)
    assert after.split.id != before.split.id  # the rows that drop may differ: another split
    # truncation=left: no tokenizer decides which rows a split holds, so the split is the same one
    assert build_experiment(tiny_config(tiny, strong=str(strong))).split.id == left


def test_a_run_of_a_user_file_reads_it_once_and_builds_its_graph_once(tmp_path, monkeypatch, capsys):
    """Sizing the run, checking it before any stage, planning and the split stage read the file and built the
    graph over again (three reads, two graphs); now once each."""
    from tests.helpers.tiny import write_tiny_model, write_toy_dataset
    from w2slab.cli import main
    from w2slab.data import custom, loading
    from w2slab.pipeline import graph, sweep

    weak = write_tiny_model(tmp_path / "weak", layers=1, hidden=16)
    strong = write_tiny_model(tmp_path / "strong", layers=1, hidden=32, seed=1)
    data = write_toy_dataset(tmp_path / "toy.jsonl", n=300)
    reads, graphs = [], []
    real_read, real_build = custom.load_custom_file, graph.build_experiment
    monkeypatch.setattr(loading, "load_custom_file", lambda *a, **k: reads.append(a) or real_read(*a, **k))
    monkeypatch.setattr(sweep, "build_experiment", lambda *a, **k: graphs.append(a) or real_build(*a, **k))
    loading._USER_FILES.clear()
    assert main(["run", "--dataset", str(data), "--weak", str(weak), "--strong", str(strong), "--loss", "xent",
                 "--weak.mode", "probe", "--strong.mode", "probe", "--epochs", "1", "--max-ctx", "16",
                 "--run-root", str(tmp_path / "runs")]) == 0  # no --n-train/--n-test: sized from the file
    assert len(reads) == 1 and len(graphs) == 1
    data.write_text(data.read_text() + '{"text": "w5 w9", "label": 1}\n')  # an edited file is read again
    assert main(["run", "--dataset", str(data), "--weak", str(weak), "--strong", str(strong), "--loss", "xent",
                 "--weak.mode", "probe", "--strong.mode", "probe", "--epochs", "1", "--max-ctx", "16",
                 "--run-root", str(tmp_path / "runs"), "--dry-run"]) == 0
    assert len(reads) == 2
