"""Identities that must change with everything a result depends on, and inputs edited after planning.

Each test here was a reviewer's reproduction: the identity missed a helper module a plugin imports, a model
family's defaults, or an array's middle; a data file or model folder edited between planning and reading.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest

from tests.unit.pipeline.test_identity import TRAIN
from tests.unit.pipeline.test_identity import spec as identity_spec
from w2slab import fingerprint
from w2slab.config import ExperimentConfig
from w2slab.models.registry import FAMILIES, MODELS, register_family, register_model
from w2slab.pipeline.graph import build_experiment, model_defaults


@pytest.fixture
def tiny(fresh_tiny):
    return fresh_tiny


def spec(tiny, **overrides) -> dict:
    """test_identity's experiment, the strong model at its family's learning rate (what a family defaults)."""
    return identity_spec(tiny, **{"strong_train": {**TRAIN, "lr": None}, **overrides})


LOSS_SOURCE = '''
from dataclasses import dataclass

import myhelpers_w2s

from w2slab.losses import Loss


@dataclass(frozen=True)
class HelpedXent(Loss):
    def __call__(self, logits, labels, step_frac):
        return myhelpers_w2s.scale() * logits.sum()
'''


def import_single_file_plugin(folder: Path, scale: int):
    """A single-file plugin (not a package) importing a sibling helper module, imported afresh."""
    (folder / "myhelpers_w2s.py").write_text(f"def scale():\n    return {scale}\n")
    (folder / "single_file_plugin.py").write_text(LOSS_SOURCE)
    for name in ("single_file_plugin", "myhelpers_w2s"):
        sys.modules.pop(name, None)
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location("single_file_plugin", folder / "single_file_plugin.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["single_file_plugin"] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module


def test_editing_a_helper_module_a_single_file_plugin_imports_changes_its_code_digest(tmp_path):
    try:
        before = fingerprint.code_digest(import_single_file_plugin(tmp_path, 2).HelpedXent)
        again = fingerprint.code_digest(import_single_file_plugin(tmp_path, 2).HelpedXent)
        after = fingerprint.code_digest(import_single_file_plugin(tmp_path, 3).HelpedXent)
    finally:
        for name in ("single_file_plugin", "myhelpers_w2s"):
            sys.modules.pop(name, None)
    assert before == again and before != after


def test_installed_and_standard_library_modules_are_not_the_users():
    import json

    import numpy

    assert not fingerprint._is_user_file(Path(json.__file__).resolve())
    assert not fingerprint._is_user_file(Path(numpy.__file__).resolve())
    assert not fingerprint._is_user_file(fingerprint.PACKAGE_DIR / "losses" / "base.py")
    assert fingerprint._is_user_file(Path(__file__).resolve())


def test_re_registering_a_model_family_changes_the_ceiling_and_student_identities(tiny):
    import json

    family = json.loads((Path(tiny.strong) / "config.json").read_text())["model_type"]
    cfg = ExperimentConfig.from_dict(spec(tiny))
    before = build_experiment(cfg)
    original = FAMILIES[family]
    try:
        register_family(family, dataclasses.replace(original, pooling="mean" if original.pooling != "mean" else "cls",
                                                    lr_full=original.lr_full * 2), replace=True)
        after = build_experiment(cfg)
    finally:
        register_family(family, original, replace=True)
    assert after.split.id == before.split.id
    assert after.ceiling.id != before.ceiling.id
    assert all(after.students[k].id != before.students[k].id for k in before.students)
    assert build_experiment(cfg).ceiling.id == before.ceiling.id  # restored: the same identity again


def test_a_registered_models_overrides_are_in_its_identity():
    original = MODELS["minilm-l3"]
    before = model_defaults("minilm-l3")
    try:
        register_model(dataclasses.replace(original, overrides={**original.overrides, "lr_full": 3e-4}), replace=True)
        after = model_defaults("minilm-l3")
    finally:
        register_model(original, replace=True)
    assert before != after and '"pooling": "mean"' in before


@dataclasses.dataclass(frozen=True, eq=False)
class ArraySpec:
    """A plugin spec holding an array (and, in the second test, something that is not plain data)."""

    weights: object


def test_an_array_in_a_stage_spec_is_hashed_by_content():
    import numpy as np
    import torch

    from w2slab.pipeline.graph import Stage

    weights = np.arange(2000, dtype=np.float64)
    edited = weights.copy()
    edited[1000] = -1.0  # the middle, which str(array) elides
    assert str(weights) == str(edited)
    assert Stage("split", ArraySpec(weights)).id != Stage("split", ArraySpec(edited)).id
    assert Stage("split", ArraySpec(weights)).id == Stage("split", ArraySpec(weights.copy())).id
    assert Stage("split", ArraySpec(weights.astype(np.float32))).id != Stage("split", ArraySpec(weights)).id
    tensor = torch.arange(2000.0)
    changed = tensor.clone()
    changed[1000] = -1.0
    assert Stage("split", ArraySpec(tensor)).id != Stage("split", ArraySpec(changed)).id
    assert Stage("split", ArraySpec(np.float64(0.5))).config() == {"weights": 0.5}


def test_a_stage_spec_that_is_not_plain_data_is_refused_in_one_line():
    from w2slab.errors import ConfigError
    from w2slab.pipeline.graph import Stage

    with pytest.raises(ConfigError, match=r"stage 'split' spec.weights: a object is not plain data") as info:
        Stage("split", ArraySpec(object())).id  # noqa: B018 - computing the identity is the test
    assert "\n" not in str(info.value)


def flip_a_byte(path: Path, offset: int = -100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_data_file_rewritten_after_planning_is_refused_by_the_split_stage(tiny, tmp_path):
    from w2slab.config import RuntimeConfig
    from w2slab.errors import DataError
    from w2slab.pipeline.compute import compute_split

    graph = build_experiment(ExperimentConfig.from_dict(spec(tiny)))
    lines = Path(tiny.data).read_text().splitlines()
    Path(tiny.data).write_text("\n".join(lines[:-1]) + "\n")  # rewritten between planning and the split stage
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(DataError, match="changed since the run was planned; run again") as info:
        compute_split(graph.split, {}, work, RuntimeConfig(run_root=str(tmp_path / "runs"), echo=lambda *_: None))
    assert "\n" not in str(info.value) and tiny.data in str(info.value)
    assert not list(work.iterdir())  # nothing written under the old identity


def test_a_model_folder_edited_after_planning_is_refused_when_it_is_loaded(tiny):
    from w2slab.config import TrainConfig
    from w2slab.errors import ModelError
    from w2slab.models.loading import resolve_model
    from w2slab.pipeline.role_model import RoleModel

    graph = build_experiment(ExperimentConfig.from_dict(spec(tiny)))
    planned = graph.ceiling.spec.model
    identity = {"model": planned.model, "revision": planned.revision}
    RoleModel("strong", resolve_model(tiny.strong), TrainConfig(), 16, "right", identity=identity)  # unchanged: fine
    flip_a_byte(Path(tiny.strong) / "model.safetensors")
    with pytest.raises(ModelError, match=r"model folder .*strong changed since the run was planned; run again"):
        RoleModel("strong", resolve_model(tiny.strong), TrainConfig(), 16, "right", identity=identity)


@pytest.mark.parametrize("field, value, needle", [
    ("config", [], "config must be a mapping"), ("diagnostics", "x", "diagnostics must be a mapping"),
    ("ground_truth_labels", [], "ground_truth_labels must be a mapping"),
    ("diagnostics", {"decomposition": {"corrected": 0.1}}, "diagnostics.decomposition must map both_right"),
    ("test_correct", {"weak": "0g"}, "test_correct.weak must be a hex string"),
    ("trace", {"step": 1}, "trace must be a list of mappings")])
def test_load_results_refuses_a_malformed_nested_field_in_one_line_naming_file_and_field(tmp_path, field, value,
                                                                                        needle):
    import json

    from w2slab.analysis import load_results
    from w2slab.errors import W2SError

    record = {"dataset": "d", "weak": "a", "strong": "b", "loss": "xent", "seed": 0, "weak_accuracy": 0.6,
              "ceiling_accuracy": 0.8, "student_accuracy": 0.7, "pgr": 0.5, field: value}
    path = tmp_path / "result.json"
    path.write_text(json.dumps(record))
    with pytest.raises(W2SError, match=needle) as info:
        load_results(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_raw_jsonl_row_nested_thousands_of_levels_deep_is_one_line_naming_the_row(tmp_path):
    from w2slab.data.readers import _read_jsonl
    from w2slab.errors import DataError

    path = tmp_path / "train.jsonl"
    path.write_text('{"question": "q"}\n{"question": ' + "[" * 5000 + "]" * 5000 + "}\n")
    with pytest.raises(DataError, match="train.jsonl row 2: nested too deeply to read"):
        _read_jsonl(path)
