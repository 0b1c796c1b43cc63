"""Results are never reused when what produced them changed; crashes at any point resume to the same numbers.

On tiny config-built models and toy data files (no data root), except the registered-dataset case.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers.tiny import toy_collate, toy_examples
from w2slab import fingerprint
from w2slab.api import sweep
from w2slab.config import ExperimentConfig, RuntimeConfig, TrainConfig
from w2slab.errors import ConfigError
from w2slab.pipeline import graph as graph_module
from w2slab.pipeline.graph import build_experiment, dataset_revision
from w2slab.pipeline.store import StageStore
from w2slab.results import read_results
from w2slab.train.trainer import CHECKPOINT_POINTER, TrainerCallback

REPO = Path(__file__).resolve().parents[3]
TRAIN = {"mode": "full", "epochs": 1, "batch_size": 16, "lr": 3e-3}


@pytest.fixture
def tiny(fresh_tiny):
    return fresh_tiny


def spec(tiny, **overrides) -> dict:
    return {"dataset": tiny.data, "weak": tiny.weak, "strong": tiny.strong, "losses": ["xent"], "n_train": 64,
            "n_test": 32, "max_ctx": 16, "weak_train": TRAIN, "strong_train": TRAIN, **overrides}


def run_sweep(tiny, *configs: dict, **runtime) -> dict[str, dict[str, int]]:
    result = sweep([ExperimentConfig.from_dict(c) for c in configs or [spec(tiny)]],
                   RuntimeConfig(run_root=str(tiny.root), echo=lambda *_: None, **runtime))
    return result.plan.counts()


def new(counts: dict[str, dict[str, int]]) -> dict[str, int]:
    return {kind: row["new"] for kind, row in counts.items()}


def flip_a_byte(path: Path, offset: int = -100) -> None:
    """Change one byte in place: same size, new content."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_editing_a_byte_of_a_local_models_weights_reruns_only_its_stages(tiny):
    assert new(run_sweep(tiny)) == {"split": 1, "weak_train": 1, "weak_label": 1, "ceiling": 1, "student": 1,
                                    "evaluate": 1}
    flip_a_byte(Path(tiny.weak) / "model.safetensors")
    counts = run_sweep(tiny)
    assert new(counts) == {"split": 0, "weak_train": 1, "weak_label": 1, "ceiling": 0, "student": 1, "evaluate": 1}
    flip_a_byte(Path(tiny.strong) / "model.safetensors")
    assert new(run_sweep(tiny)) == {"split": 0, "weak_train": 0, "weak_label": 0, "ceiling": 1, "student": 1,
                                    "evaluate": 1}
    assert new(run_sweep(tiny)) == dict.fromkeys(counts, 0)  # and then everything is reused


def test_editing_a_data_file_reruns_everything_that_read_it(tiny):
    run_sweep(tiny)
    lines = Path(tiny.data).read_text().splitlines()
    row = json.loads(lines[0])
    lines[0] = json.dumps({**row, "text": row["text"] + " w9"})
    Path(tiny.data).write_text("\n".join(lines) + "\n")
    assert all(n == 1 for n in new(run_sweep(tiny)).values())


