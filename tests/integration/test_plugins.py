"""Extension by registration: a loss defined here, outside the package, runs through the API and the CLI.

Its typed parameter shows up in the result's config and in the stage identity; misspelt names,
unknown keys and wrong types in sweep files fail in one line before any stage runs.
"""

from __future__ import annotations

import importlib.metadata
import json
from dataclasses import dataclass

import pytest
import torch.nn.functional as F
import yaml

from w2slab import registry
from w2slab.api import run
from w2slab.cli import main
from w2slab.config import ExperimentConfig, RuntimeConfig
from w2slab.errors import ConfigError
from w2slab.losses import LOSSES, Loss, make_loss, register_loss
from w2slab.pipeline.graph import build_experiment
from w2slab.pipeline.store import StageStore
from w2slab.results import read_results


@register_loss("scaled_xent", replace=True)
@dataclass(frozen=True)
class ScaledXent(Loss):
    """Cross-entropy times a constant: with Adam a scale changes little, but it is a real typed parameter."""

    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.scale <= 0:
            raise ConfigError(f"scale: must be > 0, got {self.scale}")

    def __call__(self, logits, labels, step_frac):
        return self.scale * F.cross_entropy(logits.float(), labels.float())


@pytest.fixture(scope="module")
def tiny(tiny_pair):
    return tiny_pair


def experiment(tiny, losses) -> dict:
    train = {"mode": "probe", "epochs": 2, "batch_size": 16}
    return {"dataset": tiny.data, "weak": tiny.weak, "strong": tiny.strong, "losses": losses, "n_train": 64,
            "n_test": 32, "max_ctx": 16, "weak_train": train, "strong_train": train}


def test_a_registered_loss_is_a_typed_config():
    loss = make_loss({"name": "scaled_xent", "scale": 2})
    assert isinstance(loss, ScaledXent) and loss.scale == 2.0 and isinstance(loss.scale, float)
    assert loss.label == "scaled_xent[scale=2.0]" and make_loss("scaled_xent").label == "scaled_xent"
    assert loss.to_value() == {"name": "scaled_xent", "scale": 2.0}
    assert "scaled_xent" in LOSSES.names()
    with pytest.raises(ConfigError, match=r"losses\[0\]\[scaled_xent\].scal: unknown key"):
        ExperimentConfig(losses=[{"name": "scaled_xent", "scal": 2}])
    with pytest.raises(ConfigError, match=r"scale: expected float, got str"):
        ExperimentConfig(losses=[{"name": "scaled_xent", "scale": "big"}])
    with pytest.raises(ConfigError, match="scale: must be > 0"):
        make_loss({"name": "scaled_xent", "scale": -1})


def test_the_parameter_is_part_of_the_student_identity_only(tiny):
    one = build_experiment(ExperimentConfig.from_dict(experiment(tiny, [{"name": "scaled_xent", "scale": 0.5}])))
    two = build_experiment(ExperimentConfig.from_dict(experiment(tiny, [{"name": "scaled_xent", "scale": 2.0}])))
    assert one.weak_train.id == two.weak_train.id and one.ceiling.id == two.ceiling.id
    (s1,), (s2,) = one.students.values(), two.students.values()
    assert s1.id != s2.id and s1.config()["loss"] == {"name": "scaled_xent", "scale": 0.5}


def test_a_registered_loss_runs_through_the_python_api(tiny, tmp_path):
    cfg = ExperimentConfig.from_dict(experiment(tiny, ["xent", {"name": "scaled_xent", "scale": 0.5}]))
    result = run(cfg, RuntimeConfig(run_root=str(tmp_path), echo=lambda *_: None))
    assert set(result.summary.results) == {"xent", "scaled_xent[scale=0.5]"}
    scaled = result.summary.results["scaled_xent[scale=0.5]"]
    assert scaled.config["losses"] == [{"name": "scaled_xent", "scale": 0.5}]
    assert 0.0 <= scaled.student_accuracy <= 1.0
    student_stage = result.sweep.plan.graphs[0].students["scaled_xent[scale=0.5]"]
    described = json.loads((StageStore(tmp_path).final_dir("student", student_stage.id) / "stage.json").read_text())
    assert described["config"]["loss"] == {"name": "scaled_xent", "scale": 0.5}
    logs = {p.name for p in (result.folder / "logs").iterdir()}
    assert "student_scaled_xent[scale=0.5].jsonl" in logs


