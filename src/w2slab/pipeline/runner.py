"""One model of an experiment: tokenised splits, and fresh fine-tunes of it on demand.

The weak model is trained once (ground truth); the strong model is trained once per target
(ground truth for the ceiling, weak labels per loss for the students), each time from the same
pretrained weights. In ``probe`` mode the frozen backbone's features are computed once per split
and every head trains on the cached features, so a new loss costs seconds, not a forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from w2slab.config import TrainConfig
from w2slab.models.loading import (
    ResolvedModel,
    SequenceClassifier,
    apply_training_mode,
    load_classifier,
    load_tokenizer,
)
from w2slab.train.engine import TrainResult, predict_logits, train_model
from w2slab.train.losses import LossFn
from w2slab.train.precision import PrecisionPolicy, run_modules_in_fp32


@dataclass
class EncodedSplit:
    examples: list[dict]
    n_truncated: int


@dataclass
class Collator:
    """Pads token ids dynamically; stacks cached features; carries soft targets and indices."""

    pad_token_id: int

    def __call__(self, items: list[dict]) -> dict:
        batch: dict[str, torch.Tensor] = {}
        if "features" in items[0]:
            batch["features"] = torch.stack([torch.as_tensor(i["features"]) for i in items])
        else:
            width = max(len(i["input_ids"]) for i in items)
            ids = torch.full((len(items), width), self.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(items), width), dtype=torch.long)
            for row, item in enumerate(items):
                n = len(item["input_ids"])
                ids[row, :n] = torch.as_tensor(item["input_ids"])
                mask[row, :n] = 1
            batch["input_ids"], batch["attention_mask"] = ids, mask
        if "target" in items[0]:
            batch["target"] = torch.tensor(np.stack([i["target"] for i in items]), dtype=torch.float32)
        batch["index"] = torch.tensor([i["index"] for i in items])
        return batch


class ProbeHead(torch.nn.Module):
    """A linear head over cached features (the head of a frozen-backbone classifier)."""

    def __init__(self, head: torch.nn.Linear):
        super().__init__()
        self.head = head

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features.float())


@dataclass
class ModelRunner:
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
        self.collate = Collator(self.tokenizer.pad_token_id)

    @property
    def lr(self) -> float:
        if self.train_cfg.lr is not None:
            return self.train_cfg.lr
        defaults = self.resolved.defaults
        return {"full": defaults.lr_full, "lora": defaults.lr_lora, "probe": defaults.lr_probe}[self.train_cfg.mode]

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

    def _split_features(self, name: str) -> np.ndarray:
        if name not in self._features:
            base = load_classifier(self.resolved, num_labels=self.num_labels)
            self._features.update({
                split: predict_logits(base, self.splits[split].examples, self.collate,
                                      batch_size=self.train_cfg.eval_batch_size, precision=self.train_cfg.precision,
                                      desc=f"{self.role} features: {split}", output="features")
                for split in self.splits if split not in self._features})
            del base
        return self._features[name]

    def fit_predict(self, train_split: str, targets: np.ndarray, loss_fn: LossFn, predict_splits: Sequence[str],
                    *, seed: int, desc: str) -> tuple[dict[str, np.ndarray], TrainResult]:
        """Train a fresh copy on ``train_split`` with soft ``targets``; return logits on ``predict_splits``."""
        torch.manual_seed(seed)  # same seed -> same head init and LoRA init
        if self.train_cfg.mode == "probe":
            feats = self._split_features(train_split)
            model: torch.nn.Module = ProbeHead(torch.nn.Linear(feats.shape[1], self.num_labels))
            torch.nn.init.zeros_(model.head.weight)
            torch.nn.init.zeros_(model.head.bias)
            examples = [{"features": f, "target": t, "index": i}
                        for i, (f, t) in enumerate(zip(feats, targets, strict=True))]
        else:
            model = self._fresh_model()
            examples = [dict(ex, target=t) for ex, t in zip(self.splits[train_split].examples, targets, strict=True)]
        result = train_model(model, examples, self.collate, loss_fn, self.train_cfg, self.lr, seed=seed, desc=desc)
        logits = {}
        for split in predict_splits:
            if self.train_cfg.mode == "probe":
                split_examples = [{"features": f, "index": i} for i, f in enumerate(self._split_features(split))]
                logits[split] = _predict_probe(model, split_examples, self.collate)
            else:
                logits[split] = predict_logits(model, self.splits[split].examples, self.collate,
                                               batch_size=self.train_cfg.eval_batch_size,
                                               precision=self.train_cfg.precision, desc=f"{desc}: predict {split}")
        return logits, result


@torch.no_grad()
def _predict_probe(model: torch.nn.Module, examples: list[dict], collate: Collator) -> np.ndarray:
    model.eval()
    features = collate(examples)["features"].to(next(model.parameters()).device)
    return model(features).float().cpu().numpy()
