"""A stage kind is one registered object: the built-ins and a plugin's (tests/helpers/stage_plugin.py, one file) run,
cache and resume alike, and every list of kinds (help, --recompute, executor resources) comes from the registry."""

from __future__ import annotations

import json

import numpy as np
import pytest

from w2slab.cli import main
from w2slab.pipeline.kinds import STAGES, stage_kind, stage_kinds


@pytest.fixture(scope="module", autouse=True)
def stage_plugin():
    """The plugin registers the kind ``smooth`` and the method ``smooth_labels`` while this module's tests run, and
    takes them away afterwards (other tests count the built-in methods)."""
    import importlib

    from w2slab.methods import METHODS

    module = importlib.reload(importlib.import_module("tests.helpers.stage_plugin"))
    yield module
    STAGES.unregister("smooth")
    METHODS.unregister("smooth_labels")


def test_the_builtin_kinds_and_their_facts_come_from_the_registry():
    assert stage_kinds()[:6] == ("split", "weak_train", "boost", "weak_label", "features", "ceiling")
    assert [k for k in stage_kinds() if stage_kind(k).trains] == ["weak_train", "boost", "ceiling", "student"]
    assert "smooth" in stage_kinds() and stage_kinds().index("smooth") < stage_kinds().index("student")
    from w2slab.pipeline.executors import stage_resources
    from w2slab.pipeline.graph import Stage

    assert stage_resources(Stage("split", None), 1.0)["num_gpus"] == 0
    assert stage_resources(Stage("features", None), 1.0)["num_gpus"] == 1.0
    with pytest.raises(Exception, match="unknown stage kind nope; choose from split, weak_train"):
        Stage("nope", None)


def test_a_plugin_stage_kind_runs_in_a_sweep_is_cached_and_resumes(tiny_pair, tmp_path, capsys, monkeypatch,
                                                                   stage_plugin):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(f"datasets: [{tiny_pair.data}]\nweak: [{tiny_pair.weak}]\nstrong: [{tiny_pair.strong}]\n"
                     "n_train: 64\nn_test: 32\nmax_ctx: 16\nlosses: [xent]\nseeds: [0, 1]\n"
                     "weak_train: {mode: probe, epochs: 1}\nstrong_train: {mode: probe, epochs: 1}\n"
                     "methods: [none, {name: smooth_labels, alpha: [0.1, 0.3]}]\n")
    root = tmp_path / "runs"
    flag = tmp_path / "interrupted-once"
    monkeypatch.setenv(stage_plugin.INTERRUPT_ONCE, str(flag))
    assert main(["sweep", str(sweep), "--run-root", str(root)]) == 130  # killed inside the plugin's stage
    states = {p.name for p in (root / "stages" / "smooth").iterdir()}
    assert any(name.endswith(".partial") for name in states)  # left interrupted, resumable
    capsys.readouterr()
    assert main(["sweep", str(sweep), "--run-root", str(root)]) == 0
    assert "[smooth]" in capsys.readouterr().out
    from w2slab.pipeline.store import StageStore

    finished = [e["id"] for e in StageStore(root).events() if e["event"] == "done"]
    assert len(finished) == len(set(finished))  # what had finished was kept: every stage computed once
    done = sorted((root / "stages" / "smooth").glob("*/DONE"))
    assert len(done) == 4  # two alphas x two seeds
    results = [json.loads(p.read_text()) for p in (root / "experiments").glob("*/result.json")]
    assert sorted({r["student"] for r in results}) == ["xent", "xent+smooth_labels[alpha=0.1]",
                                                    "xent+smooth_labels[alpha=0.3]"]
    # the smoothed labels are what the plugin computes: (1 - alpha) * weak + alpha / K
    smooth_stage = done[0].parent
    described = json.loads((smooth_stage / "stage.json").read_text())
    alpha = described["config"]["alpha"]
    with np.load(smooth_stage / "transfer.npz") as data, \
            np.load(root / "stages" / "weak_label" / described["inputs"]["labels"] / "transfer.npz") as weak:
        probs = np.exp(data["logits"]) / np.exp(data["logits"]).sum(1, keepdims=True)
        weak_probs = np.exp(weak["logits"]) / np.exp(weak["logits"]).sum(1, keepdims=True)
        assert np.allclose(probs, (1 - alpha) * weak_probs + alpha / 2, atol=1e-5)
    assert main(["sweep", str(sweep), "--run-root", str(root), "--dry-run"]) == 0
    assert "smooth         4  (0 new, 4 cached)" in capsys.readouterr().out
    assert main(["sweep", str(sweep), "--run-root", str(root), "--recompute", "smooth", "--dry-run"]) == 0
    assert "smooth         4  (4 new, 0 cached)" in capsys.readouterr().out  # --recompute knows the plugin kind
    assert "user_code" in described["config"]  # the plugin's compute is in the stage's identity


