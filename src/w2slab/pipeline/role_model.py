"""One model of an experiment in one role (weak or strong): its encoded splits and fresh fine-tunes of it.

The weak model is trained once (ground truth); the strong model is trained once per target
(ground truth for the ceiling, weak labels per loss for the students), each time from the same
pretrained weights. In ``probe`` mode the frozen backbone's features are computed once per split
and every head trains on the cached features, so a new loss costs seconds, not a forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from w2slab.config import TrainConfig
from w2slab.losses import LossFn
from w2slab.models.loading import (
    ProbeHead,
    ResolvedModel,
    SequenceClassifier,
    apply_training_mode,
    load_classifier,
    load_tokenizer,
)
from w2slab.train.batching import Collator
from w2slab.train.precision import PrecisionPolicy, run_modules_in_fp32
from w2slab.train.trainer import TrainResult, predict_logits, train_model


@dataclass
class EncodedSplit:
    examples: list[dict]
    n_truncated: int


@dataclass
class RoleModel:
    role: str  # "weak" or "strong", for messages and file names
    resolved: ResolvedModel
    train_cfg: TrainConfig
    max_ctx: int
    truncation: str
    num_labels: int = 2
    splits: dict[str, EncodedSplit] = field(default_factory=dict)
    _features: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tokenizer = load_tokenizer(self.resolved, truncation_side=self.truncation)
        self.collate = Collator(self.tokenizer)

    @property
    def lr(self) -> float:
        """The configured learning rate, else the model family's default for the training mode."""
        cfg = self.train_cfg
        return cfg.lr if cfg.lr is not None else self.resolved.defaults.lr_for(cfg.mode)

    def resolved_settings(self) -> dict[str, Any]:
        """What this model resolved at run time; stages record it and results read it back, never recompute it."""
        from w2slab.distributed import device

        policy = PrecisionPolicy.resolve(self.train_cfg.precision, device())
        return {"model": self.resolved.name, "location": self.resolved.location, "source": self.resolved.source,
                "mode": self.train_cfg.mode, "lr": self.lr, "precision": policy.name, "device": policy.device_type,
                "pooling": self.resolved.defaults.pooling}

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(list(texts), truncation=False)["input_ids"]]

    def encode(self, name: str, rows: Sequence[dict]) -> EncodedSplit:
        texts = [r["text"] for r in rows]
        lengths = self.token_lengths(texts)
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_ctx)
        examples = [{"input_ids": ids, "index": i} for i, ids in enumerate(encoded["input_ids"])]
        split = EncodedSplit(examples, sum(n > self.max_ctx for n in lengths))
        self.splits[name] = split
        return split

    def _fresh_model(self) -> SequenceClassifier:
        cfg, defaults = self.train_cfg, self.resolved.defaults
        policy = PrecisionPolicy.resolve(cfg.precision)
        storage = policy.frozen_storage_dtype(cfg.mode, half_storage_ok=defaults.fp16_half_storage)
        model = load_classifier(self.resolved, num_labels=self.num_labels, dtype=storage)
        if policy.name == "fp16" and defaults.fp16_fp32_modules:
            run_modules_in_fp32(model.backbone, defaults.fp16_fp32_modules)
        return apply_training_mode(model, cfg.mode, defaults, lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                                   lora_dropout=cfg.lora_dropout, lora_targets=cfg.lora_targets)

    def features(self, name: str) -> np.ndarray:
        """Frozen-backbone features of an encoded split (computed once, cached on this object)."""
        if name not in self._features:
            base = load_classifier(self.resolved, num_labels=self.num_labels)
            self._features.update({
                split: predict_logits(base, self.splits[split].examples, self.collate,
                                      batch_size=self.train_cfg.eval_batch_size, precision=self.train_cfg.precision,
                                      desc=f"{self.role} features: {split}", output="features")
                for split in self.splits if split not in self._features})
            del base
        return self._features[name]

    def set_features(self, name: str, features: np.ndarray) -> None:
        """Use features computed elsewhere (a cached features stage) instead of a forward pass."""
        self._features[name] = features

    def new_model(self) -> torch.nn.Module:
        """A fresh trainable model: a probe head over features, or the backbone in its training mode."""
        if self.train_cfg.mode != "probe":
            return self._fresh_model()
        hidden = next(iter(self._features.values())).shape[1] if self._features else None
        if hidden is None:
            raise RuntimeError("probe mode needs features: call features() or set_features() first")
        return ProbeHead(hidden, self.num_labels)

    def _examples(self, split: str, targets: np.ndarray | None = None) -> list[dict]:
        if self.train_cfg.mode == "probe":
            examples = [{"features": f, "index": i} for i, f in enumerate(self.features(split))]
        else:
            examples = [dict(ex) for ex in self.splits[split].examples]
        if targets is not None:
            for example, target in zip(examples, targets, strict=True):
                example["target"] = target
        return examples

    def fit(self, train_split: str, targets: np.ndarray, loss_fn: LossFn, *, seed: int, desc: str,
            **options: Any) -> tuple[torch.nn.Module, TrainResult]:
        """Train a fresh copy on ``train_split`` with soft ``targets`` (``options``: see :class:`Trainer`)."""
        if self.train_cfg.mode == "probe":
            self.features(train_split)
        torch.manual_seed(seed)  # same seed -> same head init and LoRA init
        model = self.new_model()
        result = train_model(model, self._examples(train_split, targets), self.collate, loss_fn, self.train_cfg,
                             self.lr, seed=seed, desc=desc, **options)
        return model, result

    def predict(self, model: torch.nn.Module, split: str, desc: str = "predict") -> np.ndarray:
        if self.train_cfg.mode == "probe":
            return _predict_probe(model, self._examples(split), self.collate)
        return predict_logits(model, self.splits[split].examples, self.collate,
                              batch_size=self.train_cfg.eval_batch_size, precision=self.train_cfg.precision,
                              desc=f"{desc}: {split}")

    def fit_predict(self, train_split: str, targets: np.ndarray, loss_fn: LossFn, predict_splits: Sequence[str],
                    *, seed: int, desc: str) -> tuple[dict[str, np.ndarray], TrainResult]:
        """Train a fresh copy on ``train_split`` with soft ``targets``; return logits on ``predict_splits``."""
        model, result = self.fit(train_split, targets, loss_fn, seed=seed, desc=desc)
        return {split: self.predict(model, split, desc) for split in predict_splits}, result


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters training changed (all, LoRA adapters + head, or the head): the stage's model artefact."""
    return {name: p.detach().cpu().contiguous() for name, p in model.named_parameters() if p.requires_grad}


@torch.no_grad()
def _predict_probe(model: torch.nn.Module, examples: list[dict], collate: Collator) -> np.ndarray:
    from w2slab.distributed import device

    model.eval().to(device())
    features = collate(examples)["features"].to(device())
    return model(features).float().cpu().numpy()
