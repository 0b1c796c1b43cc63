"""Dataset names by kind: one registered source answers every question the harness asks of a name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from w2slab.data import dataset_modality, dataset_num_classes, load_task
from w2slab.data.sources import DATA_SOURCES, DataSource, data_source, register_data_source
from w2slab.data.types import TaskData
from w2slab.errors import DataError
from w2slab.pipeline.graph import dataset_revision


def test_each_kind_of_dataset_name_has_its_source(tmp_path):
    from PIL import Image

    from tests.helpers.tiny import write_toy_dataset

    data = write_toy_dataset(tmp_path / "toy.jsonl", n=40)
    for label in ("a", "b"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        Image.new("L", (8, 8)).save(tmp_path / "imgs" / label / "0.png")
    kinds = {"sst2": "registered", "gaussian_w2s": "registered", str(data): "file", str(tmp_path / "imgs"):
             "image_folder"}
    assert {name: data_source(name).name for name in kinds} == kinds
    assert dataset_modality(str(tmp_path / "imgs")) == "image" and dataset_modality("gaussian_w2s") == "vector"
    assert dataset_revision(str(data)).startswith("file:")
    with pytest.raises(DataError, match="unknown dataset 'no_such_set'"):
        data_source("no_such_set")


def test_a_new_kind_of_dataset_is_one_registered_source():
    """A plugin source (rows from a made-up scheme) is loaded, identified and counted like the built-in ones."""

    @dataclass(frozen=True)
    class Parity(DataSource):
        name: ClassVar[str] = "parity"
        order: ClassVar[float] = 50

        def matches(self, name: str) -> bool:
            return name.startswith("parity://")

        def revision(self, name, source, data_root) -> str:
            return f"parity:{name}@1"

        def load(self, name: str, **options) -> TaskData:
            rows = [{"id": f"p{i}", "text": f"w{10 + i % 30} w{11 + i % 7}", "label": i % 2} for i in range(60)]
            return TaskData(name="parity", train=rows[:40], test=rows[40:])

    register_data_source(Parity())
    try:
        assert data_source("parity://x").name == "parity"
        # the source's own revision, and its code (a plugin source's code is part of what a split depends on)
        assert dataset_revision("parity://x").startswith("parity:parity://x@1+source:")
        assert dataset_num_classes("parity://x") == 2 and len(load_task("parity://x").train) == 40
    finally:
        DATA_SOURCES.unregister("parity")
    with pytest.raises(DataError):
        data_source("parity://x")


def test_where_rows_are_read_from_is_a_data_origin_and_configs_keep_their_data_source_key():
    """``config.DataSource`` (auto/local/hub) was renamed ``DataOrigin`` (it clashed with the registry's
    :class:`DataSource`); the config field users write and every saved config holds is still ``data_source``."""
    from w2slab import config
    from w2slab.config import ExperimentConfig
    from w2slab.data.sources import DATA_ORIGINS

    assert config.DATA_ORIGINS == DATA_ORIGINS == ("auto", "local", "hub")
    assert not hasattr(config, "DataSource") and not hasattr(config, "DATA_SOURCES")
    saved = ExperimentConfig(dataset="sst2", data_source="local").to_dict()  # as a result's config.json holds it
    assert saved["data_source"] == "local" and ExperimentConfig.from_dict(saved).data_source == "local"
    with pytest.raises(DataError, match="unknown source 'disk'"):
        load_task("sst2", source="disk")