def test_the_cli_lists_registered_kinds_for_recompute():
    from w2slab.cli import make_parser

    help_text = make_parser()._subparsers._group_actions[0].choices["run"].format_help()
    assert all(kind in help_text for kind in stage_kinds())
    assert STAGES.get("smooth").description == "weak labels mixed with the uniform distribution"


def test_a_method_with_its_own_stage_kind_keeps_it_in_its_own_file():
    """One file per idea: a built-in method's kind (its spec, its compute function) is registered by
    ``@register_stage`` in the method's module, as a plugin's is; the pipeline lists only its own kinds, and the
    methods package imports every module in it, so a new method with a kind of its own touches no other source."""
    import pkgutil
    import sys
    from pathlib import Path

    import w2slab.methods
    from w2slab.fingerprint import PACKAGE_DIR
    from w2slab.methods import METHODS
    from w2slab.pipeline import kinds

    pipeline_own = {name for name in stage_kinds() if STAGES.get(name).compute_ref == f"w2slab.pipeline.compute:"
                    f"compute_{name}"}
    assert pipeline_own == {"split", "weak_train", "weak_label", "features", "ceiling", "supervise", "ensemble",
                            "relabel", "student", "evaluate"}
    owners = {cls.stage_kind: cls for _, cls in METHODS.items()
              if cls.stage_kind and cls.stage_kind not in pipeline_own}
    assert {"boost", "trust", "select_labels", "smooth"} <= set(owners)
    for kind, method in owners.items():
        compute = STAGES.get(kind).compute_ref
        assert callable(compute) and compute.__module__ == method.__module__, kind  # the method's own file
        assert f'"{kind}"' not in Path(kinds.__file__).read_text()  # named by no pipeline file
        if method.__module__.startswith("w2slab."):  # w2slab's own: in every identity through the source digest
            assert STAGES.get(kind).code_digest() is None
            assert Path(sys.modules[method.__module__].__file__).resolve().is_relative_to(PACKAGE_DIR)
    assert not (PACKAGE_DIR / "pipeline" / "method_stages.py").exists()
    modules = {m.name for m in pkgutil.iter_modules(w2slab.methods.__path__)}
    assert all(f"w2slab.methods.{name}" in sys.modules for name in modules)  # registered by being a file there


def test_a_compute_function_takes_the_context_or_the_folders():
    """``compute(context)`` is handed the pipeline's context; ``compute(stage, inputs, work, runtime)`` its parts."""
    from types import SimpleNamespace

    from w2slab.methods.stage_api import StageKind, takes_context

    calls = []

    def with_context(context):
        calls.append(("context", context))

    def with_folders(stage, inputs, work, runtime):
        calls.append(("folders", stage, inputs, work, runtime))

    context = SimpleNamespace(stage="s", inputs={"split": "p"}, work="w", runtime="r")
    assert takes_context(with_context) and not takes_context(with_folders)
    StageKind("a", with_context).run(context)
    StageKind("b", with_folders).run(context)
    assert calls == [("context", context), ("folders", "s", {"split": "p"}, "w", "r")]


def test_the_pipeline_implements_what_the_methods_are_written_against(tiny_pair, tmp_path):
    """The methods name the graph builder, its stages, a stage's folders, its model and its context by protocols of
    their own layer; the pipeline's classes have every member they ask for."""
    from w2slab.config import ExperimentConfig, RuntimeConfig
    from w2slab.methods.base import StageBuilder, StageNode
    from w2slab.methods.stage_api import StageContext, StageFiles, TrainableModel
    from w2slab.pipeline.artifacts import StageFolder
    from w2slab.pipeline.compute import FolderContext
    from w2slab.pipeline.graph import GraphBuilder
    from w2slab.pipeline.role_model import RoleModel

    def missing(protocol: type, obj: object) -> set[str]:
        asked = {name for name in vars(protocol) if not name.startswith("_")} | set(protocol.__annotations__)
        return asked - set(dir(obj))

    builder = GraphBuilder(ExperimentConfig(dataset=tiny_pair.data, weak=tiny_pair.weak, strong=tiny_pair.strong,
                                            n_train=64, n_test=32, max_ctx=16))
    context = FolderContext(builder.split, {"split": tmp_path}, tmp_path, RuntimeConfig())
    for protocol, obj in ((StageBuilder, builder), (StageNode, builder.split), (StageFiles, StageFolder(tmp_path)),
                          (StageContext, context), (TrainableModel, RoleModel)):
        assert not missing(protocol, obj), (protocol.__name__, missing(protocol, obj))
