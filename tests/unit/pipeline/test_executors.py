"""Ray workers: identities checked where the stage runs, a run root every node must see, no secrets forwarded."""

from __future__ import annotations

import pytest

from w2slab.config import ExperimentConfig, TrainConfig
from w2slab.errors import W2SError
from w2slab.pipeline import executors, graph
from w2slab.pipeline.graph import build_experiment


@pytest.fixture(scope="module")
def tiny(tiny_pair):
    return tiny_pair


def ceiling(tiny):
    cfg = ExperimentConfig(dataset=tiny.data, weak=tiny.weak, strong=tiny.strong, losses=("xent",), n_train=32,
                           n_test=16, max_ctx=16, strong_train=TrainConfig(precision="auto"))
    stage = build_experiment(cfg).ceiling
    return stage, stage.describe()  # as the driver plans and describes it


def test_a_worker_that_resolves_precision_or_device_otherwise_refuses_the_stage(tiny, tmp_path, monkeypatch):
    stage, planned = ceiling(tiny)
    executors.check_worker(stage, planned, str(tmp_path))  # same machine: accepted
    monkeypatch.setattr(graph, "resolved_precision", lambda precision: {"precision": "bf16", "device": "cuda"})
    with pytest.raises(W2SError, match=r"would compute another result on node .*its config resolve"):
        executors.check_worker(stage, planned, str(tmp_path))


def test_a_worker_with_other_library_versions_refuses_the_stage(tiny, tmp_path, monkeypatch):
    stage, planned = ceiling(tiny)
    other = {**graph.result_versions(), "torch": "9.9.9"}
    monkeypatch.setattr(graph, "result_versions", lambda: other)
    monkeypatch.setattr(executors, "result_versions", lambda: other)
    with pytest.raises(W2SError, match="its versions resolve differently"):
        executors.check_worker(stage, planned, str(tmp_path))


def test_a_worker_that_cannot_see_the_run_root_says_so(tiny, tmp_path):
    stage, planned = ceiling(tiny)
    with pytest.raises(W2SError, match="must be on storage every node mounts"):
        executors.check_worker(stage, planned, str(tmp_path / "not-mounted-here"))


def test_tokens_are_not_forwarded_to_ray_workers(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("W2SLAB_DATA_ROOT", "/data")
    forwarded = executors.forwarded_environment()
    assert "HF_TOKEN" not in forwarded and "hf_secret" not in forwarded.values()
    assert forwarded["HF_HUB_OFFLINE"] == "1" and forwarded["W2SLAB_DATA_ROOT"] == "/data"


def test_a_ray_address_where_nothing_listens_is_one_line():
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(W2SError, match=f"--ray-address 127.0.0.1:{port}: nothing answers there"):
        executors.check_reachable(f"127.0.0.1:{port}")
    with pytest.raises(W2SError, match="expected HOST:PORT"):
        executors.check_reachable("not-an-address")
    executors.check_reachable("auto")  # left to Ray


def test_tracker_settings_reach_ray_workers_and_their_secrets_do_not(monkeypatch):
    settings = {"MLFLOW_TRACKING_URI": "http://tracker:5000", "MLFLOW_EXPERIMENT_NAME": "w2s", "WANDB_MODE": "offline",
                "WANDB_PROJECT": "w2s", "WANDB_DIR": "/shared/wandb"}
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("WANDB_API_KEY", "wandb-secret")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "mlflow-secret")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "mlflow-token")
    forwarded = executors.forwarded_environment()
    assert {key: forwarded.get(key) for key in settings} == settings
    assert not {"WANDB_API_KEY", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"} & set(forwarded)


def test_more_gpus_per_training_than_a_local_ray_instance_has_is_refused_before_ray_starts(tiny, monkeypatch):
    import sys

    cfg = ExperimentConfig(dataset=tiny.data, weak=tiny.weak, strong=tiny.strong, losses=("xent",), n_train=32,
                           n_test=16, max_ctx=16)
    stages = build_experiment(cfg).stages()
    monkeypatch.setattr(executors, "local_gpus", lambda: 0)
    monkeypatch.setitem(sys.modules, "ray", None)  # reaching `import ray` would be too late: it must not start
    with pytest.raises(W2SError, match=r"--gpus-per-training 1: the local Ray instance has 0 GPU\(s\)") as info:
        executors.execute_ray(stages, None, None, gpus_per_training=1.0)
    assert "\n" not in str(info.value)
    monkeypatch.setattr(executors, "local_gpus", lambda: 2)
    executors.check_local_gpus(stages, 2.0)  # what there is: accepted
    with pytest.raises(W2SError, match="has 2 GPU"):
        executors.check_local_gpus(stages, 2.5)