def test_editing_a_registered_datasets_files_under_the_data_root_changes_its_split(data_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(data_root / "sst2", root / "sst2")
    before = dataset_revision("sst2", "auto", str(root))
    assert before.startswith("local:sst2:") and dataset_revision("sst2", "auto", str(root)) == before
    flip_a_byte(root / "sst2" / "glue_validation.tsv", offset=-3)
    assert dataset_revision("sst2", "auto", str(root)) != before
    cfg = ExperimentConfig(dataset="sst2", weak="minilm-l3", strong="minilm-l3", losses=["xent"])
    assert build_experiment(cfg, str(root)).split.id != build_experiment(cfg, str(data_root)).split.id


def test_editing_w2slab_source_changes_every_identity(tiny, tmp_path, monkeypatch):
    copy = tmp_path / "w2slab_copy"
    shutil.copytree(fingerprint.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    digest = fingerprint.source_digest(copy)
    losses = copy / "losses" / "base.py"
    losses.write_text(losses.read_text() + "\n# an edit\n")
    assert fingerprint.source_digest.__wrapped__(copy) != digest  # uncached: the edit shows

    run_sweep(tiny)
    monkeypatch.setattr(fingerprint, "source_digest", lambda *_: "edited-source")
    graph_module.result_versions.cache_clear()
    try:
        assert all(n == 1 for n in new(run_sweep(tiny)).values())
    finally:
        graph_module.result_versions.cache_clear()


def test_auto_precision_is_identified_by_what_it_resolves_to(tiny, monkeypatch):
    auto = {**TRAIN, "precision": "auto"}
    fixed = {**TRAIN, "precision": "fp32"}
    import w2slab.train.precision as precision

    cfg = ExperimentConfig.from_dict(spec(tiny, weak_train=fixed, strong_train=auto))
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)  # a CPU without bf16 units
    on_cpu = build_experiment(cfg)
    cpu_ids = (on_cpu.split.id, on_cpu.weak_train.id, on_cpu.ceiling.id)  # identities are fixed when first read
    assert on_cpu.ceiling.config()["train"]["precision"] == "fp32"  # recorded resolved, never "auto"

    resolve = precision.resolve_precision
    monkeypatch.setattr(precision, "resolve_precision",
                        lambda p, device=None: "bf16" if p == "auto" else resolve(p, device))
    on_gpu_like = build_experiment(cfg)
    assert (on_gpu_like.split.id, on_gpu_like.weak_train.id) == cpu_ids[:2]  # fp32 given explicitly: unchanged
    assert on_gpu_like.ceiling.id != cpu_ids[2]


def test_recompute_runs_a_kind_and_what_depends_on_it_again_with_the_same_numbers(tiny):
    run_sweep(tiny)
    before = read_results(tiny.root)
    counts = run_sweep(tiny, recompute=("student",))
    assert new(counts) == {"split": 0, "weak_train": 0, "weak_label": 0, "ceiling": 0, "student": 1, "evaluate": 1}
    forced = [e for e in StageStore(tiny.root).events() if e["event"] == "start" and e.get("forced")]
    assert sorted(e["kind"] for e in forced) == ["evaluate", "student"]
    after = read_results(tiny.root)
    assert [dataclasses.asdict(r) for r in after] == [dataclasses.asdict(r) for r in before]
    with pytest.raises(ConfigError, match="recompute: unknown stage kind studnet"):
        run_sweep(tiny, recompute=("studnet",))


def test_ctrl_c_leaves_a_stage_interrupted_and_resumable(tiny):
    class CtrlC(TrainerCallback):
        observes_only = True  # it interrupts; the resumed training must be the same stage

        def on_step_end(self, trainer, state, row):
            if trainer.name == "ceiling" and state.step == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(tiny, checkpoint_every=1, checkpoint_seconds=0, callbacks=(CtrlC(),))
    store = StageStore(tiny.root)
    states = {row["kind"]: row["state"] for row in store.status()}
    assert states["ceiling"] == "interrupted" and states["weak_train"] == "done"
    assert [e["event"] for e in store.events() if e["kind"] == "ceiling"] == ["start", "interrupted"]
    run_sweep(tiny, checkpoint_every=1, checkpoint_seconds=0)
    resumed = [e for e in store.events() if e["event"] == "start" and e["kind"] == "ceiling"]
    assert resumed[-1]["resumed"] is True
    assert all(row["state"] == "done" for row in store.status())


def test_status_tolerates_a_torn_stage_json(tmp_path):
    partial = tmp_path / "stages" / "student" / "abc.partial"
    partial.mkdir(parents=True)
    (partial / "stage.json").write_text('{"label": "stud')  # cut short by a kill mid-write
    (row,) = StageStore(tmp_path).status()
    assert row["state"] == "interrupted" and "unreadable" in row["label"]


def test_an_incomplete_checkpoint_means_a_fresh_start_with_a_note(tmp_path, capsys):
    from tests.helpers.tiny import tiny_bert
    from w2slab.losses import make_loss
    from w2slab.models.loading import apply_training_mode
    from w2slab.models.registry import FAMILIES
    from w2slab.train.trainer import train_model

    cfg = TrainConfig(epochs=1, batch_size=16, precision="fp32")

    def train(folder):
        model = apply_training_mode(tiny_bert(), "full", FAMILIES["bert"])
        return train_model(model, toy_examples(), toy_collate(), make_loss("xent"), cfg, lr=3e-3, seed=0, desc="t",
                           checkpoint_dir=folder, checkpoint_every=0)

    plain = train(tmp_path / "plain")
    broken = tmp_path / "broken"
    (broken / "checkpoint-2").mkdir(parents=True)  # a checkpoint whose files never made it to disk
    (broken / "checkpoint-2" / "trainer_state.json").write_text(json.dumps({"step": 2}))
    (broken / CHECKPOINT_POINTER).write_text(json.dumps({"dir": "checkpoint-2"}))
    again = train(broken)
    err = capsys.readouterr().err
    assert "is incomplete" in err and "training from the start" in err
    assert [r["loss"] for r in again.log] == [r["loss"] for r in plain.log]
    assert not (broken / CHECKPOINT_POINTER).exists()


#: In pipeline order: each attempt gets past the previous point (its stage finished then) and dies at the next.
CRASH_POINTS = [("publish", "split"), ("train", "weak", "1"), ("cleanup", "ceiling"), ("publish", "student")]


def test_kills_during_checkpoint_cleanup_and_stage_rename_then_resume(tiny, tmp_path):
    """Each attempt dies (os._exit) at one point; the next run completes with the uninterrupted metrics."""
    experiment = spec(tiny, losses=["xent", "logconf"])
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump({"datasets": [experiment.pop("dataset")], "weak": [experiment.pop("weak")],
                                          "strong": [experiment.pop("strong")], **experiment}))
    env = {**os.environ, "W2SLAB_QUIET": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}

    def attempt(root: Path, *crash: str) -> subprocess.CompletedProcess:
        command = [sys.executable, str(REPO / "tests" / "helpers" / "crash_sweep.py"), str(sweep_file), str(root), "-",
                   *crash]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)

    reference = tmp_path / "reference"
    assert attempt(reference).returncode == 0
    crashed = tmp_path / "crashed"
    for point in CRASH_POINTS:
        done = attempt(crashed, *point)
        assert done.returncode == 137, (point, done.stderr[-2000:])
    finished = attempt(crashed)
    assert finished.returncode == 0, finished.stderr[-2000:]

    def metrics(root: Path) -> list[dict]:
        return sorted((dataclasses.asdict(r) for r in read_results(root)), key=lambda r: r["student"])

    expected, got = metrics(reference), metrics(crashed)
    for row in (*expected, *got):
        row.pop("experiment_id"), row.pop("resolved")
    assert got == expected
    store = StageStore(crashed)
    assert all(row["state"] == "done" for row in store.status())
    done = [e["id"] for e in store.events() if e["event"] == "done"]
    assert len(done) == len(set(done)) == 8  # every stage published once (split, weak x2, ceiling, 2 x student+eval)
    assert [e for e in store.events() if e.get("recovered")]  # a stage killed mid-rename was published, not redone


