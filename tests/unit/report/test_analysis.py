"""Results as data: a DataFrame whose rows match metrics.json, reports of one experiment folder, paired
comparisons of two runs, and predictions exported with their texts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import w2slab
from w2slab.cli import main


@pytest.fixture(scope="module")
def two_runs(tiny_pair, tmp_path_factory):
    """One run root, two experiments differing only in the strong model's learning rate."""
    root = tmp_path_factory.mktemp("analysis") / "runs"
    common = ["run", "--dataset", tiny_pair.data, "--weak", tiny_pair.weak, "--strong", tiny_pair.strong,
              "--n-train", "96", "--n-test", "48", "--max-ctx", "16", "--loss", "xent,logconf", "--weak.mode",
              "probe", "--strong.mode", "probe", "--epochs", "2", "--run-root", str(root)]
    folders = []
    for name, lr in (("slow", "1e-3"), ("fast", "3e-2")):
        assert main([*common, "--strong.lr", lr, "--name", name]) == 0
        folders.append(root / name)
    return root, folders


def test_load_results_gives_one_row_per_student_matching_metrics_json(two_runs):
    root, (slow, fast) = two_runs
    df = w2slab.load_results(slow)
    metrics = json.loads((slow / "metrics.json").read_text())
    assert sorted(df["student"]) == sorted(metrics["students"]) == ["logconf", "xent"]
    for _, row in df.iterrows():
        student = metrics["students"][row["student"]]
        assert row["student_accuracy"] == pytest.approx(student["accuracy"])
        nan = float("nan")  # metrics.json writes an undefined PGR (no gap) as null, the DataFrame as NaN
        assert row["pgr"] == pytest.approx(nan if student["pgr"] is None else student["pgr"], nan_ok=True)
        assert row["ceiling_accuracy"] == pytest.approx(metrics["ceiling"]["accuracy"])
        assert row["strong_train.lr"] == pytest.approx(1e-3) and row["n_train"] == 96  # config fields, flattened
    everything = w2slab.load_results(root)  # the run root: both experiments
    assert len(everything) == 4 and set(everything["strong_train.lr"]) == {1e-3, 3e-2}
    assert everything.groupby("strong_train.lr").config_id.nunique().tolist() == [2, 2]  # a config per student
    assert "load_results" in dir(w2slab) and "compare" in dir(w2slab)
    assert {"diagnostics.misfit", "diagnostics.capa_weak_ceiling"} <= set(everything.columns)


def test_report_takes_an_experiment_folder(two_runs, capsys):
    _, (slow, _) = two_runs
    assert main(["report", str(slow)]) == 0
    summary = (slow / "report" / "summary.md").read_text()
    assert "xent" in summary and "logconf" in summary


def test_compare_pairs_two_runs_example_by_example(two_runs, capsys):
    _, (slow, fast) = two_runs
    rows = w2slab.compare(slow, fast)
    assert {r["student"] for r in rows} == {"xent", "logconf"}
    a, b = w2slab.load_results(slow), w2slab.load_results(fast)
    for row in rows:
        expected = (b.set_index("student").student_accuracy[row["student"]]
                    - a.set_index("student").student_accuracy[row["student"]])
        assert row["diff_mean"] == pytest.approx(expected) and row["n_examples"] == 48
        assert row["diff_lo"] <= row["diff_mean"] <= row["diff_hi"]
    ceiling = w2slab.compare(slow, fast, role="ceiling")
    assert all(r["n_seeds"] == 1 for r in ceiling)
    capsys.readouterr()
    assert main(["compare", str(slow), str(fast)]) == 0
    assert "B - A in test accuracy" in capsys.readouterr().out


def test_test_predictions_carry_texts_labels_and_every_model(two_runs, tiny_pair):
    _, (slow, _) = two_runs
    rows = [json.loads(line) for line in (slow / "predictions" / "test.jsonl").read_text().splitlines()]
    splits = json.loads((slow / "splits.json").read_text())
    texts = {json.loads(line)["text"] for line in Path(tiny_pair.data).read_text().splitlines()}
    assert [r["id"] for r in rows] == splits["test"] and len(rows) == 48
    assert all(r["text"] in texts and r["label"] in (0, 1) for r in rows)
    for role in ("weak", "ceiling", "student xent", "student logconf"):
        assert all(r[role]["prediction"] == max(range(2), key=r[role]["probs"].__getitem__) for r in rows)
    accuracy = sum(r["student xent"]["prediction"] == r["label"] for r in rows) / len(rows)
    assert accuracy == pytest.approx(w2slab.load_results(slow).set_index("student").student_accuracy["xent"])


def test_keep_weights_keeps_every_model_of_an_experiment(tiny_pair, tmp_path):
    """--keep-weights: the ceiling's and students' trained parameters beside the weak model's, for probing later;
    without it the folder holds none and the config (and its identity) is what it was."""
    import numpy as np
    import torch
    from safetensors.torch import load_file

    root = tmp_path / "runs"
    args = ["run", "--dataset", tiny_pair.data, "--weak", tiny_pair.weak, "--strong", tiny_pair.strong,
            "--n-train", "64", "--n-test", "32", "--max-ctx", "16", "--loss", "xent", "--weak.mode", "probe",
            "--strong.mode", "probe", "--epochs", "1", "--run-root", str(root), "--name", "kept"]
    assert main([*args, "--name", "plain"]) == 0
    assert not (root / "plain" / "weights").exists()
    assert main([*args, "--keep-weights"]) == 0
    weights = root / "kept" / "weights"
    assert sorted(p.name for p in weights.iterdir()) == ["ceiling.safetensors", "student_xent.safetensors",
                                                         "weak.safetensors"]
    state = load_file(str(weights / "student_xent.safetensors"))  # a probe: the head is what trained
    assert state and all(torch.isfinite(t).all() for t in state.values())
    plain = json.loads((root / "plain" / "config.json").read_text())
    kept = json.loads((root / "kept" / "config.json").read_text())
    assert "keep_weights" not in plain["strong_train"] and kept["strong_train"]["keep_weights"] is True
    with np.load(root / "kept" / "predictions" / "student_xent_test.npz") as data:
        assert data["probs"].shape == (32, 2)
