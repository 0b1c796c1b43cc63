"""Learning-rate sweep: ground-truth **validation** accuracy per (model, mode, lr, batch) on a real dataset slice.

How the per-model default learning rates in ``w2slab.models.registry`` are chosen: on the validation split
(``--n-val`` rows beside the training rows, never trained on), never on the test set, which this sweep does not
read. Prints a table and writes JSON lines to --out. Example (about 10 minutes on 2 CPU cores):

    python benchmarks/lr_sweep.py --dataset sst2 --models minilm-l3,minilm-l6 --modes full \
        --lrs 3e-5,1e-4,3e-4 --n-train 1000 --n-test 400
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np

from w2slab.config import TrainConfig
from w2slab.data import load_task, make_splits
from w2slab.losses import make_loss
from w2slab.metrics import accuracy, softmax
from w2slab.models.loading import resolve_model
from w2slab.pipeline.role_model import RoleModel
from w2slab.progress import quiet_libraries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="sst2")
    parser.add_argument("--models", default="minilm-l3,minilm-l6")
    parser.add_argument("--modes", default="full")
    parser.add_argument("--lrs", default="3e-5,1e-4,3e-4")
    parser.add_argument("--n-train", type=int, default=1000, help="training examples (all used for training)")
    parser.add_argument("--n-val", type=int, default=500, help="validation examples, what every choice is made on")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-sizes", default="16", help="comma-separated; each is swept with every lr")
    parser.add_argument("--max-ctx", type=int, default=128)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root")
    parser.add_argument("--out", default="lr_sweep.jsonl")
    args = parser.parse_args()

    quiet_libraries()
    task = load_task(args.dataset, data_root=args.data_root, seed=args.seed)
    # the smallest test set make_splits takes: it is never encoded, predicted or read here
    splits = make_splits(task, n_train=2 * args.n_train, n_test=2, seed=args.seed, n_val=args.n_val)
    train_rows = splits.weak_train
    labels = np.array([r["label"] for r in train_rows])
    val_labels = np.array([r["label"] for r in splits.validation])
    print(f"{'model':14s} {'mode':6s} {'lr':>8s} {'batch':>5s} {'val acc':>9s} {'final loss':>10s} {'seconds':>8s}")
    with open(args.out, "a") as sink:
        for model in args.models.split(","):
            for mode in args.modes.split(","):
                for lr, batch in itertools.product((float(x) for x in args.lrs.split(",")),
                                                   (int(b) for b in args.batch_sizes.split(","))):
                    cfg = TrainConfig(mode=mode, lr=lr, epochs=args.epochs, precision=args.precision, batch_size=batch)
                    runner = RoleModel("sweep", resolve_model(model), cfg, args.max_ctx, "left")
                    runner.encode("train", train_rows)
                    runner.encode("validation", splits.validation)
                    start = time.time()
                    logits, result = runner.fit_predict("train", np.eye(2, dtype=np.float32)[labels],
                                                        make_loss("xent"), ["validation"], seed=args.seed,
                                                        desc=model)
                    row = {"dataset": args.dataset, "model": model, "mode": mode, "lr": lr, "batch_size": batch,
                           "precision": result.stability.precision,
                           "n_train": args.n_train, "epochs": args.epochs,
                           "validation_accuracy": accuracy(softmax(logits["validation"]), val_labels),
                           "final_loss": result.stability.final_loss, "seconds": round(time.time() - start, 1)}
                    sink.write(json.dumps(row) + "\n")
                    print(f"{model:14s} {mode:6s} {lr:8.0e} {batch:5d} "
                          f"{row['validation_accuracy']:9.3f} {row['final_loss']:10.4f} "
                          f"{row['seconds']:8.1f}", flush=True)


if __name__ == "__main__":
    main()