def test_hub_models_and_datasets_are_pinned_to_a_commit_and_loaded_at_it(monkeypatch):
    from w2slab.pipeline.graph import model_revision, pinned_revision

    asked = []

    def commit(repo_id, repo_type="model"):
        asked.append((repo_id, repo_type))
        return "0123abcd" if repo_id != "gone/model" else None

    monkeypatch.setattr(fingerprint, "hub_commit", commit)
    fingerprint.pinned_hub_commit.cache_clear()
    try:
        assert model_revision("google/gemma-2b") == "hub:google/gemma-2b@0123abcd"
        assert model_revision("google/gemma-2b") == "hub:google/gemma-2b@0123abcd"
        assert asked.count(("google/gemma-2b", "model")) == 1  # resolved once per process
        assert pinned_revision("hub:google/gemma-2b@0123abcd") == "0123abcd"
        assert model_revision("gone/model") == "hub:gone/model@unresolved" and pinned_revision(
            "hub:gone/model@unresolved") is None
        assert pinned_revision("folder:abc") is None and pinned_revision("pypi:x==1") is None
        revision = dataset_revision("sst2", "hub")
        assert revision == "hub:stanfordnlp/sst2@0123abcd" and ("stanfordnlp/sst2", "dataset") in asked
    finally:
        fingerprint.pinned_hub_commit.cache_clear()


def test_a_local_data_root_and_the_hub_are_different_sources(data_root, monkeypatch):
    monkeypatch.setattr(fingerprint, "hub_commit", lambda *_: "feedbeef")
    fingerprint.pinned_hub_commit.cache_clear()
    try:
        local, hub = dataset_revision("sst2", "auto", str(data_root)), dataset_revision("sst2", "hub", str(data_root))
        assert local.startswith("local:sst2:") and hub == "hub:stanfordnlp/sst2@feedbeef"
    finally:
        fingerprint.pinned_hub_commit.cache_clear()


def test_outputs_are_fsynced_before_the_done_marker(tmp_path, monkeypatch):
    from w2slab import atomic
    from w2slab.pipeline import store as store_module

    seen = []
    real = atomic.fsync_tree
    monkeypatch.setattr(store_module.atomic, "fsync_tree",
                        lambda folder: seen.append(sorted(p.name for p in Path(folder).iterdir())) or real(folder))
    StageStore(tmp_path).get_or_compute("split", "s1", {}, lambda work: (work / "splits.json").write_text("{}"))
    assert seen and "splits.json" in seen[0] and "DONE" not in seen[0]


def test_ray_workers_get_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runtime = RuntimeConfig(run_root="runs", data_root="data", model_cache="cache").absolute()
    assert runtime.run_root == str(tmp_path / "runs") and runtime.data_root == str(tmp_path / "data")
    assert runtime.model_cache == str(tmp_path / "cache")
    assert Path(RuntimeConfig(run_root="r").absolute().model_cache).is_absolute()
