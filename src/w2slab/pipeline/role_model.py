"""One model of an experiment in one role (weak or strong): its encoded splits and fresh fine-tunes of it.

The weak model is trained once (ground truth); the strong model is trained once per target
(ground truth for the ceiling, weak labels per loss for the students), each time from the same
pretrained weights. In ``probe`` mode every head trains on cached frozen-backbone features, so a new
loss costs seconds, not a forward pass.

Token ids and features are kept in :class:`~w2slab.example_store.ExampleStore` folders keyed by the
example's text (under ``store_root``), not by split: every seed, split and experiment of a dataset
reuses them, and only texts never seen by this tokenizer or model cost a tokenizer call or a forward pass.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from w2slab.config import TrainConfig
from w2slab.data.types import PAIR_FIELD, content, is_pair
from w2slab.errors import ConfigError
from w2slab.example_store import ExampleStore, store_key
from w2slab.losses import LossFn, needs_of
from w2slab.models.label_tokens import LabelPrompt, label_prompt, prompt_token_ids
from w2slab.models.loading import (
    PairwiseScorer,
    ProbeHead,
    ResolvedModel,
    TwinModel,
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
    texts: list[str] = field(default_factory=list)
    texts_b: list[str] | None = None  # preference pairs: the second texts


_STORES: dict[Path, ExampleStore] = {}
#: Seconds this process spent computing what the example stores lacked, by kind (tokens, features): what
#: benchmarks/speed.py reports as the cost of tokenisation and feature extraction.
COMPUTE_SECONDS: dict[str, float] = {}


def example_store(root: Path, kind: str, identity: dict[str, Any]) -> ExampleStore:
    """The store of ``kind`` (tokens, features) for ``identity``, one object per folder in this process."""
    describe = {"kind": kind, **identity}
    folder = Path(root) / kind / store_key(describe)
    if folder not in _STORES:
        _STORES[folder] = ExampleStore(folder, describe)
    return _STORES[folder]


@dataclass
class RoleModel:
    role: str  # "weak" or "strong", for messages and file names
    resolved: ResolvedModel
    train_cfg: TrainConfig
    max_ctx: int
    truncation: str
    num_labels: int = 2
    pairwise: bool = False  # preference pairs: a Bradley-Terry scorer (one output) over each text alone
    image_size: int | None = None  # images: the side they are resized to (None: the model's own)
    # the dataset's name and class names: what a label-token head's prompt and label words are chosen by
    dataset: str = ""
    class_names: tuple[str, ...] | None = None
    # where token ids and features are kept across stages (None: computed in memory, not kept), and what
    # determines them besides max_ctx, truncation and precision (the model's revision, the code's versions)
    store_root: Path | None = None
    identity: dict[str, Any] = field(default_factory=dict)
    splits: dict[str, EncodedSplit] = field(default_factory=dict)
    _features: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """A local model folder is loaded as it is now but was identified by its content when the run was planned:
        refuse a folder edited in between (its training would be stored under the old identity)."""
        if "revision" in self.identity:
            from w2slab.pipeline.graph import check_model_unchanged

            check_model_unchanged(str(self.identity.get("model", self.resolved.name)), str(self.identity["revision"]))
        _ = self.head  # a head that cannot apply is one line now, before any tokenizer or weights load

    @functools.cached_property
    def head(self) -> str:
        """How a class is read: ``linear`` (a head on pooled features) or ``label_tokens`` (the LM's logits of one
        label word per class under a prompt, :mod:`w2slab.models.label_tokens`). ``auto`` is the model family's
        head where label tokens can apply, else linear: probe mode (cached features, no LM in the loop), LP-FT's
        ``head_init: probe`` (a fitted linear head), preference pairs (one score per text) and non-decoders. Asked
        for by name where it cannot apply, label_tokens is a one-line :class:`ConfigError` naming the fix."""
        cfg, defaults = self.train_cfg, self.resolved.defaults
        problem = self._label_tokens_problem()
        if cfg.head == "auto":
            return "linear" if problem else defaults.head
        if cfg.head == "label_tokens" and problem:
            raise ConfigError(f"{self.role} model {self.resolved.name!r}: head label_tokens {problem}"
                              + ("" if "; use" in problem else f"; use --{self.role}.head linear"))
        return cfg.head

    def _label_tokens_problem(self) -> str:
        """Why a label-token head cannot apply to this model and training ("" where it can)."""
        cfg, kind = self.train_cfg, self.resolved.defaults.kind
        if kind != "decoder":
            return f"reads a decoder's next-token logits and this is {'an' if kind[0] in 'aeiou' else 'a'} {kind} model"
        if cfg.mode == "probe":
            return f"needs the LM in every forward pass and probe mode trains on cached features; use " \
                   f"--{self.role}.mode lora or full"
        if cfg.head_init == "probe":
            return "starts from the LM's own label-word rows, which head_init probe would replace with a fitted " \
                   f"probe; use --{self.role}.head_init zero"
        if self.pairwise:
            return "does not apply to preference pairs (a Bradley-Terry scorer reads one score per text)"
        return ""

    @functools.cached_property
    def prompt(self) -> LabelPrompt | None:
        """A label-token head's prompt and label words (None for a linear head)."""
        if self.head != "label_tokens":
            return None
        return label_prompt(self.dataset, self.num_labels, self.class_names)

    def _prompt_key(self) -> dict[str, Any]:
        """What a prompt adds to the example stores' identity (nothing without one: their keys stay as they were)."""
        return {"prompt": self.prompt.to_value()} if self.prompt is not None else {}

    @functools.cached_property
    def tokenizer(self):
        """Loaded on first use: a stage whose texts are all in the token store (a probe head on cached
        features) never loads it."""
        return load_tokenizer(self.resolved, truncation_side=self.truncation)

    @property
    def is_image(self) -> bool:
        return self.resolved.modality == "image"

    @property
    def is_vector(self) -> bool:
        """Vector rows read by a linear model of some coordinates: no tokenizer, no stores (the features are the
        coordinates themselves)."""
        return self.resolved.modality == "vector"

    @functools.cached_property
    def pretrained(self) -> torch.nn.Module:
        """The pretrained model with a fresh head, loaded once: what frozen features are extracted with, and
        where an image model's preprocessing is read from."""
        return load_classifier(self.resolved, num_labels=self.outputs, image_size=self.image_size)

    @property
    def outputs(self) -> int:
        """The classifier's outputs: K logits, or one score per text for preference pairs."""
        return 1 if self.pairwise else self.num_labels

    @property
    def image_preprocess(self):
        """The image model's preprocessing (size, channels, normalisation): it belongs to the model, as a
        tokenizer does."""
        return self.pretrained.preprocess

    @functools.cached_property
    def input_collate(self) -> Collator:
        """Batches of the model's own inputs: padded token ids, or preprocessed images."""
        if self.is_vector:
            return Collator()
        return Collator(images=self.image_preprocess) if self.is_image else Collator(self.tokenizer)

    @functools.cached_property
    def collate(self) -> Collator:
        """Model-input batches; feature batches only in probe mode (which then never needs the tokenizer)."""
        return Collator() if self.train_cfg.mode == "probe" else self.input_collate

    @property
    def lr(self) -> float:
        """The configured learning rate, else the model family's default for the training mode."""
        cfg = self.train_cfg
        return cfg.lr if cfg.lr is not None else self.resolved.defaults.lr_for(cfg.mode)

    @property
    def head_lr(self) -> float | None:
        """The head's learning rate when the backbone trains too: configured, else the family's probe rate (a zero
        head must move); a label-token head starts at the LM's own rows and trains at the backbone's rate."""
        cfg = self.train_cfg
        if cfg.mode == "probe":
            return None
        if cfg.head_lr is not None:
            return cfg.head_lr
        return self.lr if self.head == "label_tokens" else self.resolved.defaults.lr_for("probe")

    def resolved_settings(self) -> dict[str, Any]:
        """What this model resolved at run time; stages record it and results read it back, never recompute it."""
        from w2slab.distributed import device

        policy = PrecisionPolicy.resolve(self.train_cfg.precision, device())
        settings = {"model": self.resolved.name, "location": self.resolved.location, "source": self.resolved.source,
                    "mode": self.train_cfg.mode, "lr": self.lr, "head_lr": self.head_lr, "precision": policy.name,
                    "device": policy.device_type, "pooling": self.resolved.defaults.pooling, "head": self.head}
        if self.prompt is not None:
            settings["prompt"] = self.prompt.to_value()
        if self.is_image:
            settings["preprocess"] = self.image_preprocess.to_value()
        return settings

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(list(texts), truncation=False)["input_ids"]]

    def _store(self, kind: str, **what: Any) -> ExampleStore | None:
        if self.store_root is None or self.is_vector:
            return None
        if self.is_image:  # images: what they are resized to, not how texts are cut
            return example_store(self.store_root, kind, {**self.identity, **what,
                                                          "preprocess": self.image_preprocess.to_value()})
        return example_store(self.store_root, kind, {**self.identity, "max_ctx": self.max_ctx,
                                                      "truncation": self.truncation, **what})

    def _tokenize(self, texts: list[str]) -> list[np.ndarray]:
        """Per text: ``[untruncated length, *token ids truncated to max_ctx]`` (one row of the token store)."""
        if not texts:
            return []
        if self.prompt is not None:  # <text><question>: the text cut to fit, the question kept whole
            encoded, lengths = prompt_token_ids(self.tokenizer, texts, self.prompt, self.max_ctx)
        else:
            encoded = self.tokenizer(texts, truncation=True, max_length=self.max_ctx)["input_ids"]
            lengths = self.token_lengths(texts)
        return [np.array([n, *ids], dtype=np.int64) for n, ids in zip(lengths, encoded, strict=True)]

    def encode(self, name: str, rows: Sequence[dict]) -> EncodedSplit:
        """Token ids of a split, from the token store where this tokenizer has seen the text before; images are
        kept as their strings and preprocessed batch by batch (:class:`Collator`)."""
        if self.is_image or self.is_vector:
            key = "image" if self.is_image else "vector"
            values = [content(r) for r in rows]
            split = EncodedSplit([{key: value, "index": i} for i, value in enumerate(values)], 0, values)
            self.splits[name] = split
            return split
        texts = [r["text"] for r in rows]
        texts_b = [r[PAIR_FIELD] for r in rows] if rows and is_pair(rows[0]) else None
        if (texts_b is not None) != self.pairwise:
            raise ValueError(f"{self.role} model: preference pairs need a pairwise model and only pairs may use one")
        rows_of = _cached(self._store("tokens", **self._prompt_key()), texts + (texts_b or []), self._tokenize,
                          "tokens")
        examples = [{"input_ids": row[1:].tolist(), "index": i} for i, row in enumerate(rows_of[:len(texts)])]
        for example, row in zip(examples, rows_of[len(texts):], strict=False):
            example["input_ids_b"] = row[1:].tolist()
        lengths = [int(row[0]) for row in rows_of]
        if texts_b is not None:  # a pair is truncated when either text is
            lengths = [max(a, b) for a, b in zip(lengths[:len(texts)], lengths[len(texts):], strict=True)]
        split = EncodedSplit(examples, sum(n > self.max_ctx for n in lengths), texts, texts_b)
        self.splits[name] = split
        return split

    def _fresh_model(self) -> torch.nn.Module:
        cfg, defaults = self.train_cfg, self.resolved.defaults
        policy = PrecisionPolicy.resolve(cfg.precision)
        storage = policy.frozen_storage_dtype(cfg.mode, half_storage_ok=defaults.fp16_half_storage)
        label_words = {"head": "label_tokens", "label_words": self.prompt.words, "tokenizer": self.tokenizer} \
            if self.prompt is not None else {}
        model = load_classifier(self.resolved, num_labels=self.outputs, dtype=storage, image_size=self.image_size,
                                **label_words)
        if policy.name == "fp16" and defaults.fp16_fp32_modules:
            run_modules_in_fp32(model.backbone, defaults.fp16_fp32_modules)
        model = apply_training_mode(model, cfg.mode, defaults, lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                                    lora_dropout=cfg.lora_dropout, lora_targets=cfg.lora_targets)
        return PairwiseScorer(model) if self.pairwise else model

    def features(self, name: str) -> np.ndarray:
        """Frozen-backbone features of an encoded split, from the feature store where the text was seen before.

        The first call computes every encoded split's missing texts in one forward pass.
        """
        if name not in self._features:
            todo = [split for split in self.splits if split not in self._features]
            by_text = self._frozen_features_of(todo)
            for split in todo:
                self._features[split] = self._stack(by_text, self.splits[split])
        return self._features[name]

    def frozen_features(self, name: str) -> np.ndarray:
        """The pretrained backbone's features of one split only (LP-FT's probe), through the feature store."""
        return self._stack(self._frozen_features_of([name]), self.splits[name])

    @staticmethod
    def _stack(by_text: dict[str, np.ndarray], split: EncodedSplit) -> np.ndarray:
        """A split's features: [N, H], or [N, 2, H] for preference pairs (each text's own)."""
        first = np.stack([by_text[t] for t in split.texts]).astype(np.float32)
        if split.texts_b is None:
            return first
        return np.stack([first, np.stack([by_text[t] for t in split.texts_b]).astype(np.float32)], axis=1)

    def _frozen_features_of(self, splits: list[str]) -> dict[str, np.ndarray]:
        """Text -> pretrained-backbone features for every text of ``splits`` (both of a pair's): from the feature
        store, with one forward pass over the texts it lacks."""
        examples = {}
        for split in splits:
            encoded = self.splits[split]
            for text, ex in zip(encoded.texts, encoded.examples, strict=True):
                examples[text] = {"input_ids": ex["input_ids"], "index": 0} if "input_ids" in ex else ex
            for text, ex in zip(encoded.texts_b or [], encoded.examples, strict=False):
                examples[text] = {"input_ids": ex["input_ids_b"], "index": 0}

        def extract(texts: list[str]) -> list[np.ndarray]:
            values = predict_logits(self.pretrained, [examples[t] for t in texts], self.input_collate,
                                    batch_size=self.train_cfg.eval_batch_size, precision=self.train_cfg.precision,
                                    desc=f"{self.role} features", output="features")
            return list(values)

        policy = PrecisionPolicy.resolve(self.train_cfg.precision)  # on this process's device
        store = self._store("features", precision=policy.name, device=policy.device_type,
                            pooling=self.resolved.defaults.pooling, **self._prompt_key())
        return dict(zip(examples, _cached(store, list(examples), extract, "features"), strict=True))

    def set_features(self, name: str, features: np.ndarray) -> None:
        """Use features computed elsewhere (a cached features stage) instead of a forward pass."""
        self._features[name] = features

    def new_model(self) -> torch.nn.Module:
        """A fresh trainable model: a probe head over features, or the backbone in its training mode."""
        if self.train_cfg.mode != "probe":
            return self._fresh_model()
        hidden = next(iter(self._features.values())).shape[-1] if self._features else None
        if hidden is None:
            raise RuntimeError("probe mode needs features: call features() or set_features() first")
        head = ProbeHead(hidden, self.outputs)
        return PairwiseScorer(head) if self.pairwise else head

    def _examples(self, split: str, targets: np.ndarray | None = None, weights: np.ndarray | None = None
                  ) -> list[dict]:
        if self.train_cfg.mode == "probe":
            examples = [{"features": f, "index": i} for i, f in enumerate(self.features(split))]
        else:
            examples = [dict(ex) for ex in self.splits[split].examples]
        if targets is not None:
            for example, target in zip(examples, targets, strict=True):
                example["target"] = target
        if weights is not None and not np.all(weights == 1.0):  # all ones: the plain mean, bit for bit
            for example, weight in zip(examples, weights, strict=True):
                example["weight"] = float(weight)
        return examples

    def subset(self, name: str, rows: np.ndarray) -> str:
        """``rows`` of an encoded split as a split of their own (filtered or held-out rows); returns its name.

        All rows in order is the split itself, so a method that keeps every row trains exactly as without it.
        """
        rows = np.asarray(rows, dtype=int)
        base = self.splits[name]
        if len(rows) == len(base.examples) and np.array_equal(rows, np.arange(len(rows))):
            return name
        if self.train_cfg.mode == "probe":
            features = self.features(name)
        subset = f"{name}[{len(rows)} rows]"
        self.splits[subset] = EncodedSplit([{**base.examples[i], "index": k} for k, i in enumerate(rows)], 0,
                                           [base.texts[i] for i in rows],
                                           None if base.texts_b is None else [base.texts_b[i] for i in rows])
        if self.train_cfg.mode == "probe":
            self._features[subset] = features[rows]
        return subset

    def subset_examples(self, name: str, rows: np.ndarray) -> list[dict]:
        """Prediction examples of some rows of a split (a validation slice)."""
        return self._examples(self.subset(name, rows))

    def fit(self, train_split: str, targets: np.ndarray, loss_fn: LossFn, *, seed: int, desc: str,
            weights: np.ndarray | None = None, **options: Any) -> tuple[torch.nn.Module, TrainResult]:
        """Train a fresh copy on ``train_split`` with soft ``targets`` and optional per-example loss ``weights``
        (``options``: see :class:`Trainer`)."""
        if self.train_cfg.mode == "probe":
            self.features(train_split)
        torch.manual_seed(seed)  # same seed -> same head init and LoRA init
        model = self.new_model()
        probe_targets = targets.mean(1) if targets.ndim == 3 else targets  # several teachers: their mean
        if self.train_cfg.mode != "probe" and self.train_cfg.head_init == "probe":
            fit_probe_head(model.head, self.frozen_features(train_split), probe_targets, weights)
        if "twin" in needs_of(loss_fn):  # co-teaching: two students from independent starts
            model = self._twins(model, train_split, probe_targets, weights, seed, loss_fn.twin_prediction)
        result = train_model(model, self._examples(train_split, targets, weights), self.collate, loss_fn,
                             self.train_cfg, self.lr, seed=seed, desc=desc, head_lr=self.head_lr, **options)
        return model, result

    def _twins(self, first: torch.nn.Module, train_split: str, targets: np.ndarray, weights: np.ndarray | None,
               seed: int, predict: str) -> CoTeachingTwins:
        """Co-teaching's two students, their heads initialised independently (Han et al. train two networks from
        different random initialisations; two zero heads, or one nudged by noise, on the same features would solve
        the same problem and be one model). Zero-initialised heads get ``nn.Linear``'s default random init, one
        seed per twin; LP-FT heads (``head_init: probe``) are fit, the second on a seeded bootstrap resample of the
        rows, so the twins start from different probes. Label-token heads keep the LM's rows (a random one would
        throw away what the head is for): under LoRA the twins' adapters start apart; full fine-tuning is refused."""
        if self.head == "label_tokens" and self.train_cfg.mode != "lora":
            raise ConfigError(f"co-teaching's two {self.role} students must start apart, and label_tokens heads start "
                              "at the LM's own rows: under full fine-tuning the twins would be one model; use "
                              f"--{self.role}.mode lora (their adapters start apart) or --{self.role}.head linear")
        torch.manual_seed(seed + 1)
        second = self.new_model()
        if self.head == "label_tokens":
            pass  # both read the LM's own label rows; their LoRA adapters start from their own seeds
        elif self.train_cfg.mode != "probe" and self.train_cfg.head_init == "probe":
            resample = np.random.default_rng([seed, 31]).multinomial(len(targets), np.full(len(targets),
                                                                                           1.0 / len(targets)))
            fit_probe_head(second.head, self.frozen_features(train_split), targets,
                           resample * (1.0 if weights is None else np.asarray(weights)))
        else:
            for twin, twin_seed in ((first, seed), (second, seed + 1)):
                random_head(twin.head, twin_seed)
        return CoTeachingTwins(first, second, predict)

    def predict(self, model: torch.nn.Module, split: str, desc: str = "predict") -> np.ndarray:
        return self.predict_splits(model, (split,), desc)[split]

    def predict_splits(self, model: torch.nn.Module, names: Sequence[str], desc: str = "predict"
                       ) -> dict[str, np.ndarray]:
        """Logits on several splits in one pass (one length-sorted batching over all their examples)."""
        if self.train_cfg.mode == "probe":
            examples = [ex for name in names for ex in self._examples(name)]
            logits = _predict_probe(model, examples, self.collate)
        else:
            examples = [ex for name in names for ex in self.splits[name].examples]
            logits = predict_logits(model, examples, self.collate, batch_size=self.train_cfg.eval_batch_size,
                                    precision=self.train_cfg.precision, desc=f"{desc}: {', '.join(names)}")
        bounds = np.cumsum([0] + [len(self.splits[name].examples) for name in names])
        return {name: logits[bounds[i]:bounds[i + 1]] for i, name in enumerate(names)}

    def fit_predict(self, train_split: str, targets: np.ndarray, loss_fn: LossFn, predict_splits: Sequence[str],
                    *, seed: int, desc: str) -> tuple[dict[str, np.ndarray], TrainResult]:
        """Train a fresh copy on ``train_split`` with soft ``targets``; return logits on ``predict_splits``."""
        model, result = self.fit(train_split, targets, loss_fn, seed=seed, desc=desc)
        return self.predict_splits(model, predict_splits, desc), result


