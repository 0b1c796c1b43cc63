"""The image experiment of the README ("Images"): fashion_mnist, weak cnn-small -> strong EfficientNet-Lite0 and
Lite2 (frozen backbone + linear probe, the reference's vision setting), three seeds, on this machine.

Prints the matmul rates of this machine (measured in this run), then per (strong model, seed) the accuracies,
PGR with its 95% interval, the gap and the wall time of ``w2s run`` with the defaults; the first run of each
strong model starts from a cold run root (its frozen features are extracted), later seeds reuse the features of
the shared pool. Ends with the mean and standard deviation over seeds.

    python benchmarks/images.py                      # Lite0 and Lite2, seeds 0-2 (about 10 minutes on 2 cores)
    python benchmarks/images.py --strong efficientnet-lite0 --seeds 0 --out-dir /tmp/images
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from speed import matmul_rate  # noqa: E402 - the speed benchmark's GEMM rate, beside this file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strong", default="efficientnet-lite0,efficientnet-lite2")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out-dir", default="runs/bench_images")
    args = parser.parse_args()

    import w2slab

    rates = {name: matmul_rate(dtype) for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    print(f"matmul 2048^2 on this machine: fp32 {rates['fp32']:.0f} GFLOP/s, bf16 {rates['bf16']:.0f} GFLOP/s, "
          f"{torch.get_num_threads()} threads", flush=True)
    out = Path(args.out_dir)
    rows = []
    for strong in args.strong.split(","):
        root = out / strong
        shutil.rmtree(root, ignore_errors=True)  # cold: the first seed extracts the frozen features
        for seed in (int(s) for s in args.seeds.split(",")):
            cfg = w2slab.ExperimentConfig(dataset="fashion_mnist", weak="cnn-small", strong=strong, seed=seed)
            started = time.perf_counter()
            result = w2slab.run(cfg, w2slab.RuntimeConfig(run_root=str(root), echo=lambda *a: None))
            seconds = time.perf_counter() - started
            summary = result.summary
            row = {"strong": strong, "seed": seed, "seconds": seconds, "weak": summary.first.weak_accuracy,
                   "ceiling": summary.first.ceiling_accuracy}
            for loss, entry in summary.results.items():
                row[loss] = (entry.student_accuracy, entry.pgr, entry.pgr_ci95)
            rows.append(row)
            print(f"{strong} seed {seed}: weak {row['weak']:.3f} ceiling {row['ceiling']:.3f} "
                  + " ".join(f"{loss} {acc:.3f} (PGR {pgr:.2f} [{ci[0]:.2f}, {ci[1]:.2f}])"
                             for loss, (acc, pgr, ci) in ((k, row[k]) for k in summary.results))
                  + f"  {seconds:.0f} s", flush=True)
    print("\nmean (sd) over seeds")
    for strong in args.strong.split(","):
        mine = [r for r in rows if r["strong"] == strong]

        def stat(values: list[float]) -> str:
            return f"{statistics.mean(values):.3f} ({statistics.stdev(values) if len(values) > 1 else 0:.3f})"

        losses = [k for k in mine[0] if k not in ("strong", "seed", "seconds", "weak", "ceiling")]
        print(f"{strong}: weak {stat([r['weak'] for r in mine])}, ceiling {stat([r['ceiling'] for r in mine])}, "
              f"gap {stat([r['ceiling'] - r['weak'] for r in mine])}, "
              + ", ".join(f"{loss} {stat([r[loss][0] for r in mine])} PGR {stat([r[loss][1] for r in mine])}"
                          for loss in losses))


if __name__ == "__main__":
    main()