def test_a_registered_loss_runs_through_w2s_sweep(tiny, tmp_path, capsys):
    sweep_file = tmp_path / "sweep.yaml"
    spec = experiment(tiny, [{"name": "scaled_xent", "scale": 2.0}])
    sweep_file.write_text(yaml.safe_dump({"datasets": [spec.pop("dataset")], "weak": [spec.pop("weak")],
                                          "strong": [spec.pop("strong")], "seeds": [0, 1], **spec}))
    assert main(["sweep", str(sweep_file), "--run-root", str(tmp_path / "root")]) == 0
    results = read_results(tmp_path / "root")
    assert len(results) == 2 and {r.seed for r in results} == {0, 1}
    assert all(r.student == "scaled_xent[scale=2.0]" and r.config["losses"] == [{"name": "scaled_xent", "scale": 2.0}]
               for r in results)
    assert "scaled_xent[scale=2.0]" in capsys.readouterr().out


BAD_SWEEPS = {
    "unknown loss": ("losses: [xent, focal]\n", "losses[1]: unknown loss 'focal'"),
    "unknown loss parameter": ("losses: [{name: logconf, aux_wieght: 0.3}]\n", "aux_wieght: unknown key"),
    "unknown training key": ("weak_train: {epochs: 1, learning_rate: 3}\n", "weak_train.learning_rate: unknown key"),
    "wrongly typed value": ("strong_train: {epochs: two}\n", "strong_train.epochs: expected float, got str"),
    "wrongly typed top-level value": ("n_train: 12.5\n", "n_train: expected int, got float"),
    "out of range": ("strong_train: {batch_size: 0}\n", "strong_train.batch_size: must be >= 1"),
    "unknown top-level key": ("n_trian: 64\n", "n_trian: unknown key (did you mean 'n_train'?)"),
    "bad choice": ("weak_train: {mode: partial}\n", "weak_train.mode: expected one of full, lora, probe"),
    "unknown model": ("", "unknown model 'no-such-model'"),
}


