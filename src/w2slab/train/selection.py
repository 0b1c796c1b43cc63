"""Callbacks that watch a student while it trains: checkpoint selection on held-out labels, and a trace.

:class:`KeepBest` scores held-out rows against whatever targets the caller gives: the weak labels (model
selection without ground truth, as EleutherAI/w2s and EleutherAI/weak-to-strong do with AUROC against
weak labels) or, for a named oracle, ground truth. :class:`RecordPredictions` keeps the model's logits on
some splits every few steps, without labels: the evaluate stage turns them into PGR and agreement over
training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from w2slab.metrics import auroc, softmax
from w2slab.train.trainer import Trainer, TrainerCallback, TrainerState, evaluation_due, predict_while_training

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
