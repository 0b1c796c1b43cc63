"""Where a model name points: one registered :class:`ModelSource` per kind of name, asked in order.

A model name is a registered short name (``minilm-l6``), an image library's model (``timm:resnet50@<commit>``), a
linear model over some coordinates of vector rows (``coords:0-15``), a local Hugging Face folder, or a Hub id.
Each kind is one source that says, from the name alone, everything the harness asks before and during a run:

- ``matches(name)``: whether the name is of this kind (sources are asked in ``order``; the first that matches
  answers every other question);
- ``check(name)``: a cheap check before any work (a one-line :class:`ModelError`);
- ``revision(name)``: what identifies the weights (in every stage's identity);
- ``modality(name)``: what the model reads (``text``, ``image`` or ``vector``);
- ``params(name)``: its parameter count where known without loading weights (the weak < strong check);
- ``defaults(name)``: its family's defaults (pooling, learning rates), where known before loading (in every
  stage's identity: re-registering a family changes what trains);
- ``resolve(name, cache_dir, install, revision)``: a loadable :class:`~w2slab.models.resolved.ResolvedModel`;
- ``load(resolved, num_labels=, dtype=, image_size=)``: the network, with a zero-initialised linear head.

A new kind of model is one registered source (``register_model_source``): nothing else asks what kind a name is.
A source of one kind of network builds it (``coords:`` a vector classifier, an image library's name an image
one); registered names, local folders and Hub ids hold text or image models, so the default ``load`` builds what
the family's modality says. The networks (:mod:`~w2slab.models.text`, :mod:`~w2slab.models.vision`,
:mod:`~w2slab.models.vectors`) are imported inside the methods that build them, so importing the sources (to ask
a name's kind, revision or modality) imports no torch.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from w2slab.errors import ModelError
from w2slab.models.registry import BUILTIN_CONFIGS, FAMILIES, LIBRARY_PREFIXES, MODELS, FamilyDefaults, family_defaults
from w2slab.models.resolved import ResolvedModel
from w2slab.registry import Registry, first_match

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class ModelSource:
    """One kind of model name (module docstring). Subclasses override what differs."""

    name: ClassVar[str] = ""
    order: ClassVar[float] = 100.0

    def matches(self, name: str) -> bool:
        raise NotImplementedError

    def check(self, name: str) -> None:
        """Refuse, before any work, a name of this kind that cannot be used."""

    def revision(self, name: str) -> str:
        raise NotImplementedError

    def modality(self, name: str) -> str:
        return "text"

    def params(self, name: str) -> int | None:
        return None

    def defaults(self, name: str) -> FamilyDefaults | None:
        """The family defaults the model will train with, known at plan time (None: only loading tells)."""
        return None

    def resolve(self, name: str, cache_dir: Path | None, install: bool, revision: str | None) -> ResolvedModel:
        raise NotImplementedError

    def load(self, resolved: ResolvedModel, *, num_labels: int, dtype: torch.dtype,
             image_size: int | None = None) -> nn.Module:
        """The network of a model this source resolved, with a zero-initialised fp32 linear head of ``num_labels``
        and the backbone in ``dtype``; images resized to ``image_size`` (None: the model's own).

        By default what the family's modality says: an image family's registered builder
        (:func:`~w2slab.models.vision.load_image_network`), else a transformers text model
        (:func:`~w2slab.models.text.load_text_classifier`). A source of one kind of network overrides it.
        """
        if resolved.modality == "image":
            from w2slab.models.vision import load_image_network

            return load_image_network(resolved, num_labels=num_labels, dtype=dtype, image_size=image_size)
        from w2slab.models.text import load_text_classifier

        return load_text_classifier(resolved, num_labels=num_labels, dtype=dtype)


MODEL_SOURCES: Registry[ModelSource] = Registry("model source")


def register_model_source(source: ModelSource, *, replace: bool = False) -> ModelSource:
    return MODEL_SOURCES.register(source.name, source, replace=replace)


def model_source(name: str) -> ModelSource:
    """The source a model name belongs to (the Hub id source takes what no other does)."""
    source = first_match(MODEL_SOURCES, name)
    if source is None:  # unreachable while the Hub source is registered
        raise ModelError(f"no model source takes {name!r}")
    return source


@functools.cache
def parameter_count(name: str) -> int | None:
    """Parameters of a model where known without its weights (the registry, a config on the meta device)."""
    return model_source(name).params(name)


def library_model(name: str) -> tuple[str, str] | None:
    """``("timm", "resnet50")`` for ``timm:resnet50`` (and torchvision:), else None."""
    prefix, sep, rest = name.partition(":")
    return (prefix, rest) if sep and prefix in LIBRARY_PREFIXES and rest.strip() else None


def read_folder_config(folder: Path) -> dict:
    """A local model folder's ``config.json`` as a mapping, or a one-line :class:`ModelError` saying what is wrong
    (checked before anything hashes or loads the folder: ``--weak .`` would otherwise hash a whole tree)."""
    config = folder / "config.json"
    fix = "point the flag at the folder that holds config.json and the weights (as save_pretrained writes it)"
    if not config.is_file():
        raise ModelError(f"model folder {folder} has no config.json, so it is not a Hugging Face model folder; {fix}")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{config} is not readable JSON ({type(exc).__name__}: {str(exc)[:80]}); re-save the "
                         "model with save_pretrained or fix the file") from None
    if not isinstance(data, dict):
        raise ModelError(f"{config} holds a {type(data).__name__}, not a JSON object; re-save the model with "
                         "save_pretrained or fix the file")
    return data


@dataclass(frozen=True)
class RegisteredSource(ModelSource):
    """A registered short name: packaged offline weights, a model built from code, or a pinned Hub id."""

    name: ClassVar[str] = "registered"
    order: ClassVar[float] = 0

    def matches(self, name: str) -> bool:
        return name in MODELS

    def revision(self, name: str) -> str:
        from w2slab.models.packaged import PACKAGED

        if name in PACKAGED:
            return "pypi:" + ",".join(PACKAGED[name].packages)
        if name in BUILTIN_CONFIGS:  # built from code: its configuration (and the code, in the result's versions)
            return "builtin:" + json.dumps(BUILTIN_CONFIGS[name], sort_keys=True)
        return HubSource().revision(MODELS[name].hub_id)

    def modality(self, name: str) -> str:
        return FAMILIES[MODELS[name].family].modality

    def params(self, name: str) -> int | None:
        return MODELS[name].params

    def defaults(self, name: str) -> FamilyDefaults | None:
        return MODELS[name].defaults()

    def resolve(self, name: str, cache_dir: Path | None, install: bool, revision: str | None) -> ResolvedModel:
        from w2slab.models.packaged import PACKAGED, converted_folder

        spec = MODELS[name]
        if name in PACKAGED:
            folder = converted_folder(name, cache_dir, install=install)
            return ResolvedModel(name, str(folder), spec.defaults(), "packaged", family=spec.family)
        if name in BUILTIN_CONFIGS:
            return ResolvedModel(name, name, spec.defaults(), "builtin", family=spec.family)
        return ResolvedModel(name, spec.hub_id, spec.defaults(), "hub", revision, family=spec.family)

    def load(self, resolved: ResolvedModel, *, num_labels: int, dtype: torch.dtype,
             image_size: int | None = None) -> nn.Module:
        """A model built from code has no ``config.json``: its image family builds it from its registered
        configuration. Packaged and Hub models load as their family's modality says (:meth:`ModelSource.load`)."""
        if resolved.source == "builtin":
            from w2slab.models.vision import load_image_network

            return load_image_network(resolved, num_labels=num_labels, dtype=dtype, image_size=image_size,
                                      config=BUILTIN_CONFIGS[resolved.name])
        return super().load(resolved, num_labels=num_labels, dtype=dtype, image_size=image_size)


@dataclass(frozen=True)
class LibrarySource(ModelSource):
    """An image library's model by its own name: ``timm:NAME@COMMIT``, ``torchvision:NAME``,
    ``torchhub:OWNER/REPO:COMMIT/ENTRY`` (with the library installed)."""

    name: ClassVar[str] = "library"
    order: ClassVar[float] = 10

    def matches(self, name: str) -> bool:
        return library_model(name) is not None

    def check(self, name: str) -> None:
        import importlib.util

        library, rest = library_model(name)
        needed = {"timm": ("timm", "torchvision"), "torchvision": ("torchvision",), "torchhub": ()}[library]
        missing = [package for package in needed if importlib.util.find_spec(package) is None]
        if missing:
            raise ModelError(f"model {name!r} needs the {' and '.join(missing)} package(s); pip install "
                             "'w2slab[vision]' (timm, torchvision)")
        if library == "torchhub":
            from w2slab.models.vision import check_torchhub

            check_torchhub(rest)
        if library == "timm":
            from w2slab.models.vision import check_timm

            check_timm(rest)

    def revision(self, name: str) -> str:
        """The library's pretrained tag, at its installed version."""
        library, rest = library_model(name)
        try:
            version = importlib.metadata.version("torch" if library == "torchhub" else library)
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        return f"{library}:{rest}@{version}"

    def modality(self, name: str) -> str:
        return "image"

    def defaults(self, name: str) -> FamilyDefaults | None:
        return FAMILIES.find(library_model(name)[0])

    def resolve(self, name: str, cache_dir: Path | None, install: bool, revision: str | None) -> ResolvedModel:
        library, rest = library_model(name)
        return ResolvedModel(name, rest, FAMILIES[library], "hub", family=library)

    def load(self, resolved: ResolvedModel, *, num_labels: int, dtype: torch.dtype,
             image_size: int | None = None) -> nn.Module:
        """The library's backbone, built by its family (``timm``, ``torchvision``, ``torchhub``) from its name."""
        from w2slab.models.vision import load_image_network

        return load_image_network(resolved, num_labels=num_labels, dtype=dtype, image_size=image_size)


#: a whole name: ``fullmatch`` (``$`` with ``match`` also accepts a trailing newline, ``coords:0-3\n``)
_COORDS = re.compile(r"coords:(\d+)-(\d+)")


def coordinate_range(name: str) -> tuple[int, int] | None:
    """``(first, last)`` of a ``coords:FIRST-LAST`` model (inclusive), else None."""
    match = _COORDS.fullmatch(name)
    return (int(match.group(1)), int(match.group(2))) if match else None


@dataclass(frozen=True)
class CoordinatesSource(ModelSource):
    """``coords:FIRST-LAST``: a linear model over coordinates FIRST..LAST of vector rows (built from code, no
    weights; :mod:`w2slab.data.vectors`). Its features are those coordinates; only its head trains."""

    name: ClassVar[str] = "coords"
    order: ClassVar[float] = 20

    def matches(self, name: str) -> bool:
        return name.startswith("coords:")

    def check(self, name: str) -> None:
        span = coordinate_range(name)
        if span is None or span[0] > span[1]:
            raise ModelError(f"model {name!r}: write coords:FIRST-LAST with FIRST <= LAST, e.g. coords:0-15 (the "
                             "coordinates of the vector rows the linear model reads)")

    def revision(self, name: str) -> str:
        return f"builtin:{name}"

    def modality(self, name: str) -> str:
        return "vector"

    def params(self, name: str) -> int | None:
        span = coordinate_range(name)
        return None if span is None else span[1] - span[0] + 1

    def defaults(self, name: str) -> FamilyDefaults | None:
        return FAMILIES.find("linear")

    def resolve(self, name: str, cache_dir: Path | None, install: bool, revision: str | None) -> ResolvedModel:
        self.check(name)
        return ResolvedModel(name, name, FAMILIES["linear"], "builtin", family="linear")

    def load(self, resolved: ResolvedModel, *, num_labels: int, dtype: torch.dtype,
             image_size: int | None = None) -> nn.Module:
        """The coordinates and a head (:class:`~w2slab.models.vectors.CoordinateClassifier`); ``dtype`` does not
        apply: there are no weights to store but the fp32 head's."""
        from w2slab.models.vectors import CoordinateClassifier

        first, last = coordinate_range(resolved.name)
        return CoordinateClassifier(first, last, num_labels)


@dataclass(frozen=True)
class FolderSource(ModelSource):
    """A local Hugging Face model folder (``config.json`` and weights, as ``save_pretrained`` writes them)."""

    name: ClassVar[str] = "folder"
    order: ClassVar[float] = 30

    def matches(self, name: str) -> bool:
        return Path(name).is_dir()

    def check(self, name: str) -> None:
        read_folder_config(Path(name))

    def revision(self, name: str) -> str:
        from w2slab import fingerprint

        return "folder:" + fingerprint.files_digest(Path(name))

    def modality(self, name: str) -> str:
        family = FAMILIES.find(str(read_folder_config(Path(name)).get("model_type", "")))
        return family.modality if family is not None else "text"

    def params(self, name: str) -> int | None:
        return _count_from_config(name)

    def defaults(self, name: str) -> FamilyDefaults | None:
        return _config_defaults(read_folder_config(Path(name)))

    def resolve(self, name: str, cache_dir: Path | None, install: bool, revision: str | None) -> ResolvedModel:
        self.check(name)
        return _resolve_transformers(name, str(Path(name).resolve()), "local", None)


@dataclass(frozen=True)
class HubSource(ModelSource):
    """A Hugging Face Hub id (``owner/name``), loaded at the commit ``main`` pointed to when the run was planned."""

    name: ClassVar[str] = "hub"
    order: ClassVar[float] = 1000

    def matches(self, name: str) -> bool:
        return True

    def check(self, name: str) -> None:
        if Path(name).exists() or name.count("/") != 1 or name.startswith("/") or name.endswith("/"):
            raise ModelError(f"unknown model {name!r}: not a registered name ({', '.join(MODELS)}), not an HF "
                             "model folder and not a Hub id (owner/name); run `w2s models` to list the registered "
                             "ones")
        from w2slab.fingerprint import hub_repo_problem

        problem = hub_repo_problem(name)
        if problem is not None:
            raise ModelError(f"model {name!r} {problem}")

    def revision(self, name: str) -> str:
        from w2slab import fingerprint

        return f"hub:{name}@{fingerprint.pinned_hub_commit(name, 'model') or 'unresolved'}"

    def params(self, name: str) -> int | None:
        return _count_from_config(name)

    def defaults(self, name: str) -> FamilyDefaults | None:
        """From the cached ``config.json`` at the pinned commit (None when it is not downloaded yet)."""
        from w2slab import fingerprint

        try:
            from huggingface_hub import try_to_load_from_cache

            sha = fingerprint.pinned_hub_commit(name, "model")
            path = try_to_load_from_cache(name, "config.json", revision=sha) if sha else None
            config = json.loads(Path(path).read_text()) if isinstance(path, str) else None
        except (ImportError, OSError, ValueError):
            return None
        return _config_defaults(config) if isinstance(config, dict) else None

    def resolve(self, name: str, cache_dir: Path | None, install: bool, revision: str | None) -> ResolvedModel:
        self.check(name)
        return _resolve_transformers(name, name, "hub", revision)


def _config_defaults(config: dict) -> FamilyDefaults:
    """The defaults :func:`_resolve_transformers` gives a model of this HF config (read without transformers)."""
    model_type = str(config.get("model_type", ""))
    if model_type in FAMILIES and FAMILIES[model_type].modality == "image":
        return FAMILIES[model_type]
    architectures = config.get("architectures")
    return family_defaults(model_type, architectures if isinstance(architectures, list) else None)


def _count_from_config(name: str) -> int | None:
    """Parameters of a transformers model, by instantiating its config on the meta device (no weights)."""
    try:
        import torch
        from transformers import AutoConfig, AutoModel

        config = AutoConfig.from_pretrained(name)
        with torch.device("meta"):
            model = AutoModel.from_config(config)
        return sum(p.numel() for p in model.parameters())
    except (OSError, ValueError):
        return None


def _resolve_transformers(name: str, location: str, source: str, revision: str | None) -> ResolvedModel:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(location, revision=revision if source == "hub" else None)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load model {name!r} ({type(exc).__name__}): it is not a registered name "
                         f"({', '.join(MODELS)}) and could not be read as a local folder or from the Hub; check "
                         "the spelling, or set HF_HUB_OFFLINE=0 with Hub access") from exc
    if config.model_type in FAMILIES and FAMILIES[config.model_type].modality == "image":  # our image folders
        return ResolvedModel(name, location, FAMILIES[config.model_type], source, family=config.model_type)
    return ResolvedModel(name, location, family_defaults(config.model_type, config.architectures), source,
                         revision if source == "hub" else None, family=config.model_type)


for _source in (RegisteredSource(), LibrarySource(), CoordinatesSource(), FolderSource(), HubSource()):
    register_model_source(_source)
