"""Stability benchmark: does training survive large learning rates and half precision?

Grid: lr x precision x model x mode, a short training run per cell on sciq, once with w2slab's recipe
(fp32 trainables, autocast, fp16 scaler, warm-up, clipping, guards) and once with the *reference
recipe* of the original weak-to-strong code (trainable weights in half precision, no scaler, no
clipping, no warm-up, full learning rate from step 0). Per cell: outcome, skipped steps, final loss,
test accuracy. A w2slab cell must never end with non-finite weights unless it *reported* the failure.

    python benchmarks/stability.py                       # the full grid (~20 min on 2 CPU cores)
    python benchmarks/stability.py --models minilm-l6 --lrs 1e-3,1e-2 --steps 4   # a quick look

Writes one JSON line per cell to --out and prints a table.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time

import numpy as np
import torch

from w2slab.config import TrainConfig
from w2slab.data import load_task, make_splits
from w2slab.errors import TrainingError
from w2slab.losses import make_loss
from w2slab.metrics import accuracy, softmax
from w2slab.models.loading import apply_training_mode, load_classifier, resolve_model
from w2slab.pipeline.role_model import RoleModel
from w2slab.progress import quiet_libraries
from w2slab.train.precision import PRECISION_DTYPES


def weights_finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def run_w2slab(runner: RoleModel, targets: np.ndarray, test_labels: np.ndarray) -> dict:
    """One cell with w2slab's own training path (exactly what `w2s run` does)."""
    try:
        logits, result = runner.fit_predict("train", targets, make_loss("xent"), ["test"], seed=0, desc="cell")
    except TrainingError as exc:
        return {"outcome": "failed (reported)", "detail": str(exc)[:200]}
    acc = accuracy(softmax(logits["test"]), test_labels)
    finite = bool(np.isfinite(logits["test"]).all())
    return {"outcome": "finished" if finite else "NON-FINITE (unreported)", "skipped": result.stability.skipped_steps,
            "lr_cuts": result.stability.lr_cuts, "final_loss": result.stability.final_loss, "accuracy": acc}


def run_reference(base: torch.nn.Module, runner: RoleModel, targets: np.ndarray, test_labels: np.ndarray,
                  lr: float, precision: str, mode: str, batch_size: int, steps: int) -> dict:
    """The reference recipe: half-precision trainable weights, Adam at full lr, no clipping/warm-up/scaler."""
    model = copy.deepcopy(base)
    model = apply_training_mode(model, mode, runner.resolved.defaults, lora_targets="all-linear")
    model.to(PRECISION_DTYPES[precision])  # trainables in half too (the reference trains pure half weights)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    examples = runner.splits["train"].examples
    losses = []
    model.train()
    for step in range(steps):
        chunk = examples[step * batch_size:(step + 1) * batch_size]
        batch = runner.collate(chunk)
        logits = model(batch["input_ids"], batch["attention_mask"])
        target = torch.tensor(targets[step * batch_size:(step + 1) * batch_size])
        loss = torch.nn.functional.cross_entropy(logits.float(), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    model.eval()
    with torch.no_grad():
        batch = runner.collate(runner.splits["test"].examples)
        logits = model(batch["input_ids"], batch["attention_mask"]).float().numpy()
    finite = weights_finite(model) and bool(np.isfinite(logits).all())
    return {"outcome": "finished" if finite else "diverged (NaN/inf)", "skipped": 0, "lr_cuts": 0,
            "final_loss": float(np.mean(losses[-3:])),
            "accuracy": accuracy(softmax(logits), test_labels) if finite else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="minilm-l6,gemma3-270m")
    parser.add_argument("--modes", default="lora,full")
    parser.add_argument("--lrs", default="1e-5,1e-4,1e-3,1e-2")
    parser.add_argument("--precisions", default="fp32,bf16,fp16")
    parser.add_argument("--recipes", default="w2slab,reference")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-ctx", type=int, default=32)
    parser.add_argument("--n-test", type=int, default=64)
    parser.add_argument("--data-root")
    parser.add_argument("--out", default="stability.jsonl")
    args = parser.parse_args()

    quiet_libraries()
    torch.manual_seed(0)
    n_train = args.steps * args.batch_size
    splits = make_splits(load_task("sciq", data_root=args.data_root, seed=0), n_train=2 * n_train,
                         n_test=args.n_test, seed=0)
    labels = np.array([r["label"] for r in splits.weak_train])
    targets = np.eye(2, dtype=np.float32)[labels]
    test_labels = np.array([r["label"] for r in splits.test])
    started = time.time()
    header = f"{'recipe':9s} {'model':12s} {'mode':5s} {'prec':5s} {'lr':>6s}  {'outcome':22s} {'skip':>4s} " \
             f"{'loss':>9s} {'acc':>5s} {'sec':>5s}"
    print(header)
    counts: dict[tuple[str, str], int] = {}
    with open(args.out, "w") as sink:
        for model_name in args.models.split(","):
            resolved = resolve_model(model_name)
            base = load_classifier(resolved)  # fp32 copy for the reference recipe
            for mode in args.modes.split(","):
                for precision in args.precisions.split(","):
                    for lr in (float(x) for x in args.lrs.split(",")):
                        for recipe in args.recipes.split(","):
                            cfg = TrainConfig(mode=mode, lr=lr, epochs=1, batch_size=args.batch_size,
                                              precision=precision, warmup_frac=0.25)
                            runner = RoleModel("bench", resolved, cfg, args.max_ctx, "left")
                            runner.encode("train", splits.weak_train)
                            runner.encode("test", splits.test)
                            t0 = time.time()
                            if recipe == "w2slab":
                                row = run_w2slab(runner, targets, test_labels)
                            else:
                                row = run_reference(base, runner, targets, test_labels, lr, precision, mode,
                                                    args.batch_size, args.steps)
                            row.update(recipe=recipe, model=model_name, mode=mode, precision=precision, lr=lr,
                                       seconds=round(time.time() - t0, 1))
                            sink.write(json.dumps(row) + "\n")
                            sink.flush()
                            key = (recipe, row["outcome"])
                            counts[key] = counts.get(key, 0) + 1
                            loss = row.get("final_loss", math.nan)
                            print(f"{recipe:9s} {model_name:12s} {mode:5s} {precision:5s} {lr:6.0e}  "
                                  f"{row['outcome']:22s} {row.get('skipped', 0):4d} {loss:9.4g} "
                                  f"{row.get('accuracy', math.nan):5.2f} {row['seconds']:5.1f}", flush=True)
            del base
    print(f"\noutcomes over {sum(counts.values())} cells, {time.time() - started:.0f} s:")
    for (recipe, outcome), n in sorted(counts.items()):
        print(f"  {recipe:9s} {outcome:24s} {n}")


if __name__ == "__main__":
    main()
