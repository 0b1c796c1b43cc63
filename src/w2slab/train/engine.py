"""Training and prediction on top of ``accelerate``: one loop for every model, mode and loss.

``accelerate`` owns devices and distribution; ``torch.amp`` (through :mod:`w2slab.train.precision`)
autocast and the fp16 gradient scaler; ``transformers`` the learning-rate schedule;
``torch.optim.AdamW`` the optimiser. What this module adds is the W2S
specifics (soft-label losses that see training progress) and the stability guards: a step whose
loss or gradient norm is not finite is skipped and counted, repeated bad steps cut the learning
rate, and a run that ends with non-finite weights fails loudly instead of being saved.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from w2slab.config import TrainConfig
from w2slab.errors import TrainingError
from w2slab.progress import progress_bar
from w2slab.train.losses import LossFn
from w2slab.train.precision import PrecisionPolicy, default_device

# After this many consecutive non-finite steps the learning rate is halved.
BAD_STEPS_BEFORE_LR_CUT = 3


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

    def line(self) -> str:
        return (f"steps={self.steps} skipped={self.skipped_steps} lr_cuts={self.lr_cuts} "
                f"grad_norm(max={self.max_grad_norm:.3g}, median={self.median_grad_norm:.3g}) "
                f"final_loss={self.final_loss:.4f} precision={self.precision}")


@dataclass
class TrainResult:
    log: list[dict] = field(default_factory=list)  # one row per optimiser step
    stability: StabilityReport = field(default_factory=StabilityReport)


def _model_inputs(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if k not in ("target", "index")}


def _all_finite(params: Sequence[torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in params)


def _epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The shuffle of one epoch, a pure function of (seed, epoch): a resumed run sees the same batches."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()


def train_model(model: nn.Module, examples: Sequence[dict], collate: Callable[[list[dict]], dict],
                loss_fn: LossFn, cfg: TrainConfig, lr: float, *, seed: int, desc: str = "train",
                checkpoint_dir: Path | None = None, checkpoint_every: int = 0, trackers: Sequence[str] = (),
                tracking_dir: Path | None = None) -> TrainResult:
    """Train ``model`` on ``examples`` (each with a soft ``target``) and return its step log.

    Only parameters with ``requires_grad`` are optimised (the training mode decided which). With a
    ``checkpoint_dir``, the full training state (model, optimiser, scheduler, RNG, scaler, step log)
    is saved every ``checkpoint_every`` steps through ``accelerate.save_state``, and a run that finds
    a checkpoint there resumes from it and ends exactly where an uninterrupted run would.
    ``trackers`` (``tensorboard``, ``wandb``) receive loss, gradient norm and learning rate per step
    through accelerate's trackers, under ``tracking_dir``; W&B runs offline unless WANDB_MODE says otherwise.
    """
    from accelerate import Accelerator
    from transformers import get_scheduler

    policy = PrecisionPolicy.resolve(cfg.precision)
    if "wandb" in trackers:
        os.environ.setdefault("WANDB_MODE", "offline")  # works without network; `wandb sync` uploads later
        if tracking_dir is not None:
            os.environ.setdefault("WANDB_DIR", str(tracking_dir))
    # precision is the policy's job, not accelerate's (see w2slab.train.precision)
    accelerator = Accelerator(cpu=policy.device_type == "cpu", log_with=list(trackers) or None,
                              project_dir=str(tracking_dir) if tracking_dir else None)
    if trackers:
        accelerator.init_trackers(desc.replace(" ", "_"), config={
            "lr": lr, "mode": cfg.mode, "precision": policy.name, "batch_size": cfg.batch_size, "epochs": cfg.epochs,
            "warmup_frac": cfg.warmup_frac, "max_grad_norm": cfg.max_grad_norm})
    scaler = policy.make_scaler()
    torch.manual_seed(seed)
    examples = list(examples)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(examples) / cfg.batch_size)
    total_steps = max(1, math.ceil(steps_per_epoch * cfg.epochs))
    scheduler = get_scheduler(cfg.scheduler, optimizer, num_warmup_steps=int(cfg.warmup_frac * total_steps),
                              num_training_steps=total_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    model.train()

    state = {"step": 0, "log": [], "grad_norms": [], "consecutive_bad": 0, "skipped": 0, "lr_cuts": 0}
    if checkpoint_dir is not None:
        state = _load_checkpoint(accelerator, scaler, checkpoint_dir) or state
    with progress_bar(desc, total_steps) as advance:
        while state["step"] < total_steps:
            epoch, skip = divmod(state["step"], steps_per_epoch)
            order = _epoch_order(len(examples), seed, epoch)
            # its own generator: a DataLoader iterator otherwise draws its base seed from the global RNG,
            # which would shift dropout's random stream whenever a resumed run starts a new iterator
            loader = accelerator.prepare(DataLoader([examples[i] for i in order], batch_size=cfg.batch_size,
                                                    collate_fn=collate,
                                                    generator=torch.Generator().manual_seed(seed + epoch)))
            for batch in accelerator.skip_first_batches(loader, skip) if skip else loader:
                if state["step"] >= total_steps:
                    break
                step = state["step"]
                with policy.autocast():
                    logits = model(**_model_inputs(batch))
                loss = loss_fn(logits.float(), batch["target"], step / total_steps)
                grad_norm, bad = _optimizer_step(accelerator, optimizer, scaler, params, loss, cfg.max_grad_norm)
                current_lr = scheduler.get_last_lr()[0]
                with warnings.catch_warnings():  # a skipped step still advances the schedule, on purpose
                    warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
                    scheduler.step()
                if bad:
                    state["skipped"] += 1
                    state["consecutive_bad"] += 1
                    if state["consecutive_bad"] >= BAD_STEPS_BEFORE_LR_CUT:
                        _cut_lr(scheduler)
                        state["lr_cuts"] += 1
                        state["log"].append({"step": step, "event": "lr_cut", "factor": 0.5})
                        state["consecutive_bad"] = 0
                else:
                    state["consecutive_bad"] = 0
                    state["grad_norms"].append(grad_norm)
                state["log"].append({"step": step, "loss": float(loss.detach()), "grad_norm": grad_norm,
                                     "lr": current_lr, "skipped": bad})
                if trackers:
                    accelerator.log({"loss": float(loss.detach()), "lr": current_lr,
                                     **({} if bad else {"grad_norm": grad_norm})}, step=step)
                state["step"] += 1
                advance(f"loss {float(loss.detach()):.3f}")
                if checkpoint_dir is not None and checkpoint_every and state["step"] % checkpoint_every == 0 \
                        and state["step"] < total_steps:
                    _save_checkpoint(accelerator, scaler, checkpoint_dir, state)

    if trackers:
        accelerator.end_training()
    result = TrainResult(log=state["log"], stability=StabilityReport(
        steps=state["step"], skipped_steps=state["skipped"], lr_cuts=state["lr_cuts"], precision=policy.name))
    stability = result.stability
    if state["grad_norms"]:
        stability.max_grad_norm = max(state["grad_norms"])
        stability.median_grad_norm = statistics.median(state["grad_norms"])
    finite_losses = [row["loss"] for row in result.log if "loss" in row and math.isfinite(row["loss"])]
    stability.final_loss = float(np.mean(finite_losses[-10:])) if finite_losses else float("nan")
    model = accelerator.unwrap_model(model)
    if not _all_finite([p for p in model.parameters() if p.requires_grad]):
        raise TrainingError(f"{desc}: training left non-finite weights; not saved ({stability.line()}); "
                            "lower the learning rate or use --precision fp32")
    return result


CHECKPOINT_POINTER = "checkpoint-latest.json"


def _save_checkpoint(accelerator, scaler, folder: Path, state: dict) -> None:
    """Write ``checkpoint-<step>`` completely, then atomically point ``checkpoint-latest.json`` at it."""
    folder = Path(folder)
    target = folder / f"checkpoint-{state['step']}"
    staging = folder / f"checkpoint-{state['step']}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    accelerator.save_state(str(staging), safe_serialization=True)
    payload = dict(state, scaler=scaler.state_dict() if scaler else None)
    (staging / "trainer_state.json").write_text(json.dumps(payload))
    shutil.rmtree(target, ignore_errors=True)
    os.rename(staging, target)
    pointer = folder / (CHECKPOINT_POINTER + ".tmp")
    pointer.write_text(json.dumps({"dir": target.name}))
    os.replace(pointer, folder / CHECKPOINT_POINTER)
    for old in folder.glob("checkpoint-*"):
        if old.is_dir() and old != target:
            shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(accelerator, scaler, folder: Path) -> dict | None:
    pointer = Path(folder) / CHECKPOINT_POINTER
    if not pointer.exists():
        return None
    target = Path(folder) / json.loads(pointer.read_text())["dir"]
    accelerator.load_state(str(target))
    state = json.loads((target / "trainer_state.json").read_text())
    scaler_state = state.pop("scaler", None)
    if scaler is not None and scaler_state:
        scaler.load_state_dict(scaler_state)
    return state


def _optimizer_step(accelerator, optimizer, scaler, params, loss: torch.Tensor, max_norm: float
                    ) -> tuple[float, bool]:
    """Backward, clip, step; returns (grad norm, skipped). A non-finite loss or norm skips the update;
    under fp16 the scaler also skips (and lowers its scale) when it finds inf/NaN gradients."""
    if not torch.isfinite(loss):
        optimizer.zero_grad(set_to_none=True)
        return float("nan"), True
    accelerator.backward(scaler.scale(loss) if scaler else loss)
    if scaler:
        scaler.unscale_(optimizer)
    grad_norm = float(accelerator.clip_grad_norm_(params, max_norm))
    bad = not math.isfinite(grad_norm)
    if scaler:
        scale_before = scaler.get_scale()
        scaler.step(optimizer)  # a no-op when unscale_ found inf/NaN gradients
        scaler.update()
        bad = bad or scaler.get_scale() < scale_before
    elif not bad:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm, bad


def _cut_lr(scheduler) -> None:
    """Halve the learning rate for the rest of the run (the schedule's shape is kept)."""
    inner = getattr(scheduler, "scheduler", scheduler)  # accelerate wraps the scheduler
    inner.base_lrs = [lr * 0.5 for lr in inner.base_lrs]


@torch.no_grad()
def predict_logits(model: nn.Module, examples: Sequence[dict], collate: Callable[[list[dict]], dict], *,
                   batch_size: int, precision: str = "auto", desc: str = "predict",
                   output: str = "logits") -> np.ndarray:
    """Run the model over ``examples`` in their order; ``output`` is ``logits`` or ``features``.

    Examples are batched by length (less padding), and results are put back in input order.
    """
    device = default_device()
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