@pytest.mark.parametrize("case", sorted(BAD_SWEEPS))
def test_bad_sweep_files_fail_before_any_stage_in_one_line(tiny, tmp_path, capsys, case):
    extra, needle = BAD_SWEEPS[case]
    strong = "no-such-model" if case == "unknown model" else tiny.strong
    sweep_file = tmp_path / "bad.yaml"
    sweep_file.write_text(f"datasets: [{tiny.data}]\nweak: [{tiny.weak}]\nstrong: [{strong}]\nn_test: 32\n"
                          f"max_ctx: 16\n{extra}")
    code = main(["sweep", str(sweep_file), "--run-root", str(tmp_path / "root")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err
    assert not StageStore(tmp_path / "root").events()  # no stage started


def test_plugins_load_from_the_entry_point_group(monkeypatch):
    LOSSES.unregister("demo_halved_xent")
    entry = importlib.metadata.EntryPoint(name="demo", value="tests.helpers.plugin_demo", group=registry.PLUGIN_GROUP)
    monkeypatch.setattr(registry.importlib.metadata, "entry_points",
                        lambda group: [entry] if group == registry.PLUGIN_GROUP else [])
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    assert "demo_halved_xent" in LOSSES.names()
    assert make_loss("demo_halved_xent").factor == 0.5
    assert make_loss("demo_halved_xent").code_digest()  # its source is in the identity of the stages using it
    assert make_loss("xent").code_digest() is None  # w2slab's own: covered by the package's source digest
    broken = importlib.metadata.EntryPoint(name="broken", value="tests.no_such_module", group=registry.PLUGIN_GROUP)
    monkeypatch.setattr(registry.importlib.metadata, "entry_points", lambda group: [broken])
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    with pytest.raises(Exception, match="plugin 'broken'.*failed to load"):
        registry.load_plugins()


PLUGIN_SOURCE = '''
from dataclasses import dataclass

import numpy as np

from w2slab.losses import Loss, register_loss
from w2slab.methods.base import LabelMethod, SoftLabels, register_method
from w2slab.losses import CrossEntropy

SHARPNESS = {sharpness}


@register_loss("edited_xent", replace=True)
@dataclass(frozen=True)
class EditedXent(Loss):
    def __call__(self, logits, labels, step_frac):
        return CrossEntropy()(logits, labels, step_frac)


@register_method("edited_sharpen", replace=True)
@dataclass(frozen=True)
class EditedSharpen(LabelMethod):
    def transform(self, labels, context):
        probs = labels.probs ** SHARPNESS
        return SoftLabels(probs / probs.sum(-1, keepdims=True), labels.weights)
'''


def import_plugin(folder, sharpness: int):
    """Write the plugin file (as a user edits it) and import it afresh, as a new process would."""
    import importlib.util
    import sys

    path = folder / "my_w2s_plugin.py"
    path.write_text(PLUGIN_SOURCE.format(sharpness=sharpness))
    spec = importlib.util.spec_from_file_location("my_w2s_plugin", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["my_w2s_plugin"] = module
    spec.loader.exec_module(module)
    return module


def test_editing_a_plugins_file_reruns_exactly_the_stages_that_used_it(tiny, tmp_path):
    from w2slab.methods.base import METHODS

    def graph():
        cfg = experiment(tiny, ["xent", "edited_xent"])
        cfg["methods"] = ["none", "edited_sharpen"]
        return build_experiment(ExperimentConfig.from_dict(cfg))

    try:
        import_plugin(tmp_path, 2)
        before = {stage.label: stage.id for stage in graph().stages()}
        import_plugin(tmp_path, 2)  # imported again, unchanged: the same identities
        assert {stage.label: stage.id for stage in graph().stages()} == before
        import_plugin(tmp_path, 3)  # one constant edited
        after = {stage.label: stage.id for stage in graph().stages()}
    finally:
        LOSSES.unregister("edited_xent")
        METHODS.unregister("edited_sharpen")
    changed = {label for label in before if before[label] != after.get(label)}
    # the stages that ran the plugin's loss or method, and the evaluations of their students; nothing else
    assert changed and all("edited_" in label for label in changed), changed
    unchanged = {label for label in before if label not in changed}
    assert any(label.startswith("weak") for label in unchanged) and any("ceiling" in label for label in unchanged)
    assert any(label.endswith(" xent") for label in unchanged)  # the built-in loss's student is reused
    assert len(changed) == sum("edited_" in label for label in before)


def test_a_callback_that_can_change_training_is_in_the_training_identities_and_an_observer_is_not(tiny):
    from w2slab.train.trainer import TrainerCallback

    class HalveTheLearningRate(TrainerCallback):
        def on_step_end(self, trainer, state, row):
            pass

    class PrintLoss(TrainerCallback):
        observes_only = True

    cfg = ExperimentConfig.from_dict(experiment(tiny, ["xent"]))
    plain = build_experiment(cfg)
    observed = build_experiment(cfg, callbacks=(PrintLoss(),))
    changed = build_experiment(cfg, callbacks=(HalveTheLearningRate(),))
    assert [s.id for s in observed.stages()] == [s.id for s in plain.stages()]
    assert changed.split.id == plain.split.id
    for role in ("weak_train", "ceiling"):
        assert getattr(changed, role).id != getattr(plain, role).id
    assert "HalveTheLearningRate@" in changed.ceiling.spec.callbacks[0]  # with its source digest
