"""The test set is read once, by evaluation: no other stage reads its labels; the validation split is disjoint."""

from __future__ import annotations

import json

import pytest

from w2slab.api import run
from w2slab.config import ExperimentConfig, RuntimeConfig, TrainConfig
from w2slab.data import TaskData, make_splits
from w2slab.pipeline.artifacts import HeldOutLabelsError, StageFolder

METHODS = ({"name": "none"}, {"name": "conf_filter", "drop": 0.25}, {"name": "oracle_select"},
           {"name": "synthetic_flip", "rate": 0.25}, {"name": "ensemble", "seeds": 2}, {"name": "select"},
           {"name": "trust", "labelled": 20}, {"name": "selective", "labelled": 20}, {"name": "ensemw2s", "rounds": 2})


def test_no_stage_but_evaluate_reads_the_test_labels(tiny_pair, tmp_path, test_label_readers):
    """Every kind of method runs (an oracle, a synthetic supervisor that simulates its test predictions from
    truth, an ensemble, selection, trust, boosting) while every read of the test labels is traced to the function
    that asked: only the evaluate stage (and the experiment folder written from its results) may."""
    readers = test_label_readers
    probe = TrainConfig(mode="probe", epochs=2, batch_size=16, lr=1e-2)
    cfg = ExperimentConfig(dataset=tiny_pair.data, weak=tiny_pair.weak, strong=tiny_pair.strong,
                           losses=["xent", "logconf"], methods=METHODS, n_train=160, n_test=48, n_val=40,
                           max_ctx=16, weak_train=probe, strong_train=probe)
    result = run(cfg, RuntimeConfig(run_root=str(tmp_path), echo=lambda *a: None))
    assert len(result.summary.results) == 2 * len(METHODS)
    assert readers and set(readers) <= {"compute_evaluate", "write_experiment_folder"}, sorted(set(readers))
    assert "compute_evaluate" in readers
    # the split stage keeps the test labels apart: its rows carry none
    split_dir = next(path.parent for path in tmp_path.rglob("splits.json") if (path.parent / "test_labels.json")
                     .exists())
    rows = json.loads((split_dir / "splits.json").read_text())
    assert rows["test"] and all("label" not in row for row in rows["test"])
    assert all("label" in row for name in ("weak_train", "transfer", "validation") for row in rows[name])
    with pytest.raises(HeldOutLabelsError, match="only the evaluate stage"):
        StageFolder(split_dir).test_labels("student")
    # every result says how its models did on validation, the split every tuning choice reads
    plain = result.summary.results["xent"]
    assert plain.validation["size"] == 40 and 0 <= plain.validation["ceiling_accuracy"] <= 1


def _pool(prefix: str, n: int) -> list[dict]:
    return [{"id": f"{prefix}/{i}", "text": f"{prefix} text {i}", "label": i % 2} for i in range(n)]


def test_validation_is_disjoint_balanced_shared_by_seeds_and_leaves_the_other_splits_unchanged():
    task = TaskData(name="toy", train=_pool("train", 1200), test=_pool("test", 400))
    without = make_splits(task, n_train=400, n_test=200, seed=0)
    for seed in (0, 1):
        splits = make_splits(task, n_train=400, n_test=200, seed=seed, n_val=300)
        ids = {name: {r["id"] for r in getattr(splits, name)} for name in ("weak_train", "transfer", "validation",
                                                                            "test")}
        assert len(ids["validation"]) == 300 and sum(r["label"] for r in splits.validation) == 150
        assert sum(len(v) for v in ids.values()) == len(set().union(*ids.values()))  # disjoint
        if seed == 0:
            first = ids["validation"]
            # adding validation changes neither the pool nor the test set (the default's numbers stand)
            assert [r["id"] for r in splits.weak_train] == [r["id"] for r in without.weak_train]
            assert [r["id"] for r in splits.test] == [r["id"] for r in without.test]
        else:
            assert ids["validation"] == first  # one validation set per data_seed, as the test set
    short = make_splits(task, n_train=400, n_test=200, seed=0, n_val=5000)
    assert len(short.validation) == 800 and any("validation has 800" in note for note in short.notes)


def test_the_default_experiment_holds_a_validation_set_disjoint_from_the_other_three(data_root):
    from w2slab.data import load_task

    cfg = ExperimentConfig()
    task = load_task(cfg.dataset, seed=cfg.data_seed, data_root=data_root)
    splits = make_splits(task, n_train=cfg.n_train, n_test=cfg.n_test, seed=cfg.seed, data_seed=cfg.data_seed,
                         n_val=cfg.n_val)
    ids = [{r["id"] for r in getattr(splits, name)} for name in ("weak_train", "transfer", "validation", "test")]
    assert [len(x) for x in ids] == [1000, 1000, 500, 1800]
    assert len(set().union(*ids)) == sum(len(x) for x in ids)
