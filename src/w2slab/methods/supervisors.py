"""Synthetic weak supervisors with a chosen error structure (``supervise`` stages).

They stand in for the trained weak model: ground truth with errors put where the researcher says, so
one can vary the *kind* of weak error (random, class-conditional, tied to a surface cue) and measure
what a student recovers. Each flips exactly ``round(rate * n)`` of the eligible rows of each split, chosen
by the seed, to another class (the other one for K=2, a random other one for K>2). The labels are hard
(one-hot) unless ``confidence`` < 1, which puts that mass on the chosen class and spreads the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from w2slab.methods.base import SupervisorMethod, register_method
from w2slab.typed import check

CUES = ("keyword", "long", "short")


def flip_rows(labels: np.ndarray, rows: np.ndarray, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """``labels`` with each of ``rows`` moved to a different class (uniformly among the others)."""
    flipped = labels.copy()
    shift = rng.integers(1, num_classes, size=len(rows)) if num_classes > 2 else np.ones(len(rows), dtype=int)
    flipped[rows] = (labels[rows] + shift) % num_classes
    return flipped


def choose(eligible: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Exactly ``round(rate * len(eligible))`` of the ``eligible`` row indices, at random."""
    return np.sort(rng.choice(eligible, size=int(round(rate * len(eligible))), replace=False))


@dataclass(frozen=True)
class _Synthetic(SupervisorMethod):
    confidence: float = 1.0  # probability the supervisor puts on the class it names

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 < self.confidence <= 1.0, "confidence", f"must be in (0, 1], got {self.confidence}")

    def error_rows(self, texts: list[str], labels: np.ndarray, num_classes: int,
                   rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def supervise(self, texts: dict[str, list[str]], labels: dict[str, np.ndarray], num_classes: int,
                  seed: int) -> dict[str, np.ndarray]:
        out = {}
        for i, name in enumerate(sorted(labels)):
            rng = np.random.default_rng([seed, i, 7919])  # its own stream per split: adding a split changes nothing
            truth = np.asarray(labels[name])
            named = flip_rows(truth, self.error_rows(texts[name], truth, num_classes, rng), num_classes, rng)
            rest = (1.0 - self.confidence) / max(1, num_classes - 1)
            probs = np.full((len(truth), num_classes), rest, dtype=np.float32)
            probs[np.arange(len(truth)), named] = self.confidence
            out[name] = probs
        return out


@register_method("synthetic_flip")
@dataclass(frozen=True)
class RandomFlips(_Synthetic):
    """Synthetic supervisor: ground truth with a random share ``rate`` of labels flipped (uniform noise)."""

    rate: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.rate <= 1.0, "rate", f"must be in [0, 1], got {self.rate}")

    def error_rows(self, texts, labels, num_classes, rng):
        return choose(np.arange(len(labels)), self.rate, rng)


@register_method("synthetic_class_flip")
@dataclass(frozen=True)
class ClassConditionalFlips(_Synthetic):
    """Synthetic supervisor: ground truth with class-conditional flips (``rates[k]`` of the rows of class k)."""

    rates: tuple[float, ...] = (0.0, 0.4)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(all(0.0 <= r <= 1.0 for r in self.rates), "rates", f"each must be in [0, 1], got {self.rates}")

    def check_classes(self, num_classes: int) -> None:
        check(len(self.rates) == num_classes, "rates", f"needs one rate per class ({num_classes}), got {self.rates}")

    def error_rows(self, texts, labels, num_classes, rng):
        self.check_classes(num_classes)
        rows = [choose(np.flatnonzero(labels == k), rate, rng) for k, rate in enumerate(self.rates)]
        return np.sort(np.concatenate(rows))


@register_method("synthetic_cue")
@dataclass(frozen=True)
class CueFlips(_Synthetic):
    """Synthetic supervisor: errors tied to a surface cue (a keyword, long or short texts), the rest correct."""

    modalities: ClassVar[frozenset[str]] = frozenset({"text"})

    cue: str = "long"  # keyword: texts containing `keyword`; long / short: the longest / shortest `share` of texts
    keyword: str = ""
    share: float = 0.3  # long / short: the fraction of texts (by characters) the cue covers
    rate: float = 1.0  # of the texts with the cue, the share whose label is flipped

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.cue in CUES, "cue", f"must be one of {', '.join(CUES)}, got {self.cue!r}")
        check(self.cue != "keyword" or bool(self.keyword.strip()), "keyword", "name the keyword, e.g. keyword=not")
        check(0.0 < self.share < 1.0, "share", f"must be in (0, 1), got {self.share}")
        check(0.0 <= self.rate <= 1.0, "rate", f"must be in [0, 1], got {self.rate}")

    def has_cue(self, texts: list[str]) -> np.ndarray:
        if self.cue == "keyword":
            pattern = re.compile(rf"\b{re.escape(self.keyword.strip())}\b", re.IGNORECASE)
            return np.array([bool(pattern.search(t)) for t in texts])
        lengths = np.array([len(t) for t in texts])
        order = np.argsort(-lengths if self.cue == "long" else lengths, kind="stable")
        covered = np.zeros(len(texts), dtype=bool)
        covered[order[:int(round(self.share * len(texts)))]] = True
        return covered

    def error_rows(self, texts, labels, num_classes, rng):
        return choose(np.flatnonzero(self.has_cue(texts)), self.rate, rng)
