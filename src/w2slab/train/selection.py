"""Callbacks that watch a student while it trains: checkpoint selection on held-out labels, and a trace; and
``length: auto``, the search for a training length that converges (:func:`search_length`).

:class:`KeepBest` scores held-out rows against whatever targets the caller gives: the weak labels (model
selection without ground truth, as EleutherAI/w2s and EleutherAI/weak-to-strong do with AUROC against
weak labels) or, for a named oracle, ground truth. :class:`RecordPredictions` keeps the model's logits on
some splits every few steps, without labels: the evaluate stage turns them into PGR and agreement over
training.

:func:`search_length` runs a training and, under ``length: auto``, retries it longer while it ends unconverged by
the rule the results use (:func:`w2slab.results.convergence_problems`): epochs E, 2E, 4E, ... up to ``max_epochs``
(4E when unset), then, where the longest attempt was numerically stable (no skipped steps, no learning-rate cut, no
suspect reason: a training that diverged is not helped by a higher rate), one attempt at the longest length with
:data:`RETRY_LR_FACTOR` times the learning rate (the head's too). It stops at the first attempt that converges.
Kept: that attempt; where none converged, the one with the best validation score (the caller's: accuracy on the
validation split's ground truth for the weak model and the ceiling, agreement with its own labels on held-out
transfer rows for a student), the shorter on a tie. Nothing here reads the test set. A first attempt that
converges is the whole search: the training of ``length: fixed``, bit for bit.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from w2slab.config import TrainConfig
from w2slab.metrics import auroc, softmax
from w2slab.results import epochs_text
from w2slab.train.trainer import (
    StabilityReport,
    Trainer,
    TrainerCallback,
    TrainerState,
    evaluation_due,
    predict_while_training,
)

METRICS = ("accuracy", "auroc", "loss")


def selection_score(logits: np.ndarray, targets: np.ndarray, metric: str) -> float:
    """Higher is better: accuracy or AUROC of the model against the targets' argmax, or minus the soft
    cross-entropy."""
    if metric == "accuracy":
        return float((logits.argmax(-1) == targets.argmax(-1)).mean())
    if metric == "auroc":
        value = auroc(softmax(logits), targets.argmax(-1))
        return value if math.isfinite(value) else float((logits.argmax(-1) == targets.argmax(-1)).mean())
    log_probs = torch.log_softmax(torch.from_numpy(logits).float(), dim=-1).numpy()
    return float((targets * log_probs).sum(-1).mean())


class KeepBest(TrainerCallback):
    """Every ``every`` steps and at the end, score the model on held-out ``examples`` against ``targets``; keep
    a copy of the trainable parameters of the best score and load it back when training ends. With
    ``patience``, stop after that many evaluations without improvement.

    Rows ``{"step", "split": "validation", "metric", "score", "best"}`` go to ``state.evaluations``. The best
    weights live in memory: a run resumed from a checkpoint selects among the evaluations after the resume
    (a note in the log says so).
    """

    def __init__(self, examples: Sequence[dict], targets: np.ndarray, every: int, *, metric: str = "auroc",
                 patience: int = 0, batch_size: int = 64):
        self.examples, self.targets = list(examples), np.asarray(targets, dtype=np.float32)
        self.every, self.metric, self.patience, self.batch_size = max(1, every), metric, patience, batch_size
        self.best_score, self.best_step, self.best_state = -math.inf, -1, None
        self.since_best = 0

    def on_train_begin(self, trainer: Trainer, state: TrainerState) -> None:
        if any(row.get("split") == "validation" for row in state.evaluations):
            state.log.append({"event": "resumed: checkpoint selection starts again from here"})

    def on_step_end(self, trainer: Trainer, state: TrainerState, row: dict) -> None:
        if not evaluation_due(state, self.every):
            return
        score = self.score(trainer)
        improved = score > self.best_score
        if improved:
            self.best_score, self.best_step, self.since_best = score, state.step, 0
            model = trainer.accelerator.unwrap_model(trainer.model)
            self.best_state = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        else:
            self.since_best += 1
        state.evaluations.append({"step": state.step, "split": "validation", "metric": self.metric,
                                  "score": score, "best": improved})
        if self.patience and self.since_best >= self.patience:
            state.should_stop = True

    def score(self, trainer: Trainer) -> float:
        logits = predict_while_training(trainer, self.examples, batch_size=self.batch_size, desc="validation")
        return selection_score(logits, self.targets, self.metric)

    def on_train_end(self, trainer: Trainer, state: TrainerState) -> None:
        if self.best_state is None:
            return
        model = trainer.accelerator.unwrap_model(trainer.model)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name in self.best_state:
                    param.copy_(self.best_state[name])
        state.log.append({"event": "selected", "step": self.best_step, "metric": self.metric,
                          "score": self.best_score})


class RecordPredictions(TrainerCallback):
    """Every ``every`` steps (and at the last one), the model's logits on each named list of examples.

    ``steps`` and ``logits[name]`` (one [N, K] array per recorded step) accumulate in memory; prediction runs in
    eval mode and draws no random numbers, so the trained model is the one an untraced run produces.
    """

    def __init__(self, examples: dict[str, Sequence[dict]], every: int, *, batch_size: int = 64):
        self.examples = {name: list(rows) for name, rows in examples.items()}
        self.every, self.batch_size = max(1, every), batch_size
        self.steps: list[int] = []
        self.logits: dict[str, list[np.ndarray]] = {name: [] for name in self.examples}

    def on_step_end(self, trainer: Trainer, state: TrainerState, row: dict) -> None:
        if not evaluation_due(state, self.every):
            return
        for name, rows in self.examples.items():
            self.logits[name].append(predict_while_training(trainer, rows, batch_size=self.batch_size,
                                                            desc=f"trace {name}"))
        self.steps.append(state.step)

    def arrays(self) -> dict[str, np.ndarray]:
        """``steps`` [T] and ``<name>`` [T, N, K] for ``np.savez``."""
        return {"steps": np.array(self.steps), **{name: np.stack(values) for name, values in self.logits.items()
                                                   if values}}


# --- length: auto ------------------------------------------------------------------------------------------

#: The learning-rate factor of the one retry after the longest length still did not converge (lr and head lr).
RETRY_LR_FACTOR = 3.0
#: ``max_epochs`` when unset: this many times ``epochs``.
DEFAULT_CAP_FACTOR = 4.0


def length_cap(cfg: TrainConfig) -> float:
    """The longest attempt ``length: auto`` may train: ``max_epochs``, else :data:`DEFAULT_CAP_FACTOR` x epochs."""
    return float(cfg.max_epochs) if cfg.max_epochs is not None else DEFAULT_CAP_FACTOR * cfg.epochs


def retry_lengths(cfg: TrainConfig) -> list[float]:
    """The epochs of the retries after the first attempt: doubling, the last clipped to :func:`length_cap`."""
    cap, current, lengths = length_cap(cfg), float(cfg.epochs), []
    while current < cap * (1 - 1e-9):
        current = min(2.0 * current, cap)
        lengths.append(current)
    return lengths


def stable(report: StabilityReport) -> bool:
    """No skipped step, no learning-rate cut, no suspect reason: a higher learning rate could help it."""
    return not report.suspect and not report.lr_cuts and not report.skipped_steps


@dataclass
class Attempt:
    """One training of a length search: its length and learning rate, how it ended, and how it was judged.

    ``score``: the caller's validation score (higher is better; NaN: not scored). ``judged``: whether convergence
    could be judged at all (no validation rows, or a student whose own labels are too unsure to be fitted
    confidently, cannot be): an attempt that was not judged is never retried."""

    epochs: float
    lr_factor: float = 1.0
    lr: float = math.nan
    head_lr: float | None = None
    rows: int = 0
    final_loss: float = math.nan
    score: float = math.nan
    converged: bool = True
    judged: bool = True
    reasons: list[str] = field(default_factory=list)
    stable: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {key: (None if isinstance(value, float) and not math.isfinite(value) else value)
                for key, value in dataclasses.asdict(self).items()}

    def beats(self, other: Attempt) -> bool:
        """Converged before unconverged, then the higher score; a tie keeps ``other`` (the earlier, shorter)."""
        if self.converged != other.converged:
            return self.converged
        mine = self.score if math.isfinite(self.score) else -math.inf
        theirs = other.score if math.isfinite(other.score) else -math.inf
        return mine > theirs


def search_length(cfg: TrainConfig, run: Callable[[int, TrainConfig, float], tuple[Any, Attempt]], *, lr: float,
                  head_lr: float | None, first_is_candidate: bool = True, score_name: str = "validation score",
                  role: str = "model", echo: Callable[[str], None] | None = None) -> tuple[Any, dict[str, Any]]:
    """Train by ``run(index, train_config, lr_factor) -> (payload, Attempt)`` under ``cfg.length`` (see the module
    docstring); returns the kept attempt's payload and the record of the search (empty under ``fixed``).

    ``lr``/``head_lr``: the first attempt's resolved rates, which the learning-rate retry multiplies.
    ``first_is_candidate``: False where the retries train on other rows than the first attempt (a student's
    retries hold some of its rows out to score on), so the first cannot be compared with them and is kept only
    when no retry ran."""
    payload, first = run(0, cfg, 1.0)
    if cfg.length == "fixed":
        return payload, {}
    attempts = [first]
    record: dict[str, Any] = {"rule": "auto", "cap": length_cap(cfg), "score_name": score_name}
    kept_payload, kept, kept_index = (payload, first, 0) if first_is_candidate else (None, None, 0)
    if first.converged or not first.judged:
        return payload, {**record, "attempts": [first.to_dict()], "kept": 0}
    say = echo or (lambda _: None)
    plan = [(length, 1.0) for length in retry_lengths(cfg)]
    index, boosted = 0, False
    while True:
        last = attempts[-1]
        if not plan:  # the longest length did not converge: the learning rate may be what holds it back
            if boosted or not last.stable:
                break
            plan.append((last.epochs, RETRY_LR_FACTOR))
            boosted = True
        epochs, factor = plan.pop(0)
        why = "; ".join(reason.split(" did not converge: ", 1)[-1] for reason in last.reasons)
        say(f"  {role} did not converge at {epochs_text(last.epochs)} ({why}): retrying at {epochs_text(epochs)}"
            + (f" and {factor:g}x the learning rate" if factor != 1.0 else ""))
        index += 1
        changes: dict[str, Any] = {"epochs": epochs}
        if factor != 1.0:
            changes.update(lr=lr * factor, head_lr=head_lr * factor if head_lr is not None else None)
        payload, attempt = run(index, dataclasses.replace(cfg, **changes), factor)
        attempts.append(attempt)
        if kept is None or attempt.beats(kept):
            kept_payload, kept, kept_index = payload, attempt, index
        if attempt.converged:
            break
    if kept is None:  # no retry could run (cap = epochs and an unstable first attempt)
        kept_payload, kept_index = payload, 0
    return kept_payload, {**record, "attempts": [a.to_dict() for a in attempts], "kept": kept_index}
