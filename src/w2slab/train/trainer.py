"""A small trainer with a typed, serialisable state and callbacks (after ``transformers``' Trainer).

The loop itself only does what every run needs: batches in a seeded order, a forward pass under
the precision policy, the loss in fp32, backward, clipping and an optimiser step that is skipped
when the loss or the gradient norm is not finite. Everything else hangs on callbacks that see the
:class:`TrainerState` after each step:

- :class:`StabilityGuard`: repeated bad steps halve the learning rate (logged as an event); fp16 scaler
  back-offs (the scaler skipping a step and lowering its scale) are counted apart and never cut it;
- :class:`ProgressCallback`: a rich progress bar on a terminal;
- :class:`TrackerCallback`: TensorBoard / W&B through accelerate's trackers;
- :class:`CheckpointCallback`: resumable checkpoints through ``accelerate.save_state``;
- :class:`PeriodicEvaluation`: loss and accuracy on a named split every N steps, into the state
  (the hook early stopping uses: any callback may set ``state.should_stop``).

``accelerate`` owns devices and distribution, ``torch.amp`` (via :mod:`w2slab.train.precision`)
autocast and the fp16 scaler, ``transformers`` the schedule, ``torch.optim.AdamW`` the optimiser.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import re
import shutil
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from w2slab import atomic
from w2slab.config import TrainConfig
from w2slab.errors import TrainingError
from w2slab.losses import LossFn, needs_of, settled_of
from w2slab.progress import logger, progress_bar
from w2slab.train.precision import PrecisionPolicy

# After this many consecutive non-finite steps the learning rate is halved.
BAD_STEPS_BEFORE_LR_CUT = 3
# A training is *suspect* when its largest applied gradient norm exceeds this multiple of their median.
# Norms are measured before clipping; early steps and warm-up routinely sit within ~10-20x of the median,
# while a loss spike or a blow-up that clipping hides shows as a jump of two orders of magnitude.
#: A training's loss "rose" when its last steps average this fraction above its first (after any warm-up): a
#: flat, converged loss compared with itself moves by noise (co-teaching's settled loss by up to 1%), a diverging
#: one by far more.
SUSPECT_LOSS_RISE = 0.02
SUSPECT_GRAD_SPIKE_RATIO = 50.0
# The initial and final loss of a training are the means of its first and last this-many finite step losses.
LOSS_WINDOW = 10


@dataclass
class TrainerState:
    """Everything a resumed run needs besides the tensors (those go through ``accelerate.save_state``)."""

    step: int = 0
    total_steps: int = 0
    steps_per_epoch: int = 0
    log: list[dict] = field(default_factory=list)  # one row per optimiser step, plus events
    grad_norms: list[float] = field(default_factory=list)  # of the steps that were applied
    consecutive_bad: int = 0
    skipped: int = 0
    scaler_backoffs: int = 0  # fp16 steps the GradScaler skipped (and lowered its scale): not bad steps
    lr_cuts: int = 0
    evaluations: list[dict] = field(default_factory=list)  # PeriodicEvaluation rows
    should_stop: bool = False  # set by a callback to end training after the current step

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainerState:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class StabilityReport:
    """What happened numerically during one training run (saved with the stage, printed in one line)."""

    steps: int = 0
    skipped_steps: int = 0
    lr_cuts: int = 0
    max_grad_norm: float = float("nan")
    median_grad_norm: float = float("nan")
    final_loss: float = float("nan")
    precision: str = "fp32"
    scaler_backoffs: int = 0
    initial_loss: float = float("nan")
    # Why this training's numbers should not be trusted without a look (empty: nothing found). The checks
    # are in :meth:`suspect_reasons`; the evaluate stage copies them into the result, prefixed by the role.
    suspect: list[str] = field(default_factory=list)
    # ``length: auto`` (w2slab.train.selection.search_length): every attempt (epochs, learning rate, final loss,
    # validation score, converged) and which one was kept; empty under ``length: fixed``
    length: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        backoffs = f" scaler_backoffs={self.scaler_backoffs}" if self.scaler_backoffs else ""
        flags = f" SUSPECT: {'; '.join(self.suspect)}" if self.suspect else ""
        return (f"steps={self.steps} skipped={self.skipped_steps}{backoffs} lr_cuts={self.lr_cuts} "
                f"grad_norm(max={self.max_grad_norm:.3g}, median={self.median_grad_norm:.3g}) "
                f"final_loss={self.final_loss:.4f} precision={self.precision}{flags}")

    @classmethod
    def of(cls, state: TrainerState, precision: str, settled: float = 0.0) -> StabilityReport:
        """``settled``: the fraction of training after which the loss's objective stops changing by schedule
        (RAVEN's warm-up on the examples every teacher agrees on): the loss is compared from there on, since a
        loss that rises when its schedule adds harder examples has not diverged."""
        report = cls(steps=state.step, skipped_steps=state.skipped, lr_cuts=state.lr_cuts, precision=precision,
                     scaler_backoffs=state.scaler_backoffs)
        if state.grad_norms:
            report.max_grad_norm = max(state.grad_norms)
            report.median_grad_norm = statistics.median(state.grad_norms)
        finite = [row["loss"] for row in state.log if "loss" in row and math.isfinite(row["loss"])]
        report.final_loss = float(np.mean(finite[-LOSS_WINDOW:])) if finite else float("nan")
        after = finite[int(settled * len(finite)):] or finite
        report.initial_loss = float(np.mean(after[:LOSS_WINDOW])) if finite else float("nan")
        report.suspect = report.suspect_reasons()
        return report

    def suspect_reasons(self) -> list[str]:
        """The training-based checks: a loss that ends above where it began (the run diverged or fitted
        nothing), a gradient-norm spike far above the median (:data:`SUSPECT_GRAD_SPIKE_RATIO`), and a training
        that skipped a sizeable share of its steps on non-finite losses or gradients
        (:data:`SUSPECT_SKIPPED_FRACTION`: what it learned came from the steps that were left)."""
        reasons = []
        if self.steps and self.skipped_steps / self.steps >= SUSPECT_SKIPPED_FRACTION:
            reasons.append(f"{self.skipped_steps} of {self.steps} steps skipped on non-finite losses or gradients "
                           f"(threshold {SUSPECT_SKIPPED_FRACTION:.0%}); try --precision fp32 or a lower lr")
        if self.final_loss > self.initial_loss * (1.0 + SUSPECT_LOSS_RISE):  # False when either is NaN
            reasons.append(f"loss rose from {self.initial_loss:.4f} (first {LOSS_WINDOW} steps) to "
                           f"{self.final_loss:.4f} (last {LOSS_WINDOW})")
        top, median = self.max_grad_norm, self.median_grad_norm
        if math.isfinite(top) and math.isfinite(median) and top > SUSPECT_GRAD_SPIKE_RATIO * median:
            against = f"{top / median:.0f}x the median {median:.3g}" if median > 0 else "with a median of 0"
            reasons.append(f"gradient norm spiked to {top:.3g}, {against} (threshold {SUSPECT_GRAD_SPIKE_RATIO:g}x)")
        return reasons


#: a training that skipped this share of its steps (non-finite loss or gradients) is SUSPECT
SUSPECT_SKIPPED_FRACTION = 0.1


@dataclass
class TrainResult:
    state: TrainerState
    stability: StabilityReport

    @property
    def log(self) -> list[dict]:
        return self.state.log


class TrainerCallback:
    """Hooks into the loop; override what you need. ``trainer.state`` may be replaced in ``on_train_begin``.

    A callback passed through ``RuntimeConfig.callbacks`` can change what is trained, so it enters the identity
    of every training stage (its class, and its source when it is the user's) unless its class sets
    ``observes_only = True``: a callback that only logs or reports, and so is never part of a result.
    """

    observes_only: ClassVar[bool] = False

    def on_train_begin(self, trainer: Trainer, state: TrainerState) -> None:
        pass

    def on_step_end(self, trainer: Trainer, state: TrainerState, row: dict) -> None:
        """After an optimiser step (applied or skipped); ``state.step`` already counts it."""

    def on_train_end(self, trainer: Trainer, state: TrainerState) -> None:
        """Always called, also when training stops on an error (release resources here)."""


class StabilityGuard(TrainerCallback):
    """Halve the learning rate after ``patience`` consecutive non-finite steps (the schedule's shape is kept)."""

    def __init__(self, patience: int = BAD_STEPS_BEFORE_LR_CUT):
        self.patience = patience

    def on_step_end(self, trainer: Trainer, state: TrainerState, row: dict) -> None:
        if state.consecutive_bad < self.patience:
            return
        inner = getattr(trainer.scheduler, "scheduler", trainer.scheduler)  # accelerate wraps the scheduler
        inner.base_lrs = [lr * 0.5 for lr in inner.base_lrs]
        state.lr_cuts += 1
        state.log.append({"step": row["step"], "event": "lr_cut", "factor": 0.5})
        state.consecutive_bad = 0


class ProgressCallback(TrainerCallback):
    """A rich bar on a terminal, a line every few seconds elsewhere (:func:`~w2slab.progress.progress_bar`);
    opened at the first step, so a resumed run starts mid-way."""

    observes_only = True

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._advance: Callable[..., None] | None = None

    def on_step_end(self, trainer: Trainer, state: TrainerState, row: dict) -> None:
        if self._advance is None:
            self._advance = self._stack.enter_context(progress_bar(trainer.name, state.total_steps,
                                                                   start=state.step - 1))
        self._advance(f"loss {row['loss']:.3f}")

    def on_train_end(self, trainer: Trainer, state: TrainerState) -> None:
        self._stack.close()


class TrackerCallback(TrainerCallback):
    """Loss, gradient norm and learning rate per step to accelerate's trackers (TensorBoard, W&B, MLflow): one run
    per training stage, named by its label, a job of its experiment's group (:mod:`w2slab.tracking`).

    W&B runs offline unless ``WANDB_MODE`` says otherwise (``wandb sync`` uploads later), MLflow into a SQLite
    store in the run root unless ``MLFLOW_TRACKING_URI`` is set. Nothing is written to ``os.environ``.
    """

    observes_only = True

    def on_train_begin(self, trainer: Trainer, state: TrainerState) -> None:
        from w2slab import tracking

        cfg, info = trainer.cfg, trainer.tracking
        run_root = info.get("run_root") or (trainer.tracking_dir or Path(".")).parent
        if "mlflow" in trainer.trackers:
            import mlflow

            mlflow.set_tracking_uri(tracking.mlflow_uri(run_root))
        config = {**tracking.flatten(info.get("config") or {}), "lr": trainer.lr, "precision": trainer.policy.name,
                  **{f"train.{k}": v for k, v in tracking.flatten(cfg.to_dict()).items()}}
        trainer.accelerator.init_trackers(tracking.PROJECT, config={tracking.safe_key(k): v for k, v in config.items()},
                                          init_kwargs=tracking.stage_init_kwargs(
                                              run_root, name=info.get("name", trainer.name),
                                              group=info.get("group", "ungrouped"), kind=info.get("kind", "train")))

    def on_step_end(self, trainer: Trainer, state: TrainerState, row: dict) -> None:
        applied = not row["skipped"] and not row.get("scaler_backoff", False)
        values = {"loss": row["loss"], "lr": row["lr"], **({"grad_norm": row["grad_norm"]} if applied else {})}
        trainer.accelerator.log(values, step=row["step"])

    def on_train_end(self, trainer: Trainer, state: TrainerState) -> None:
        trainer.accelerator.end_training()


CHECKPOINT_POINTER = "checkpoint-latest.json"
#: a checkpoint's folder name, the only thing the pointer may name: a folder beside it, never a path elsewhere
CHECKPOINT_DIR = re.compile(r"checkpoint-\d+")
#: a loss's memory (ELR's per-example targets, RAVEN's teacher weights) in a checkpoint: its tensors, and its other
#: values as JSON. Kept apart from accelerate's ``register_for_checkpointing``, which pickles it and loads it back
#: with ``torch.load(weights_only=False)``: a crafted checkpoint could then run code on resume.
LOSS_TENSORS, LOSS_VALUES = "loss_state.safetensors", "loss_state.json"


def checkpoint_target(folder: Path, pointer: Path) -> Path:
    """The checkpoint folder the pointer names, refused unless it is a ``checkpoint-N`` folder directly inside
    ``folder`` (an absolute path or ``..`` in a pointer would load a checkpoint from anywhere)."""
    name = json.loads(pointer.read_text())["dir"]
    if not isinstance(name, str) or not CHECKPOINT_DIR.fullmatch(name):
        raise TrainingError(f"{pointer}: names {name!r}, not a checkpoint-N folder beside it; delete {pointer} "
                            "to train from the start")
    return folder / name


def save_loss_state(loss_fn: Any, target: Path) -> None:
    """A loss's ``state_dict`` into ``target``: tensors as safetensors, anything else as JSON (no pickle)."""
    from safetensors.torch import save_file

    state = loss_fn.state_dict()
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items() if isinstance(v, torch.Tensor)}
    values = {k: v for k, v in state.items() if not isinstance(v, torch.Tensor)}
    save_file(tensors, str(target / LOSS_TENSORS))
    (target / LOSS_VALUES).write_text(json.dumps(values))


def load_loss_state(loss_fn: Any, target: Path) -> None:
    """What :func:`save_loss_state` wrote, back into the loss (read without running any code)."""
    from safetensors.torch import load_file

    state: dict[str, Any] = dict(load_file(str(target / LOSS_TENSORS)))
    state.update(json.loads((target / LOSS_VALUES).read_text()))
    loss_fn.load_state_dict(state)


def has_loss_state(loss_fn: Any) -> bool:
    return hasattr(loss_fn, "state_dict") and hasattr(loss_fn, "load_state_dict")


class CheckpointCallback(TrainerCallback):
    """Save the full training state every ``every`` steps into ``folder``; resume from it at the start.

    With ``min_seconds``, a checkpoint is written at those steps only once that long has passed since the
    training began or was last saved: a crash then costs at most about ``min_seconds`` of work, and a training
    shorter than that writes none (on mpnet-base each checkpoint is ~1.3 GB of weights and optimiser state).

    ``checkpoint-<step>`` is written completely in a staging folder and renamed, then the pointer file
    is atomically replaced, then older checkpoints are removed. A resumed run ends exactly where an
    uninterrupted one would (same batches, same RNG streams, same scaler).
    """

    def __init__(self, folder: Path, every: int, min_seconds: float = 0.0):
        self.folder, self.every, self.min_seconds = Path(folder), every, min_seconds
        self._last_save = time.monotonic()

    def on_train_begin(self, trainer: Trainer, state: TrainerState) -> None:
        self._last_save = time.monotonic()
        pointer = self.folder / CHECKPOINT_POINTER
        if not pointer.exists():
            return
        pristine = None
        try:
            target = checkpoint_target(self.folder, pointer)
        except (OSError, ValueError, KeyError, TypeError):
            target = None  # a pointer cut short by a kill: handled below as any unreadable checkpoint
        try:
            if target is None:
                raise ValueError(f"{pointer.name} is unreadable")
            saved = json.loads((target / "trainer_state.json").read_text())
            # load_state can fail half-way (a file cut short by a kill): keep what a fresh start needs
            pristine = (copy.deepcopy(trainer.model.state_dict()), copy.deepcopy(trainer.optimizer.state_dict()),
                        copy.deepcopy(trainer.scheduler.state_dict()), torch.get_rng_state())
            trainer.accelerator.load_state(str(target))
            if has_loss_state(trainer.loss_fn):
                load_loss_state(trainer.loss_fn, target)
        except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint means: start this training afresh
            if pristine is not None:
                trainer.model.load_state_dict(pristine[0])
                trainer.optimizer.load_state_dict(pristine[1])
                trainer.scheduler.load_state_dict(pristine[2])
                torch.set_rng_state(pristine[3])
            logger.warning(f"note: {trainer.name}: checkpoint in {self.folder} is incomplete "
                           f"({type(exc).__name__}: {exc}); training from the start")
            pointer.unlink(missing_ok=True)
            return
        scaler_state = saved.pop("scaler", None)
        if trainer.scaler is not None and scaler_state:
            trainer.scaler.load_state_dict(scaler_state)
        restored = TrainerState.from_dict(saved)
        restored.total_steps, restored.steps_per_epoch = state.total_steps, state.steps_per_epoch
        trainer.state = restored

    def on_step_end(self, trainer: Trainer, state: TrainerState, row: dict) -> None:
        if (self.every and state.step % self.every == 0 and state.step < state.total_steps
                and time.monotonic() - self._last_save >= self.min_seconds):
            self.save(trainer, state)
            self._last_save = time.monotonic()

    def save(self, trainer: Trainer, state: TrainerState) -> None:
        target = self.folder / f"checkpoint-{state.step}"
        staging = self.folder / f"checkpoint-{state.step}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        trainer.accelerator.save_state(str(staging), safe_serialization=True)
        if has_loss_state(trainer.loss_fn):
            save_loss_state(trainer.loss_fn, staging)
        payload = dict(state.to_dict(), scaler=trainer.scaler.state_dict() if trainer.scaler else None)
        (staging / "trainer_state.json").write_text(json.dumps(payload))
        atomic.publish_dir(staging, target)
        atomic.write_json(self.folder / CHECKPOINT_POINTER, {"dir": target.name}, indent=None)
        for old in self.folder.glob("checkpoint-*"):
            if old.is_dir() and old != target:
                shutil.rmtree(old, ignore_errors=True)


class PeriodicEvaluation(TrainerCallback):
    """Every ``every`` steps (and at the end), cross-entropy and accuracy on a named split's soft targets.

    Rows go to ``state.evaluations`` (and so into checkpoints); early stopping reads them and sets
    ``state.should_stop``. Prediction runs in eval mode and draws no random numbers, so adding this
    callback does not change the trained model.
    """

    def __init__(self, split: str, examples: Sequence[dict], every: int, batch_size: int = 64):
        self.split, self.examples, self.every, self.batch_size = split, list(examples), every, batch_size
        self.targets = np.stack([e["target"] for e in self.examples]).astype(np.float32)

    def on_step_end(self, trainer: Trainer, state: TrainerState, row: dict) -> None:
        if evaluation_due(state, self.every):
            state.evaluations.append({"step": state.step, "split": self.split, **self.evaluate(trainer)})

    def evaluate(self, trainer: Trainer) -> dict[str, float]:
        logits = predict_while_training(trainer, self.examples, batch_size=self.batch_size, desc=f"eval {self.split}")
        log_probs = torch.log_softmax(torch.from_numpy(logits), dim=-1).numpy()
        return {"loss": float(-(self.targets * log_probs).sum(-1).mean()),
                "accuracy": float((logits.argmax(-1) == self.targets.argmax(-1)).mean())}


def evaluation_due(state: TrainerState, every: int) -> bool:
    """Whether a watching callback acts after this step: every ``every`` steps, and after the last one."""
    return state.step % every == 0 or state.step >= state.total_steps


def predict_while_training(trainer: Trainer, examples: Sequence[dict], *, batch_size: int, desc: str) -> np.ndarray:
    """Logits of the model being trained (eval mode, no random numbers drawn), then back to its training mode."""
    logits = predict_logits(trainer.model, examples, trainer.collate, batch_size=batch_size,
                            precision=trainer.cfg.precision, desc=desc)
    trainer.set_training_mode()
    return logits


def _model_inputs(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if k not in ("target", "index", "weight")}


def _epoch_order(n: int, seed: int, epoch: int, lengths: Sequence[int] | None = None,
                 batch_size: int = 1) -> list[int]:
    """The order of one epoch, a pure function of (seed, epoch): a resumed run sees the same batches.

    With ``lengths``, batches are grouped by length as ``transformers``' ``LengthGroupedSampler`` does:
    a random permutation cut into mega-batches of ~50 batches, each sorted by length, so a batch holds
    texts of similar length (little padding) while which texts meet in a batch, and the order of the
    mega-batches, stay random from epoch to epoch.
    """
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    if lengths is None:
        return torch.randperm(n, generator=generator).tolist()
    from transformers.trainer_pt_utils import get_length_grouped_indices

    return [int(i) for i in get_length_grouped_indices(list(lengths), batch_size, generator=generator)]


def param_groups(model: nn.Module, params: list[nn.Parameter], lr: float, head_lr: float | None) -> list[dict]:
    """AdamW parameter groups: the model's ``head`` at ``head_lr`` and the rest at ``lr`` (one group when no
    ``head_lr`` is given, or when the head is all that trains). The schedule scales both groups alike."""
    head = getattr(model, "head", None)
    head_ids = {id(p) for p in head.parameters()} if isinstance(head, nn.Module) and head_lr else set()
    body = [p for p in params if id(p) not in head_ids]
    top = [p for p in params if id(p) in head_ids]
    if not top or not body:
        return [{"params": params, "lr": lr}]
    return [{"params": body, "lr": lr}, {"params": top, "lr": head_lr}]


class Trainer:
    """Train ``model`` on ``examples`` (each with a soft ``target``); only ``requires_grad`` parameters move.

    ``checkpoint_dir``/``checkpoint_every`` add a :class:`CheckpointCallback`; ``trackers``
    (``tensorboard``, ``wandb``) a :class:`TrackerCallback` writing under ``tracking_dir``. Extra
    ``callbacks`` run after the built-in ones, in order.
    """

    def __init__(self, model: nn.Module, examples: Sequence[dict], collate: Callable[[list[dict]], dict],
                 loss_fn: LossFn, cfg: TrainConfig, lr: float, *, seed: int, name: str = "train",
                 callbacks: Sequence[TrainerCallback] = (), checkpoint_dir: Path | None = None,
                 checkpoint_every: int = 0, checkpoint_seconds: float = 0.0, trackers: Sequence[str] = (),
                 tracking_dir: Path | None = None, head_lr: float | None = None, tracking: dict | None = None):
        from accelerate import Accelerator, DistributedDataParallelKwargs
        from transformers import get_scheduler

        from w2slab.distributed import device

        self.cfg, self.lr, self.seed, self.name, self.loss_fn, self.collate = cfg, lr, seed, name, loss_fn, collate
        self.needs = needs_of(loss_fn)  # what the loss is given beyond logits, targets, progress and weights
        self.tracking_dir = tracking_dir
        # the tracker run of this training: run_root, name, group (its experiment's config id), kind, config
        self.tracking = tracking or {}
        self.policy = PrecisionPolicy.resolve(cfg.precision, device())
        # precision is the policy's job, not accelerate's (see w2slab.train.precision)
        self.trackers = tuple(trackers)
        # DDP (accelerate launch): a backbone's parameters that no loss reaches (BERT's pooler under mean pooling)
        # must be marked ready, or the gradient bucket they share is never all-reduced: the ranks then step their own
        # local gradients apart, and the second step fails ("Expected to have finished reduction in the prior
        # iteration"). One process ignores this.
        self.accelerator = Accelerator(cpu=self.policy.device_type == "cpu", log_with=list(trackers) or None,
                                       project_dir=str(tracking_dir) if tracking_dir else None,
                                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
        self.callbacks: list[TrainerCallback] = [StabilityGuard(), ProgressCallback()]
        if trackers:
            self.callbacks.append(TrackerCallback())
        if checkpoint_dir is not None:
            self.callbacks.append(CheckpointCallback(checkpoint_dir, checkpoint_every, checkpoint_seconds))
        self.callbacks += list(callbacks)
        self.scaler = self.policy.make_scaler()
        torch.manual_seed(seed)
        self.examples = list(examples)
        self.params = [p for p in model.parameters() if p.requires_grad]
        # the fused kernel updates all parameters in one pass (CPU and GPU): on a 110M-parameter model the
        # unfused update is a memory-bound pass per tensor that costs a sizeable share of a CPU step
        self.optimizer = torch.optim.AdamW(param_groups(model, self.params, lr, head_lr), lr=lr,
                                           weight_decay=cfg.weight_decay,
                                           fused=all(p.is_floating_point() for p in self.params) or None)
        self.lengths = ([len(e["input_ids"]) for e in self.examples]
                        if cfg.group_by_length and self.examples and "input_ids" in self.examples[0] else None)
        # what one rank's prepared loader yields per epoch: under `accelerate launch` on N processes the batches are
        # shared out (padded to equal counts), so counting the whole epoch's batches would send a rank round its
        # loop on an exhausted or empty loader
        steps_per_epoch = max(1, math.ceil(math.ceil(len(self.examples) / cfg.batch_size)
                                           / self.accelerator.num_processes))
        total_steps = max(1, math.ceil(steps_per_epoch * cfg.epochs))
        self.scheduler = get_scheduler(cfg.scheduler, self.optimizer,
                                       num_warmup_steps=int(cfg.warmup_frac * total_steps),
                                       num_training_steps=total_steps)
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(model, self.optimizer, self.scheduler)
        self.world_size = self.accelerator.num_processes  # > 1: every rank must agree to skip a step
        self.state = TrainerState(total_steps=total_steps, steps_per_epoch=steps_per_epoch)

    def set_training_mode(self) -> None:
        """``train()``, or ``eval()`` when dropout is off: as in the original recipe, fine-tuning then runs without
        dropout (deterministic, and no random masks to draw: ~7% of a CPU step on mpnet-base)."""
        self.model.train(self.cfg.dropout)

    def train(self) -> TrainResult:
        self.set_training_mode()
        begun: list[TrainerCallback] = []
        try:
            for callback in self.callbacks:
                callback.on_train_begin(self, self.state)
                begun.append(callback)
            self._loop()
        finally:
            for callback in begun:
                callback.on_train_end(self, self.state)
        model = self.accelerator.unwrap_model(self.model)
        stability = StabilityReport.of(self.state, self.policy.name, settled_of(self.loss_fn))
        if not all(bool(torch.isfinite(p).all()) for p in model.parameters() if p.requires_grad):
            raise TrainingError(f"{self.name}: training left non-finite weights; not saved ({stability.line()}); "
                                "lower the learning rate or use --precision fp32")
        return TrainResult(self.state, stability)

    def _loop(self) -> None:
        cfg, state = self.cfg, self.state
        while state.step < state.total_steps and not state.should_stop:
            epoch, skip = divmod(state.step, state.steps_per_epoch)
            order = _epoch_order(len(self.examples), self.seed, epoch, self.lengths, cfg.batch_size)
            # its own generator: a DataLoader iterator otherwise draws its base seed from the global RNG,
            # which would shift dropout's random stream whenever a resumed run starts a new iterator
            loader = self.accelerator.prepare(DataLoader(
                [self.examples[i] for i in order], batch_size=cfg.batch_size, collate_fn=self.collate,
                generator=torch.Generator().manual_seed(self.seed + epoch)))
            stepped = state.step
            for batch in self.accelerator.skip_first_batches(loader, skip) if skip else loader:
                if state.step >= state.total_steps or state.should_stop:
                    break
                row = self._step(batch)
                state.log.append(row)
                state.step += 1
                for callback in self.callbacks:
                    callback.on_step_end(self, state, row)
            if state.step == stepped and not state.should_stop:  # an empty pass would loop forever
                raise TrainingError(f"{self.name}: an epoch yielded no batch on this process (step {state.step} of "
                                    f"{state.total_steps}, {len(self.examples)} examples); use fewer processes or "
                                    "more training examples")

    def _step(self, batch: dict) -> dict:
        state, step = self.state, self.state.step
        started = time.perf_counter()
        with self.policy.autocast():
            logits = self.model(**_model_inputs(batch))
        options = {"weights": batch["weight"]} if "weight" in batch else {}  # per-example weights, when given
        if "indices" in self.needs:  # a loss with a per-example memory (ELR)
            options["indices"] = batch["index"]
        loss = self.loss_fn(logits.float(), batch["target"], step / state.total_steps, **options)
        grad_norm, bad, backoff = self._optimizer_step(loss)
        current_lr = self.scheduler.get_last_lr()[0]
        with warnings.catch_warnings():  # a skipped step still advances the schedule, on purpose
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            self.scheduler.step()
        if bad:
            state.skipped += 1
            state.consecutive_bad += 1
        elif backoff:
            # the scaler's normal search for its scale (it starts high on purpose): neither bad nor applied,
            # so it leaves the run of bad steps as it is and adds no gradient norm
            state.scaler_backoffs += 1
        else:
            state.consecutive_bad = 0
            state.grad_norms.append(grad_norm)
        row = {"step": step, "loss": float(loss.detach()), "grad_norm": grad_norm, "lr": current_lr, "skipped": bad,
               "seconds": round(time.perf_counter() - started, 4), "examples": len(batch["target"])}
        if "attention_mask" in batch:  # real (unpadded) and padded tokens: what throughput and padding reports read
            mask = batch["attention_mask"]
            row["tokens"], row["padded_tokens"] = int(mask.sum()), int(mask.numel())
        if self.scaler is not None:
            row["scaler_backoff"] = backoff
        return row

    def _any_rank(self, flag: bool) -> bool:
        """Whether ``flag`` holds on any process. Under DDP every rank must take the same branch: a rank that
        skips backward while the others run it leaves them waiting in the gradient all-reduce (and a rank that
        skips the update while others apply it drifts apart). A single process runs no collective."""
        if self.world_size <= 1:
            return flag
        return bool(self.accelerator.reduce(torch.tensor(float(flag), device=self.accelerator.device), "max") > 0)

    def _optimizer_step(self, loss: torch.Tensor) -> tuple[float, bool, bool]:
        """Backward, clip, step; returns (grad norm, bad, scaler back-off).

        A non-finite loss (on any rank) or a non-finite gradient norm skips the update: a *bad* step. Under
        fp16 the scaler skips the update (and lowers its scale) when it finds inf/NaN gradients: a *back-off*,
        the scaler's routine search for a scale that fits, which is counted but is not a bad step.
        """
        optimizer, scaler = self.optimizer, self.scaler
        if self._any_rank(not torch.isfinite(loss)):
            optimizer.zero_grad(set_to_none=True)
            return float("nan"), True, False
        self.accelerator.backward(scaler.scale(loss) if scaler else loss)
        if scaler:
            scaler.unscale_(optimizer)
        grad_norm = float(self.accelerator.clip_grad_norm_(self.params, self.cfg.max_grad_norm))
        nonfinite = self._any_rank(not math.isfinite(grad_norm))
        backoff = False
        if scaler:
            scale_before = scaler.get_scale()
            if nonfinite and math.isfinite(grad_norm):
                # only another rank's scaler found inf/NaN gradients: skip and back off with it (one process
                # never gets here: its own norm decides)
                scaler.update(scale_before * scaler.get_backoff_factor())
            else:
                scaler.step(optimizer)  # a no-op when unscale_ found inf/NaN gradients
                scaler.update()
            backoff = scaler.get_scale() < scale_before
        elif not nonfinite:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return grad_norm, nonfinite and not backoff, backoff


def train_model(model: nn.Module, examples: Sequence[dict], collate: Callable[[list[dict]], dict], loss_fn: LossFn,
                cfg: TrainConfig, lr: float, *, seed: int, desc: str = "train", **options: Any) -> TrainResult:
    """``Trainer(...).train()`` in one call (options: callbacks, checkpoint_dir/every, trackers, tracking_dir)."""
    return Trainer(model, examples, collate, loss_fn, cfg, lr, seed=seed, name=desc, **options).train()


@torch.no_grad()
def predict_logits(model: nn.Module, examples: Sequence[dict], collate: Callable[[list[dict]], dict], *,
                   batch_size: int, precision: str = "auto", desc: str = "predict",
                   output: str = "logits") -> np.ndarray:
    """Run the model over ``examples`` in their order; ``output`` is ``logits`` or ``features``.

    Same device as training (accelerate's, :func:`w2slab.distributed.device`). Examples are batched
    by length (less padding), and results are put back in input order.
    """
    from w2slab.distributed import device as current_device

    device = current_device()
    policy = PrecisionPolicy.resolve(precision, device)
    model.eval().to(device)
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].get("input_ids", ())))
    chunks: list[tuple[list[int], np.ndarray]] = []
    with progress_bar(desc, math.ceil(len(order) / batch_size)) as advance:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = {k: v.to(device) for k, v in _model_inputs(collate([examples[i] for i in idx])).items()}
            with policy.autocast():
                out = model.features(**batch) if output == "features" else model(**batch)
            chunks.append((idx, out.float().cpu().numpy()))
            advance()
    result = np.zeros((len(examples), chunks[0][1].shape[1]), dtype=np.float32) if chunks else np.zeros((0, 0))
    for idx, values in chunks:
        result[idx] = values
    return result
