"""Recipe benchmark: how the strong model's head is trained decides whether the ceiling can express confidence.

    python benchmarks/recipe.py                                   # the variants below, seed 0 (~22 min)
    python benchmarks/recipe.py --variants probe_lr,backbone_lr --seeds 0,1 --out /tmp/recipe

Stages live under ``--run-root`` (default ``runs``, the one ``w2s run`` uses), so the default variant reuses a
default experiment already run there, and the variants share what they have in common.

Each variant is the default experiment (``w2s run``: sst2_sentences, minilm-l3 -> mpnet-base, both fine-tuned)
with one change to how the heads train:

- ``backbone_lr``: the head at the backbone's learning rate (w2slab before this benchmark): a zero head under AdamW
  moves by about its learning rate per step, so 64 steps at 5e-5 cap its logits near +-.3;
- ``probe_lr`` (the default): the head at the model family's probe learning rate (1e-3 for text encoders);
- ``probe_lr_x3``: three times that;
- ``lp_ft``: the default's head learning rate, the head first fitted as a logistic regression on the frozen
  backbone's features of the training rows (LP-FT, Kumar et al. 2022; ``head_init: probe``).

The choice is made on the **validation** split (500 ground-truth rows beside the pool, never trained on), by a
rule fixed before the run: the variant whose ceiling has the highest validation accuracy, unless one listed
earlier (the incumbent default first) is within one standard error of it; the test numbers are printed beside
it but choose nothing. The ceiling is tuned on ground truth because that is what a ceiling is; the students are
not tuned here.

It prints, per variant and seed, the validation accuracies of weak, ceiling and students and the ceiling's
validation ECE, then the test numbers (the ceiling's accuracy, ECE, 90th-percentile max probability and distinct
predictions, the gap with its CI, each student's PGR with its CI), and the experiment's wall time, with the CPU
and its matmul rates measured in the same run (bf16 kernels differ between CPUs: numbers reproduce on one
machine, not across machines). Intervals are over the examples of one seed (w2slab.stats).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

#: In order of preference on a tie: the incumbent default first.
VARIANTS = {
    "probe_lr": None,
    "backbone_lr": "backbone",
    "probe_lr_x3": 3.0,
    "lp_ft": "lp_ft",
}


def matmul_rates() -> dict[str, float]:
    """GFLOP/s of a 2048x2048 matmul in fp32 and bf16 on this machine (threads as torch sets them)."""
    import torch

    rates = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(2048, 2048, dtype=dtype)
        b = torch.randn(2048, 2048, dtype=dtype)
        a @ b
        started = time.perf_counter()
        for _ in range(5):
            a @ b
        rates[name] = round(5 * 2 * 2048**3 / (time.perf_counter() - started) / 1e9, 1)
    return rates


def cpu_name() -> str:
    from w2slab.bench.run import cpu_name as name

    return name()


def variant_config(name: str, seed: int):
    from w2slab.config import ExperimentConfig, role_default
    from w2slab.models.loading import resolve_model

    cfg = ExperimentConfig(seed=seed)
    setting = VARIANTS[name]
    if setting is None:
        return cfg
    trains = {}
    for role in ("weak", "strong"):
        base = role_default("text", role)
        resolved = resolve_model(cfg.model(role))
        lr = base.lr if base.lr is not None else resolved.defaults.lr_for(base.mode)
        if setting == "lp_ft":
            trains[f"{role}_train"] = {**base.to_dict(), "head_init": "probe"}
            continue
        head = lr if setting == "backbone" else setting * resolved.defaults.lr_for("probe")
        trains[f"{role}_train"] = {**base.to_dict(), "head_lr": head}
    return ExperimentConfig.from_dict({**cfg.to_dict(), **trains, "seed": seed})


RULE = ("the variant whose ceiling has the highest mean validation accuracy over the seeds, unless a variant "
        "listed earlier is within one standard error (sqrt(p(1-p)/n) on the validation rows) of it")


def choose(rows: list[dict]) -> str:
    """The variant :data:`RULE` picks from the rows' validation accuracies (never their test numbers)."""
    import math

    names = list(dict.fromkeys(r["variant"] for r in rows))
    mean = {n: sum(r["val_ceiling"] for r in rows if r["variant"] == n) / sum(r["variant"] == n for r in rows)
            for n in names}
    best = max(names, key=lambda n: mean[n])
    size = sum(r["val_size"] for r in rows if r["variant"] == best)
    se = math.sqrt(mean[best] * (1 - mean[best]) / max(size, 1))
    return next(n for n in names if mean[n] >= mean[best] - se)


