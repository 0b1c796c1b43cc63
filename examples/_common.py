"""What every example shares: the models and data it runs on (packaged models by default; the tests pass tiny ones)."""

from __future__ import annotations

import argparse


def parse_args(description: str, dataset: str = "sst2_sentences", n_train: int = 400, n_test: int = 400):
    """``--weak --strong --dataset --run-root --n-train --n-test --max-ctx``: small enough for a laptop CPU."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--weak", default="minilm-l3")
    parser.add_argument("--strong", default="minilm-l6")
    parser.add_argument("--dataset", default=dataset)
    parser.add_argument("--run-root", default="runs/examples")
    parser.add_argument("--n-train", type=int, default=n_train)
    parser.add_argument("--n-test", type=int, default=n_test)
    parser.add_argument("--max-ctx", type=int, default=64)
    return parser.parse_args()


def common_config(args) -> dict:
    """The experiment fields the examples share; both models as linear probes on frozen features (fast)."""
    return {"dataset": args.dataset, "weak": args.weak, "strong": args.strong, "n_train": args.n_train,
            "n_test": args.n_test, "max_ctx": args.max_ctx,
            "weak_train": {"mode": "probe", "epochs": 3}, "strong_train": {"mode": "probe", "epochs": 3}}
