"""Typed, validated, serialisable configuration: what identifies a result, and where a run lives.

Two objects, kept apart on purpose:

- :class:`ExperimentConfig` (with one :class:`TrainConfig` per role) is *what* is computed. It is
  validated field by field on construction (types, ranges, names against the registries), it is
  hashed into stage identities and folder names, and it is saved with every result.
- :class:`RuntimeConfig` is *where* things live and *how* the run is watched (data root, model
  cache, run root, checkpoint interval, trackers). Changing it never changes a result, so it is never
  hashed: moving the data or the cache reuses every finished stage. The one exception is its extra trainer
  ``callbacks``, which can change what is trained: they enter the training stages' identities unless they
  declare ``observes_only`` (:class:`~w2slab.train.trainer.TrainerCallback`).

Build either from plain data with :meth:`from_dict` (unknown keys and wrong types fail in one line
naming the key); :meth:`to_dict` gives the JSON-ready form that :meth:`from_dict` reads back.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from w2slab.data.sources import DATA_ORIGINS, DataOrigin
from w2slab.losses import DEFAULT_WARMUP_FRAC, Loss, make_loss
from w2slab.methods import Method, check_method, make_method
from w2slab.progress import echo
from w2slab.tracking import TRACKERS as TRACKER_PACKAGES
from w2slab.tracking import check_trackers
from w2slab.typed import build, check, check_types, to_plain

TrainMode = Literal["full", "lora", "probe"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
Truncation = Literal["left", "right", "drop"]
Scheduler = Literal["cosine", "linear", "constant_with_warmup", "constant"]
HeadKind = Literal["auto", "linear", "label_tokens"]
LengthRule = Literal["auto", "fixed"]
TRAIN_MODES: tuple[str, ...] = TrainMode.__args__
PRECISIONS: tuple[str, ...] = Precision.__args__
TRUNCATIONS: tuple[str, ...] = Truncation.__args__
HEAD_KINDS: tuple[str, ...] = HeadKind.__args__
LENGTH_RULES: tuple[str, ...] = LengthRule.__args__


@dataclass(frozen=True)
class TrainConfig:
    """How one model is trained. ``lr=None`` means the model family's default for ``mode``."""

    mode: TrainMode = "full"  # full fine-tuning, LoRA adapters, or a linear probe on a frozen backbone
    lr: float | None = None
    # the classification head's learning rate when the backbone trains too (full, lora); None: the model family's
    # probe learning rate. A zero-initialised head under AdamW moves by about its learning rate per step: at the
    # backbone's 3e-5 for 64 steps its logits could not leave [-.3, .3] and every ceiling probability stayed in
    # [.43, .57] (README "Training that converges"). Ignored in probe mode, where the head is all that trains (lr).
    head_lr: float | None = None
    # how the head starts when the backbone trains too: "zero" (every example at the uniform prediction), or
    # "probe": a logistic regression fitted on the frozen backbone's features of the training rows first (LP-FT,
    # Kumar et al. 2022), at the cost of one forward pass over them (README "Training that converges")
    head_init: Literal["zero", "probe"] = "zero"
    # how a class is read from the network: "linear" (pooled features -> a linear head), "label_tokens" (a decoder's
    # own next-token logits of one label word per class under a prompt), "auto" (the model family's default)
    head: HeadKind = "auto"
    epochs: float = 2.0
    # "auto": a training that ends unconverged by the results' "did not converge" rule (judged on validation) is
    # retried at 2x, 4x, ... its epochs, each attempt at most ``max_epochs`` long (None: 4 x epochs), then once at the
    # longest length with 3x the learning rate where it trained stably; it stops at the first attempt that converges,
    # else keeps the best on validation (w2slab.train.selection.search_length). A first attempt that converges is
    # exactly the training of "fixed": one attempt of ``epochs``.
    length: LengthRule = "auto"
    max_epochs: float | None = None
    batch_size: int = 16
    group_by_length: bool = True  # batches of similar-length texts (transformers' length-grouped order)
    dropout: bool = False  # the model's dropout while training; off as in the reference recipe (README "Speed")
    eval_batch_size: int = 64  # batching of predictions only: never changes a result, not part of identities
    # students: predict transfer and test every this many steps (0: never), for PGR and agreement over training;
    # prediction draws no random numbers, so the trained model is the same, but the stage stores the trace
    trace_every: int = 0
    warmup_frac: float = DEFAULT_WARMUP_FRAC
    scheduler: Scheduler = "cosine"
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    precision: Precision = "auto"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: str | tuple[str, ...] | None = None  # None: the family's targets
    # keep the trained parameters (the whole model, LoRA adapters + head, or the probe head) as safetensors in the
    # stage and the experiment folder, to probe the model afterwards; the weak model's are always kept. A stage
    # without them is another stage (they are its output), so asking for them recomputes a cached ceiling/student.
    keep_weights: bool = False

    def __post_init__(self) -> None:
        check_types(self)
        check(self.mode in TRAIN_MODES, "mode", f"must be one of {', '.join(TRAIN_MODES)}, got {self.mode!r}")
        check(self.precision in PRECISIONS, "precision",
              f"must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        check(self.lr is None or self.lr > 0, "lr", f"must be > 0 (or null for the family default), got {self.lr}")
        check(self.head_lr is None or self.head_lr > 0, "head_lr",
              f"must be > 0 (or null for the family's probe learning rate), got {self.head_lr}")
        check(math.isfinite(self.epochs) and self.epochs > 0, "epochs",
              f"must be a finite number > 0, got {self.epochs}")
        check(self.head in HEAD_KINDS, "head", f"must be one of {', '.join(HEAD_KINDS)}, got {self.head!r}")
        check(self.length in LENGTH_RULES, "length",
              f"must be one of {', '.join(LENGTH_RULES)}, got {self.length!r}")
        check(self.max_epochs is None or (math.isfinite(self.max_epochs) and self.max_epochs >= self.epochs),
              "max_epochs", f"must be a finite number >= epochs ({self.epochs}) or null, got {self.max_epochs}")
        check(self.lr is None or math.isfinite(self.lr), "lr", f"must be finite, got {self.lr}")
        check(self.head_lr is None or math.isfinite(self.head_lr), "head_lr", f"must be finite, got {self.head_lr}")
        for name in ("warmup_frac", "weight_decay", "max_grad_norm", "lora_alpha", "lora_dropout"):
            check(math.isfinite(getattr(self, name)), name, f"must be finite, got {getattr(self, name)}")
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        check(self.eval_batch_size >= 1, "eval_batch_size", f"must be >= 1, got {self.eval_batch_size}")
        check(self.trace_every >= 0, "trace_every", f"must be >= 0 (0: no trace), got {self.trace_every}")
        check(0.0 <= self.warmup_frac <= 1.0, "warmup_frac", f"must be in [0, 1], got {self.warmup_frac}")
        check(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        check(self.max_grad_norm > 0, "max_grad_norm", f"must be > 0, got {self.max_grad_norm}")
        check(self.lora_r >= 1, "lora_r", f"must be >= 1, got {self.lora_r}")
        check(self.lora_alpha > 0, "lora_alpha", f"must be > 0, got {self.lora_alpha}")
        check(0.0 <= self.lora_dropout < 1.0, "lora_dropout", f"must be in [0, 1), got {self.lora_dropout}")

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str = "") -> TrainConfig:
        return build(cls, data, path)

    def to_dict(self) -> dict[str, Any]:
        """Plain data; ``keep_weights`` only when set and ``head`` only when not ``auto``, so configs without them
        keep the identities they had (an ``auto`` head is the model family's, which the stages' model defaults
        hold)."""
        data = to_plain(self)
        if not data.get("keep_weights"):
            data.pop("keep_weights", None)
        if data.get("head") == "auto":
            data.pop("head", None)
        return data

    def identity(self) -> dict[str, Any]:
        """The fields that can change a trained model (prediction batching cannot)."""
        data = self.to_dict()
        data.pop("eval_batch_size")
        return data


#: One line per training field: the ``--weak.FIELD`` / ``--strong.FIELD`` help (comments above say why).
TRAIN_FIELD_HELP = {
    "mode": f"how the model trains: {', '.join(TRAIN_MODES)}",
    "lr": "learning rate (null: the model family's default for the mode)",
    "head_lr": "the head's learning rate when the backbone trains too (null: the family's probe rate)",
    "head_init": "the head before fine-tuning: zero, or probe (a logistic regression on frozen features, LP-FT)",
    "head": "how a class is read: linear (a head on pooled features), label_tokens (a decoder's label-word "
            "logits under a prompt), auto (the family's default)",
    "epochs": "passes over the training rows (fractions allowed)",
    "length": "auto: an unconverged training is retried longer (then at 3x lr), kept on validation; fixed: once",
    "max_epochs": "the longest attempt when length is auto (null: 4 x epochs)",
    "batch_size": "training batch size",
    "group_by_length": "batches of similar-length texts",
    "dropout": "the model's dropout while training",
    "eval_batch_size": "prediction batch size (never changes a result)",
    "trace_every": "students: predict transfer and test every N steps (0: never)",
    "warmup_frac": "learning-rate warm-up as a fraction of training",
    "scheduler": "learning-rate schedule: cosine, linear, constant_with_warmup, constant",
    "weight_decay": "AdamW weight decay",
    "max_grad_norm": "gradient clipping norm",
    "precision": f"{', '.join(PRECISIONS)} (auto: bf16/fp16 on GPU; bf16 on a CPU with native bf16, else fp32)",
    "lora_r": "LoRA rank",
    "lora_alpha": "LoRA alpha",
    "lora_dropout": "LoRA dropout",
    "lora_targets": "LoRA target modules, e.g. [query, value] (null: the family's)",
    "keep_weights": "keep the trained weights (adapters + head under LoRA) in the experiment folder",
}


#: What each role trains with when a config does not say, per modality. Text: both models fine-tuned; the strong
#: one at batch 32 (the reference recipe's) for one epoch: with its head at the probe learning rate one epoch of
#: 1,000 sentences reaches a .911 ceiling (ECE .07) and keeps the default experiment within 6 minutes on 2 CPU
#: cores (README "The default experiment"; two epochs took 559 s for a ceiling of .911 as well). Images: the
#: reference's vision setting, a weak CNN trained from scratch and a linear probe on the frozen pretrained backbone
#: (README "Images"): the CNN needs more passes than a fine-tune (10 epochs; it is small), the probe 5 (on
#: fashion_mnist 20 epochs raise the ceiling by .004 and let the student fit its teacher's errors: PGR .05 vs .32).
ROLE_DEFAULTS: dict[tuple[str, str], TrainConfig] = {
    ("text", "weak"): TrainConfig(),
    ("text", "strong"): TrainConfig(mode="full", batch_size=32, epochs=1.0),
    ("image", "weak"): TrainConfig(mode="full", epochs=10.0, batch_size=32),
    ("image", "strong"): TrainConfig(mode="probe", epochs=5.0, batch_size=32),
    # vectors (linear models of coordinates): logistic regression by AdamW, 10 passes at batch 64 (the planted
    # Gaussian task's accuracies reach their population values within .01 at 5,000 rows; README "A task with a
    # known answer")
    ("vector", "weak"): TrainConfig(mode="probe", epochs=10.0, batch_size=64),
    ("vector", "strong"): TrainConfig(mode="probe", epochs=10.0, batch_size=64),
}


def role_default(modality: str, role: str) -> TrainConfig:
    return ROLE_DEFAULTS[(modality, role)]


def _default_losses() -> tuple[Loss, ...]:
    return (make_loss("xent"), make_loss("logconf"))


def _default_methods() -> tuple[Method, ...]:
    return (make_method("none"),)


@dataclass(frozen=True)
class ExperimentConfig:
    """One weak-to-strong experiment: (dataset, weak model, strong model, losses, seed).

    ``losses`` accepts names, ``{name: ..., param: ...}`` mappings or :class:`~w2slab.losses.Loss`
    instances; each is validated against the loss registry and stored as a typed loss object. ``methods``
    likewise (:mod:`w2slab.methods`); the experiment trains one student per (method, loss).
    """

    # Default: the paper's NLP setting, the strong model fine-tuned, on sentence-level SST-2 (transfer and test both
    # whole sentences; GLUE's train split is phrases), weak minilm-l3 (minilm-l6 left a 5.8-point gap, too small
    # to rank methods). README "The default experiment" gives its gap over seeds and its time on 2 CPU cores.
    dataset: str = "sst2_sentences"
    weak: str = "minilm-l3"
    strong: str = "mpnet-base"
    losses: tuple[Loss, ...] = field(default_factory=_default_losses)
    methods: tuple[Method, ...] = field(default_factory=_default_methods)  # "none": the paper's recipe
    n_train: int = 2000  # labelled docs, split in half: weak-train and transfer (as the reference code)
    n_test: int = 1800  # one seed's PGR known to about +-.1 (800 gave +-.3 to .5)
    # ground-truth rows beside the pool for every tuning choice (lr, epochs, defaults): the test set is read once,
    # by evaluation, for the table; a file too small for it gets a smaller validation set, with a note
    n_val: int = 500
    # seed: the partition of the pool into weak-train and transfer, initialisations, shuffles and dropout;
    # data_seed: which rows form the pool (n_train) and the test set (n_test). Seeds of one data_seed share
    # their examples, so a new seed reuses every token id and frozen feature computed for the others.
    seed: int = 0
    data_seed: int = 0
    max_ctx: int = 128
    truncation: Truncation = "left"  # texts longer than max_ctx: keep the end, keep the start, or drop them
    data_source: DataOrigin = "auto"  # the field keeps its name: it is in every saved config and stage identity
    # reading a user's .jsonl/.csv file (registered datasets have their own formatters)
    text_field: str = "text"
    label_field: str = "label"
    label_map: dict[str, int] | None = None  # word labels to class ids, e.g. {"positive": 1, "negative": 0}
    # how each role trains; None: the modality's default (ROLE_DEFAULTS): text fine-tunes both models, images train
    # the weak CNN from scratch and probe the frozen strong backbone (the paper's vision setting)
    weak_train: TrainConfig | None = None
    strong_train: TrainConfig | None = None
    image_size: int | None = None  # images: the side they are resized to (None: each model's native size)

    def __post_init__(self) -> None:
        if isinstance(self.losses, str | Loss | dict):  # one loss given on its own
            object.__setattr__(self, "losses", (self.losses,))
        if isinstance(self.methods, str | Method | dict):
            object.__setattr__(self, "methods", (self.methods,))
        check_types(self)  # types of every field; losses become registered Loss objects, train dicts TrainConfigs
        for role in ("weak", "strong"):
            if getattr(self, f"{role}_train") is None:
                object.__setattr__(self, f"{role}_train", role_default(self.modality, role))
        check(bool(self.losses), "losses", "name at least one loss (e.g. xent)")
        labels = [loss.label for loss in self.losses]
        duplicated = sorted({label for label in labels if labels.count(label) > 1})
        check(not duplicated, "losses", f"{', '.join(duplicated)} listed twice")
        check(bool(self.methods), "methods", "name at least one method (none: the paper's recipe)")
        labels = [method.label for method in self.methods]
        duplicated = sorted({label for label in labels if labels.count(label) > 1})
        check(not duplicated, "methods", f"{', '.join(duplicated)} listed twice")
        for method in self.methods:
            check_method(method)  # a student-side method reading ground truth must be a named oracle
        for key in ("dataset", "weak", "strong"):
            check(bool(getattr(self, key).strip()), key, "must be a non-empty name")
        check(self.n_train >= 4, "n_train", f"must be >= 4 (half weak-train, half transfer), got {self.n_train}")
        check(self.n_test >= 2, "n_test", f"must be >= 2, got {self.n_test}")
        check(self.n_val >= 0, "n_val", f"must be >= 0 (0: no validation set), got {self.n_val}")
        check(self.max_ctx >= 2, "max_ctx", f"must be >= 2 tokens, got {self.max_ctx}")
        check(self.image_size is None or self.image_size >= 8, "image_size",
              f"must be >= 8 pixels (or null: each model's own), got {self.image_size}")
        # seeds reach torch and numpy, which take at most 64 bits (and ids derived from them add to it)
        check(0 <= self.seed < 2**32, "seed", f"must be in [0, 2^32), got {self.seed}")
        check(0 <= self.data_seed < 2**32, "data_seed", f"must be in [0, 2^32), got {self.data_seed}")
        check(self.truncation in TRUNCATIONS, "truncation", f"must be one of {', '.join(TRUNCATIONS)}")
        check(self.data_source in DATA_ORIGINS, "data_source", f"must be one of {', '.join(DATA_ORIGINS)}")
        check(bool(self.text_field.strip()) and bool(self.label_field.strip()), "text_field",
              "text_field and label_field must name columns")
        bad = {k: v for k, v in (self.label_map or {}).items()
               if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 10_000 or not k.strip()}
        check(not bad, "label_map", f"maps words to class ids 0..K-1, got {bad}; e.g. positive=1,negative=0")

    @property
    def modality(self) -> str:
        """``text`` or ``image``: what the dataset holds (from its name; no data is read)."""
        from w2slab.data import dataset_modality

        return dataset_modality(self.dataset)

    def reads_a_file(self) -> bool:
        """A user's data file (not a registered dataset name)."""
        return Path(self.dataset).suffix.lower() in (".jsonl", ".csv") or Path(self.dataset).is_file()

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str = "") -> ExperimentConfig:
        """From plain data (a sweep entry, a ``config.json``); every key and value is checked. A partial
        ``weak_train`` / ``strong_train`` mapping overrides the dataset modality's defaults for that role."""
        if isinstance(data, dict) and "resolved" in data:  # a result's config.json: what it resolved to is output
            data = {k: v for k, v in data.items() if k != "resolved"}
        if isinstance(data, dict) and isinstance(data.get("dataset", cls.dataset), str):
            from w2slab.data import dataset_modality

            modality = dataset_modality(data.get("dataset", cls.dataset))
            data = dict(data)
            for role in ("weak", "strong"):
                given = data.get(f"{role}_train")
                if isinstance(given, dict):
                    data[f"{role}_train"] = {**role_default(modality, role).to_dict(), **given}
        return build(cls, data, path)

    def to_dict(self) -> dict[str, Any]:
        """Plain data; ``image_size`` only when set, so text experiments keep the identities they always had."""
        data = to_plain(self)
        if data.get("image_size") is None:
            data.pop("image_size", None)
        for role in ("weak_train", "strong_train"):  # each role's own spelling (keep_weights only when set)
            data[role] = getattr(self, role).to_dict()
        return data

    def identity(self) -> str:
        """Digest of everything that identifies the experiment's results (never where they are stored)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:8]

    def default_name(self) -> str:
        """``<dataset>_<weak>_to_<strong>_s<seed>_<identity>``: local files and folders by their base name."""

        def short(name: str) -> str:
            path = Path(name)
            if path.suffix in (".jsonl", ".csv") or path.is_absolute() or name.startswith("."):
                return path.stem if path.suffix in (".jsonl", ".csv") else path.name
            return name.replace("/", "_").replace(":", "-")  # Hub ids hold one slash; timm:, coords: a colon

        tail = f"_s{self.seed}_{self.identity()}"
        return safe_folder_name(f"{short(self.dataset)}_{short(self.weak)}_to_{short(self.strong)}", tail)

    def train_config(self, role: str) -> TrainConfig:
        return self.weak_train if role == "weak" else self.strong_train

    def model(self, role: str) -> str:
        return self.weak if role == "weak" else self.strong


TRACKERS = tuple(TRACKER_PACKAGES)

# What the run root holds besides experiment folders: an experiment may never be named after one of them, since
# publishing an experiment folder replaces whatever folder has its name.
RUN_ROOT_ENTRIES = ("stages", "experiments", "examples", "tracking", "report", "events.jsonl")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=@,-]{0,199}")


def safe_folder_name(head: str, tail: str = "") -> str:
    """``head + tail`` as a name :func:`check_experiment_name` accepts, for names derived from a user's file names:
    accents dropped (``données`` -> ``donnees``), other characters outside the safe set as ``_`` (``my data`` ->
    ``my_data``), no leading punctuation, at most 200 characters (``tail``, the identity, always kept). A name
    that was safe already is unchanged, so existing experiment folders keep theirs."""
    import unicodedata

    plain = unicodedata.normalize("NFKD", head).encode("ascii", "ignore").decode("ascii")
    plain = re.sub(r"[^A-Za-z0-9._+=@,-]", "_", plain).lstrip("._+=@,-") or "experiment"
    return plain[:200 - len(tail)] + tail


def check_experiment_name(name: str) -> None:
    """An experiment folder name is one plain entry of the run root, never a path nor one of the store's entries.

    Why: the folder is published by replacing ``RUN_ROOT/<name>``; an unchecked name (``stages``, ``.``, ``..``,
    ``/abs/path``) would delete the stage cache, the run root or any folder once the training is over.
    """
    check(isinstance(name, str) and bool(_SAFE_NAME.fullmatch(name)), "name",
          f"{name!r} is not a plain folder name; use letters, digits and . _ + = @ , - (no '/', not starting "
          "with '.'), e.g. --name my_experiment")
    check(name.lower() not in RUN_ROOT_ENTRIES, "name",
          f"{name!r} is reserved for the run root's own {name.lower()!r}; choose another, e.g. --name {name}_run")


@dataclass
class RuntimeConfig:
    """Where things live and how a run is watched: never part of a result's identity."""

    run_root: str = "runs"  # stages live in RUN_ROOT/stages, experiment folders in RUN_ROOT/<name>
    data_root: str | None = None  # default: $W2SLAB_DATA_ROOT
    model_cache: str | None = None  # default: $W2SLAB_CACHE/models or ~/.cache/w2slab/models
    name: str | None = None  # experiment folder name (w2s run); default derived from the config
    checkpoint_every: int = 50  # training steps between resumable checkpoints (0: none)
    # ... written only once this many seconds have passed since the training began or last saved: a crash
    # costs at most about this much work, and a short training writes none (0: at every interval)
    checkpoint_seconds: float = 120.0
    trackers: tuple[str, ...] = ()  # tensorboard, wandb, mlflow (JSONL step logs are always written)
    executor: str = "local"  # local | ray (see w2slab.pipeline.executors)
    recompute: tuple[str, ...] = ()  # stage kinds to compute again even if finished (and all that depend on them)
    # where messages go: the ``w2slab`` logger by default (w2slab.progress.configure_logging shows them)
    echo: Callable[..., None] = field(default=echo, repr=False, compare=False)
    # extra TrainerCallbacks: in the training stages' identities unless their class sets observes_only = True
    callbacks: tuple[Any, ...] = field(default=(), repr=False, compare=False)
    # stage id -> the config id of the first experiment that needs it: the group its tracker run joins
    tracking_groups: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.data_root is None and os.environ.get("W2SLAB_DATA_ROOT"):
            self.data_root = os.environ["W2SLAB_DATA_ROOT"]
        if isinstance(self.trackers, str):
            self.trackers = tuple(t.strip() for t in self.trackers.split(",") if t.strip())
        self.trackers = tuple(self.trackers)
        if isinstance(self.recompute, str):
            self.recompute = tuple(k.strip() for k in self.recompute.split(",") if k.strip())
        self.recompute = tuple(self.recompute)
        if self.name is not None:
            check_experiment_name(self.name)
        check_trackers(self.trackers)  # unknown, or its library not installed: one line before any work
        check(isinstance(self.checkpoint_every, int) and self.checkpoint_every >= 0, "checkpoint_every",
              f"must be an integer >= 0, got {self.checkpoint_every!r}")
        check(isinstance(self.checkpoint_seconds, int | float) and self.checkpoint_seconds >= 0, "checkpoint_seconds",
              f"must be a number >= 0, got {self.checkpoint_seconds!r}")
        for key in ("run_root", "model_cache"):
            where = getattr(self, key)
            check(where is None or not Path(where).exists() or Path(where).is_dir(), key,
                  f"{where} is a file, not a folder; give a folder (it is created if missing)")

    def absolute(self) -> RuntimeConfig:
        """The same settings with absolute paths (for workers that start in another folder or on another node)."""
        import dataclasses

        def absolute(path: str | None) -> str | None:
            return str(Path(path).expanduser().resolve()) if path else path

        return dataclasses.replace(self, run_root=absolute(self.run_root), data_root=absolute(self.data_root),
                                   model_cache=absolute(self.model_cache) or str(self.cache_dir().resolve()))

    def example_dir(self) -> Path:
        """Token ids and frozen-backbone features, keyed by example text (see :mod:`w2slab.example_store`)."""
        return Path(self.run_root) / "examples"

    def cache_dir(self) -> Path:
        from w2slab.models.loading import default_cache_dir

        return Path(self.model_cache) if self.model_cache else default_cache_dir()

    def tracking_dir(self, label: str) -> Path | None:
        return Path(self.run_root) / "tracking" / label if self.trackers else None
