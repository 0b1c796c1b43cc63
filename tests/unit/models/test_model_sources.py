"""Model names by kind: one registered source answers every question the harness asks of a name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from w2slab.errors import ModelError
from w2slab.models.loading import check_model_name, model_modality, resolve_model
from w2slab.models.sources import MODEL_SOURCES, ModelSource, model_source, parameter_count, register_model_source
from w2slab.pipeline.graph import model_revision


def test_each_kind_of_name_has_its_source(tmp_path):
    from tests.helpers.tiny import write_tiny_model

    folder = write_tiny_model(tmp_path / "m", layers=1, hidden=16)
    kinds = {"minilm-l6": "registered", "cnn-small": "registered", "timm:resnet50@0123abc": "library",
             "coords:0-3": "coords", str(folder): "folder", "owner/some-model": "hub"}
    assert {name: model_source(name).name for name in kinds} == kinds


def test_coordinates_are_a_vector_model_with_one_parameter_per_coordinate_and_no_weights():
    check_model_name("coords:2-5")
    assert model_modality("coords:2-5") == "vector"
    assert parameter_count("coords:2-5") == 4
    assert model_revision("coords:2-5") == "builtin:coords:2-5"
    resolved = resolve_model("coords:2-5")
    assert (resolved.source, resolved.family, resolved.modality) == ("builtin", "linear", "vector")
    with pytest.raises(ModelError, match="FIRST <= LAST"):
        check_model_name("coords:5-2")


def test_a_new_kind_of_name_is_one_registered_source():
    """A plugin's source takes its names before the Hub source would: the checks, the identity and the modality
    all come from it."""

    @dataclass(frozen=True)
    class Remote(ModelSource):
        name: ClassVar[str] = "remote"
        order: ClassVar[float] = 50

        def matches(self, name: str) -> bool:
            return name.startswith("remote://")

        def check(self, name: str) -> None:
            if name.endswith("/"):
                raise ModelError(f"model {name!r}: name the model after the slash")

        def revision(self, name: str) -> str:
            return f"remote:{name}@v1"

        def modality(self, name: str) -> str:
            return "image"

    register_model_source(Remote())
    try:
        _check_remote()
    finally:
        MODEL_SOURCES.unregister("remote")
    assert model_source("remote://zoo/net").name == "hub"  # gone with its registration


def _check_remote() -> None:
    assert model_source("remote://zoo/net").name == "remote"
    assert model_modality("remote://zoo/net") == "image"
    assert model_revision("remote://zoo/net") == "remote:remote://zoo/net@v1"
    with pytest.raises(ModelError, match="after the slash"):
        check_model_name("remote://zoo/")


def test_a_source_builds_its_own_network():
    """``load_classifier`` asks the name's source for the network: a plugin's kind of model needs no edit of the
    loader, and ``coords:`` builds its coordinate classifier."""
    import torch

    from w2slab.models.loading import ResolvedModel, load_classifier
    from w2slab.models.registry import FAMILIES
    from w2slab.models.vectors import CoordinateClassifier

    coords = load_classifier(resolve_model("coords:1-3"), num_labels=3)
    assert isinstance(coords, CoordinateClassifier) and coords.head.weight.shape == (3, 3)

    @dataclass(frozen=True)
    class Constant(ModelSource):
        name: ClassVar[str] = "constant"
        order: ClassVar[float] = 50

        def matches(self, name: str) -> bool:
            return name.startswith("constant:")

        def load(self, resolved, *, num_labels, dtype, image_size=None):
            return torch.nn.Linear(1, num_labels)

    register_model_source(Constant())
    try:
        resolved = ResolvedModel("constant:x", "constant:x", FAMILIES["linear"], "builtin", family="linear")
        assert isinstance(load_classifier(resolved, num_labels=4), torch.nn.Linear)
    finally:
        MODEL_SOURCES.unregister("constant")