def row_of(name: str, seed: int, summary) -> dict:
    first = summary.first
    cal = first.diagnostics["calibration"]
    row = {"variant": name, "seed": seed, "weak": first.weak_accuracy, "ceiling": first.ceiling_accuracy,
           "ceiling_auroc": first.ceiling_auroc, "ceiling_ece": cal["ceiling"]["ece"],
           "ceiling_p90": cal["ceiling"]["p90_max_prob"], "ceiling_distinct": cal["ceiling"]["distinct"],
           "gap": first.ceiling_accuracy - first.weak_accuracy, "gap_ci95": list(first.gap_ci95),
           "seconds": summary.wall_seconds, "suspect": summary.suspect}
    validation = first.validation
    row["val_size"] = validation.get("size", 0)
    row["val_weak"], row["val_ceiling"] = validation.get("weak_accuracy"), validation.get("ceiling_accuracy")
    for loss, result in summary.results.items():
        row[f"{loss}_val_acc"] = result.validation.get("student_accuracy")
        row[f"{loss}_acc"] = result.student_accuracy
        row[f"{loss}_pgr"] = result.pgr
        row[f"{loss}_pgr_ci95"] = list(result.pgr_ci95)
        row[f"{loss}_auroc"] = result.student_auroc
        row[f"{loss}_p90"] = result.diagnostics["calibration"]["student"]["p90_max_prob"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--out", default="results/recipe", help="where recipe.json goes")
    parser.add_argument("--run-root", default="runs", help="the stage store (shared with w2s run)")
    args = parser.parse_args()

    from w2slab.api import run
    from w2slab.config import RuntimeConfig
    from w2slab.progress import quiet_libraries

    quiet_libraries()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    machine = {"cpu": cpu_name(), "gflops": matmul_rates()}
    print(f"machine: {machine['cpu']}, 2048^2 matmul {machine['gflops']} GFLOP/s")
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for name in args.variants.split(","):
            cfg = variant_config(name, seed)
            result = run(cfg, RuntimeConfig(run_root=args.run_root, name=f"recipe_{name}_s{seed}",
                                             echo=lambda *_: None))
            rows.append(row_of(name, seed, result.summary))
            r = rows[-1]
            print(f"{name:12s} s{seed} validation: weak {r['val_weak']:.3f} ceiling {r['val_ceiling']:.3f} "
                  + " ".join(f"{k[:-8]} {r[k]:.3f}" for k in r if k.endswith("_val_acc")) + "; test: "
                  f"weak {r['weak']:.3f} ceiling {r['ceiling']:.3f} (ECE {r['ceiling_ece']:.3f}, "
                  f"p90 {r['ceiling_p90']:.3f}, {r['ceiling_distinct']} distinct) gap {r['gap']:.3f} "
                  f"[{r['gap_ci95'][0]:.3f}, {r['gap_ci95'][1]:.3f}] "
                  + " ".join(f"{k[:-4]} PGR {r[k]:.2f}" for k in r if k.endswith("_pgr"))
                  + f" {r['seconds']:.0f} s" + (" SUSPECT" if r["suspect"] else ""), flush=True)
    chosen = choose(rows)
    print(f"chosen on validation: {chosen}")
    (out / "recipe.json").write_text(json.dumps({"machine": machine, "rows": rows, "chosen_on_validation": chosen,
                                                "rule": RULE}, indent=2))
    print(f"wrote {out / 'recipe.json'}")


if __name__ == "__main__":
    main()
