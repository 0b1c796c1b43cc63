"""Tracking as the ecosystem does it: one run per experiment grouped by its config id, each training a job of
that group, the resolved config and the final numbers logged; offline, under the run root."""

from __future__ import annotations

import pytest

from w2slab.cli import main


def test_mlflow_and_tensorboard_get_one_run_per_experiment_and_a_job_per_training(tiny_pair, tmp_path, monkeypatch,
                                                                                   capsys):
    pytest.importorskip("tensorboard")
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = tmp_path / "runs"
    assert main(["run", "--dataset", tiny_pair.data, "--weak", tiny_pair.weak, "--strong", tiny_pair.strong,
                 "--n-train", "64", "--n-test", "32", "--max-ctx", "16", "--loss", "xent,logconf", "--weak.mode",
                 "probe", "--strong.mode", "probe", "--epochs", "1", "--run-root", str(root),
                 "--log", "tensorboard,mlflow"]) == 0
    import w2slab

    df = w2slab.load_results(root)
    (folder,) = [p for p in root.iterdir() if (p / "metrics.json").is_file()]
    config_id = folder.name.rsplit("_", 1)[1]  # the experiment config's identity ends its folder name
    client = mlflow.tracking.MlflowClient(f"sqlite:///{root / 'tracking' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("w2slab")
    runs = client.search_runs([experiment.experiment_id])
    jobs = sorted(run.data.tags["w2slab.job"] for run in runs)
    assert jobs == ["ceiling", "experiment", "student", "student", "weak_train"]
    groups = {run.data.tags["w2slab.group"] for run in runs}
    assert groups == {config_id}  # every job in its experiment's group
    (experiment_run,) = [run for run in runs if run.data.tags["w2slab.job"] == "experiment"]
    metrics = experiment_run.data.metrics
    for label in ("xent", "logconf"):
        assert metrics[f"{label}/student_accuracy"] == pytest.approx(
            df.set_index("student").student_accuracy[label])
    assert metrics["ceiling_accuracy"] == pytest.approx(df.ceiling_accuracy.iloc[0])
    params = experiment_run.data.params
    assert params["dataset"] == tiny_pair.data and params["strong_train.mode"] == "probe" and "resolved.weak.lr" in \
        " ".join(params)
    training = [run for run in runs if run.data.tags["w2slab.job"] == "student"]
    assert all(client.get_metric_history(run.info.run_id, "loss") for run in training)  # per-step losses
    assert len(list((root / "tracking").rglob("events.out.tfevents.*"))) >= 5  # 4 trainings and the experiment


def test_a_tracker_whose_library_is_missing_is_one_line(monkeypatch, tiny_pair, tmp_path, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    assert main(["run", "--dataset", tiny_pair.data, "--run-root", str(tmp_path), "--log", "mlflow"]) == 2
    assert "--log mlflow needs the mlflow package" in capsys.readouterr().err
    assert not (tmp_path / "stages").exists()
