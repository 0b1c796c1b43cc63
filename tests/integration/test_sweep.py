"""Sweeps as a stage graph on the small ladder models: exact stage counts, caching, crash-resume, Ray."""

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from w2slab.api import sweep
from w2slab.config import RuntimeConfig
from w2slab.models.loading import default_cache_dir
from w2slab.models.packaged import COMPLETE_MARKER, PACKAGED
from w2slab.pipeline.store import StageStore
from w2slab.pipeline.sweep import parse_sweep
from w2slab.results import read_results

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration

SWEEP = {
    "datasets": ["sciq"], "weak": ["minilm-l3", "minilm-l6"], "strong": ["minilm-l6"], "losses": ["xent", "logconf"],
    "seeds": [0, 1], "n_train": 32, "n_test": 32, "max_ctx": 48,
    # fp32: executors are compared number for number, and bf16 matmuls on a CPU can round differently with
    # the worker's thread count (fp32 ones agree here)
    "weak_train": {"mode": "full", "epochs": 1, "batch_size": 8, "precision": "fp32"},
    "strong_train": {"mode": "full", "epochs": 2, "batch_size": 8, "precision": "fp32"},
}
METRICS = ("weak_accuracy", "ceiling_accuracy", "student_accuracy", "weak_auroc", "ceiling_auroc", "student_auroc",
           "pgr")


@pytest.fixture(scope="module")
def models_ready():
    cache = default_cache_dir()
    missing = [m for m in ("minilm-l3", "minilm-l6")
               if not (cache / m / COMPLETE_MARKER).exists() and PACKAGED[m].missing_wheels(cache, m)]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing} not downloaded in CI; .ci/run must run `w2s models install` for them")
        pytest.skip(f"{missing} not downloaded (w2s models install ...)")


def quiet(*_args):
    pass


def sweep_configs():
    return parse_sweep(SWEEP).configs


def run_sweep(root, data_root, **options):
    result = sweep(sweep_configs(), RuntimeConfig(run_root=str(root), data_root=str(data_root), echo=quiet),
                   **options)
    return result.plan, [dataclasses.asdict(r) for r in result.results]


def trainings(root: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in StageStore(root).events():
        if event["event"] == "done" and event["kind"] in ("weak_train", "ceiling", "student"):
            counts[event["kind"]] = counts.get(event["kind"], 0) + 1
    return counts


def metrics_by_experiment(records):
    return {(r["weak"], r["student"], r["seed"]): tuple(r[k] for k in METRICS) for r in records}


def same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        for x, y in zip(a[key], b[key], strict=True):
            assert (math.isnan(x) and math.isnan(y)) or x == y, (key, a[key], b[key])


@pytest.fixture(scope="module")
def reference_sweep(models_ready, data_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    plan, records = run_sweep(root, data_root)
    return root, plan, records


def test_sweep_trains_exactly_the_distinct_stages(reference_sweep):
    root, plan, records = reference_sweep
    counts = plan.counts()
    assert {k: v["total"] for k, v in counts.items()} == {
        "split": 2, "weak_train": 4, "weak_label": 4, "ceiling": 2, "student": 8, "evaluate": 8}
    assert all(v["new"] == v["total"] for v in counts.values())  # a cold run
    assert trainings(root) == {"weak_train": 4, "ceiling": 2, "student": 8}
    assert len(records) == 8 and len(list((root / "experiments").glob("*/result.json"))) == 8
    self_pairs = [r for r in records if r["weak"] == "minilm-l6"]
    assert self_pairs and all(r["self_pair"] and r["weak_not_smaller"] for r in self_pairs)
    assert not any(r["self_pair"] for r in records if r["weak"] == "minilm-l3")


def test_rerunning_a_finished_sweep_trains_nothing(reference_sweep, data_root):
    root, _, records = reference_sweep
    before = len(StageStore(root).events())
    plan, again = run_sweep(root, data_root)
    assert all(v["new"] == 0 for v in plan.counts().values())
    new_events = StageStore(root).events()[before:]
    assert not [e for e in new_events if e["event"] in ("start", "done")]  # nothing was computed again
    assert trainings(root) == {"weak_train": 4, "ceiling": 2, "student": 8}
    same(metrics_by_experiment(again), metrics_by_experiment(records))


#: (training name, step): where each attempt of the crash test dies, after that step's checkpoint was written.
CRASHES = (("weak", 1), ("ceiling", 2), ("student logconf", 3), ("student xent", 1))


def test_injected_crashes_then_resume_give_the_same_metrics(reference_sweep, data_root, tmp_path):
    """Each attempt dies like a SIGKILL (os._exit, no clean-up) inside a training; the next resumes it."""
    _, _, reference = reference_sweep
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump(SWEEP))
    root = tmp_path / "crashed"
    env = {**os.environ, "W2SLAB_QUIET": "1", "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH",
                                                                                                         "")])}

    def attempt(*crash: str) -> subprocess.CompletedProcess:
        command = [sys.executable, str(REPO / "tests" / "helpers" / "crash_sweep.py"), str(sweep_file), str(root),
                   str(data_root), *crash]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)

    for name, step in CRASHES:
        crashed = attempt("train", name, str(step))
        assert crashed.returncode == 137, crashed.stderr[-2000:]  # it died where it was told to
        states = {row["state"] for row in StageStore(root).status()}
        assert "interrupted" in states and "failed" not in states
    finished = attempt()
    assert finished.returncode == 0, finished.stderr[-2000:]
    records = [dataclasses.asdict(r) for r in read_results(root)]
    same(metrics_by_experiment(records), metrics_by_experiment(reference))
    events = StageStore(root).events()
    done = [e["id"] for e in events if e["event"] == "done"]
    assert len(done) == len(set(done)) == 28  # every stage finished exactly once: none recomputed
    resumed = [e for e in events if e["event"] == "start" and e.get("resumed")]
    assert len(resumed) == len(CRASHES)  # each crashed training resumed from its checkpoint, once
    assert {e["kind"] for e in resumed} == {"weak_train", "ceiling", "student"}
    assert all(row["state"] == "done" for row in StageStore(root).status())