class CoTeachingTwins(TwinModel):
    """A :class:`TwinModel` whose predictions are the first network's (``predict: first``, co-teaching's default: the
    paper evaluates one network, and the mean of two would add an ensemble's gain to co-teaching's) or the two
    networks' averaged probabilities (``predict: mean``). Training logits are both networks' ``[B, 2K]``."""

    def __init__(self, first: torch.nn.Module, second: torch.nn.Module, predict: str = "first"):
        super().__init__(first, second)
        if predict not in ("first", "mean"):
            raise ValueError(f"twin predictions: first or mean, got {predict!r}")
        self.predict = predict

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or self.predict == "mean":
            return super().forward(**inputs)
        return self.first(**inputs)


def random_head(head: torch.nn.Module, seed: int) -> None:
    """``head`` (a linear layer, or a module whose ``head`` is one) reset to ``nn.Linear``'s default random init,
    drawn from ``seed`` without touching the global random state."""
    linear = head if isinstance(head, torch.nn.Linear) else getattr(head, "head", None)
    if not isinstance(linear, torch.nn.Linear):
        raise TypeError(f"co-teaching needs a linear head to initialise, got {type(head).__name__}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        linear.reset_parameters()


def _cached(store: ExampleStore | None, texts: list[str], compute, kind: str) -> list[np.ndarray]:
    """``compute(texts)`` for the texts ``store`` lacks (all of them without a store); stored, then returned."""
    if store is None:
        return compute(texts)
    values, missing = store.get(texts)
    if missing:
        unique = list(dict.fromkeys(texts[i] for i in missing))
        started = time.perf_counter()
        computed = dict(zip(unique, compute(unique), strict=True))
        COMPUTE_SECONDS[kind] = COMPUTE_SECONDS.get(kind, 0.0) + time.perf_counter() - started
        store.add(unique, [computed[t] for t in unique])
        values = [computed[texts[i]] if v is None else v for i, v in enumerate(values)]
    return values


def fit_probe_head(head: torch.nn.Linear, features: np.ndarray, targets: np.ndarray,
                   weights: np.ndarray | None = None) -> bool:
    """Set ``head`` to a logistic regression fitted on frozen ``features`` (LP-FT's first stage): labels are the
    targets' argmax, each row weighted by its target's confidence (and its loss weight). Returns False, leaving
    the head as it is, when some class has no row to fit."""
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(targets).argmax(-1)
    num_classes = head.weight.shape[0]
    pairs = features.ndim == 3  # preference pairs: a score w.x + b with P(a preferred) = sigmoid(w.(x_a - x_b))
    if len(np.unique(labels)) < max(num_classes, 2):
        return False
    sample_weight = np.asarray(targets).max(-1) * (1.0 if weights is None else np.asarray(weights))
    if pairs:
        features = features[:, 0] - features[:, 1]
    probe = LogisticRegression(C=1.0, max_iter=2000, fit_intercept=not pairs).fit(
        features.astype(np.float64), labels, sample_weight=sample_weight)
    coef, intercept = probe.coef_, probe.intercept_
    if pairs:  # the score's bias cancels in every difference: keep it 0
        coef, intercept = coef, np.zeros(1)
    elif num_classes == 2:  # one logit z for class 1: softmax(-z/2, z/2) = sigmoid(z)
        coef, intercept = np.concatenate([-coef / 2, coef / 2]), np.concatenate([-intercept / 2, intercept / 2])
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(coef, dtype=head.weight.dtype))
        head.bias.copy_(torch.as_tensor(intercept, dtype=head.bias.dtype))
    return True


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters training changed (all, LoRA adapters + head, or the head): the stage's model artefact."""
    return {name: p.detach().cpu().contiguous() for name, p in model.named_parameters() if p.requires_grad}


@torch.no_grad()
def _predict_probe(model: torch.nn.Module, examples: list[dict], collate: Collator) -> np.ndarray:
    from w2slab.distributed import device

    model.eval().to(device())
    features = collate(examples)["features"].to(device())
    return model(features=features).float().cpu().numpy()
