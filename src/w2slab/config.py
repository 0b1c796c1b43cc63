"""Typed, serialisable configuration of experiments and training runs.

Every result folder stores the fully *resolved* config (defaults filled in, per-model learning
rates chosen), so a run can be read back and repeated from its ``config.json`` alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

TRAIN_MODES = ("full", "lora", "probe")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class TrainConfig:
    """How one model is trained. ``lr=None`` means the model family's default for ``mode``."""

    mode: str = "full"  # full fine-tuning, LoRA adapters, or a linear probe on a frozen backbone
    lr: float | None = None
    epochs: float = 2.0
    batch_size: int = 16
    eval_batch_size: int = 64
    warmup_frac: float = 0.1
    scheduler: str = "cosine"  # cosine | linear | constant_with_warmup
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    precision: str = "auto"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: str | list[str] | None = None  # None: the family's targets

    def __post_init__(self) -> None:
        from w2slab.errors import W2SError

        if self.mode not in TRAIN_MODES:
            raise W2SError(f"unknown training mode {self.mode!r}; choose from {', '.join(TRAIN_MODES)}")
        if self.precision not in PRECISIONS:
            raise W2SError(f"unknown precision {self.precision!r}; choose from {', '.join(PRECISIONS)}")
        if self.batch_size < 1 or self.epochs <= 0:
            raise W2SError("batch size must be >= 1 and epochs > 0")


@dataclass
class ExperimentConfig:
    """One weak-to-strong experiment: (dataset, weak model, strong model, losses, seed)."""

    # Default: a 10-point gap between weak and ceiling that survives seed noise, in ~2 CPU minutes
    # (README "The default experiment"); sciq sits near chance for every CPU-sized model.
    dataset: str = "sst2"
    weak: str = "minilm-l6"
    strong: str = "mpnet-base"
    losses: list[str] = field(default_factory=lambda: ["xent", "logconf"])
    n_train: int = 2000  # labelled docs, split in half: weak-train and transfer (as the reference code)
    n_test: int = 800
    seed: int = 0
    max_ctx: int = 128
    truncation: str = "left"  # left | right | drop: what to do with texts longer than max_ctx
    aux_weight: float = 0.5  # logconf maximum auxiliary weight
    weak_train: TrainConfig = field(default_factory=TrainConfig)
    strong_train: TrainConfig = field(default_factory=lambda: TrainConfig(mode="probe"))
    data_root: str | None = None
    data_source: str = "auto"  # auto | local | hub
    model_cache: str | None = None
    out_dir: str = "runs"
    name: str | None = None  # experiment folder name; default derived from the config

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        data = dict(data)
        for key in ("weak_train", "strong_train"):
            if isinstance(data.get(key), dict):
                data[key] = TrainConfig(**data[key])
        return cls(**data)

    def short_hash(self) -> str:
        """Stable digest of the config, for naming folders."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    def default_name(self) -> str:
        safe = lambda s: s.replace("/", "_")  # noqa: E731 - Hub ids hold slashes
        return (f"{safe(self.dataset)}_{safe(self.weak)}_to_{safe(self.strong)}_s{self.seed}_"
                f"{self.short_hash()}")