def test_ray_executor_gives_the_same_metrics(reference_sweep, data_root, tmp_path):
    pytest.importorskip("ray")
    _, _, reference = reference_sweep
    result = sweep(sweep_configs(), RuntimeConfig(run_root=str(tmp_path / "ray"), data_root=str(data_root),
                                                  executor="ray", echo=quiet), ray_cpus=2)
    records = [dataclasses.asdict(r) for r in result.results]
    assert trainings(tmp_path / "ray") == {"weak_train": 4, "ceiling": 2, "student": 8}
    same(metrics_by_experiment(records), metrics_by_experiment(reference))


def test_accelerate_launch_on_two_processes_writes_each_stage_once(models_ready, data_root, tmp_path):
    """DDP (gloo on CPU): both ranks train every stage, only the main rank writes it."""
    # torchrun: `accelerate launch --cpu --num_processes 2` starts a single process on a CPU machine
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "w2slab.cli", "run",
               "--dataset", "sst2", "--weak", "minilm-l3", "--strong", "minilm-l3", "--n-train", "32", "--n-test", "16",
               "--weak-mode", "full", "--strong-mode", "full", "--epochs", "1", "--batch-size", "8", "--loss", "xent",
               "--weak.length", "fixed", "--strong.length", "fixed",  # one training each: its steps are counted
               "--data-root", str(data_root), "--out-dir", str(tmp_path)]
    done = subprocess.run(command, env={**os.environ, "W2SLAB_QUIET": "1"}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    events = StageStore(tmp_path).events()
    finished = [e["id"] for e in events if e["event"] == "done"]
    assert len(finished) == len(set(finished)) == 6
    assert {e["pid"] for e in events if e["event"] == "done"} == {events[0]["pid"]}  # one writer
    assert len(list(tmp_path.glob("sst2_minilm-l3_to_minilm-l3_s0_*/metrics.json"))) == 1
    # steps counted from what each rank's prepared loader yields: 16 weak-train rows, batch 8, 2 ranks -> 1 step
    (weak_log,) = tmp_path.glob("stages/weak_train/*/log.jsonl")
    steps = [json.loads(line) for line in weak_log.read_text().splitlines() if '"step"' in line]
    assert len(steps) == 1, steps


def test_two_concurrent_runs_of_one_config_both_finish_with_one_folder(models_ready, data_root, tmp_path):
    """Stage locks make the second run wait and reuse; the experiment folder is published race-free."""
    command = [sys.executable, "-m", "w2slab.cli", "run", "--dataset", "sst2", "--weak", "minilm-l3", "--strong",
               "minilm-l3", "--n-train", "32", "--n-test", "16", "--epochs", "1", "--batch-size", "8", "--loss",
               "xent", "--data-root", str(data_root), "--out-dir", str(tmp_path)]
    env = {**os.environ, "W2SLAB_QUIET": "1"}
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outputs = [run.communicate(timeout=600) for run in runs]
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0 and "Traceback" not in out + err, err[-2000:]
    folders = [p for p in tmp_path.iterdir() if p.name.startswith("sst2_")]
    assert len(folders) == 1 and (folders[0] / "metrics.json").is_file()
    assert not [p.name for p in tmp_path.iterdir() if ".replaced." in p.name]
    finished = [e["id"] for e in StageStore(tmp_path).events() if e["event"] == "done"]
    assert len(finished) == len(set(finished))  # each stage computed once, the other run reused it
