"""Methods benchmark: every loss and every W2S method on the packaged ladder, paired against ``xent``.

    python benchmarks/methods.py                          # ~20-30 min on 2 CPU cores
    python benchmarks/methods.py --datasets sst2 --seeds 0 --out /tmp/methods   # a quick look

Pairs: weak ``minilm-l3`` / ``minilm-l6`` x strong ``mpnet-base`` / ``gemma3-270m``; datasets sst2, sciq,
boolq, anthropic_hh; seeds 0-2; 600 training docs (300 weak-train, 300 transfer) and 300 test docs. Both
models are **linear probes on frozen features** (fine-tuning the strong models over this grid does not fit in
a CPU session; the probe setting is the paper's vision setting). Every loss trains with the plain recipe; every
method trains with ``xent``. ``bootstrap`` goes through the model between weak and strong (minilm-l6 for
minilm-l3 -> mpnet-base, mpnet-base for -> gemma3-270m; minilm-l6 -> mpnet-base has none between them and is
left out of it). Synthetic supervisors replace the weak model, so their PGR is measured from *their*
accuracy, and their paired difference compares a different supervisor, not a better use of the same one.

Prints one table and writes it, with the command that made it, to ``<out>/README.md`` (and ``methods.csv``);
``<out>/report/`` holds ``w2s report``'s tables and figures of the same run (paired differences per pair,
diagnostics, gain against misfit, decompositions, training curves).

Table: per method (or loss) and dataset, the median PGR over the (pair, seed) runs with a bootstrap 95% CI,
and the paired accuracy difference against ``xent`` on the same test examples, pooled over pairs and seeds
(bootstrap over examples within each run; ``*`` marks an interval that excludes 0).
"""

from __future__ import annotations

import argparse
import csv
import math
import shlex
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

LOSSES = ("xent", "logconf", "entropy", "adaptive_conf", "product", "kl", "reverse_kl", "window",
          {"name": "logconf", "buffer": 32, "balance_batch": True})
PAIRS = (("minilm-l3", "mpnet-base"), ("minilm-l6", "mpnet-base"), ("minilm-l3", "gemma3-270m"),
         ("minilm-l6", "gemma3-270m"))
#: the model between weak and strong, for bootstrapping (None: none on the ladder)
BETWEEN = {("minilm-l3", "mpnet-base"): "minilm-l6", ("minilm-l6", "mpnet-base"): None,
           ("minilm-l3", "gemma3-270m"): "mpnet-base", ("minilm-l6", "gemma3-270m"): "mpnet-base"}
METHODS = ({"name": "conf_filter", "drop": 0.2}, {"name": "knn"}, {"name": "knn", "mode": "filter"},
           {"name": "logreg"}, {"name": "select"}, {"name": "oracle_select"}, {"name": "ensemble", "seeds": 3},
           {"name": "s2s"}, {"name": "synthetic_flip", "rate": 0.2},
           {"name": "synthetic_class_flip", "rates": [0.0, 0.4]}, {"name": "synthetic_cue", "cue": "long"})


def configs(args) -> list:
    from w2slab.config import ExperimentConfig, TrainConfig

    probe = TrainConfig(mode="probe")
    strong = TrainConfig(mode="probe", trace_every=args.trace_every)
    out = []
    for dataset in args.datasets.split(","):
        for weak, strong_model in PAIRS:
            methods = [{"name": "none"}, *METHODS]
            if BETWEEN[(weak, strong_model)]:
                methods.append({"name": "bootstrap", "via": BETWEEN[(weak, strong_model)]})
            for seed in (int(s) for s in args.seeds.split(",")):
                common = dict(dataset=dataset, weak=weak, strong=strong_model, seed=seed, n_train=args.n_train,
                              n_test=args.n_test, weak_train=probe, strong_train=strong)
                out.append(ExperimentConfig(losses=LOSSES, methods=({"name": "none"},), **common))
                out.append(ExperimentConfig(losses=("xent",), methods=tuple(methods[1:]), **common))
    return out


def table(records: list[dict]) -> list[dict]:
    """Per (dataset, student): median PGR [CI] over runs and the pooled paired difference against xent."""
    from w2slab.diagnostics import unpack_correct
    from w2slab.report.methods import experiment_key, pooled_difference
    from w2slab.report.records import order_losses
    from w2slab.report.tables import summarize

    def correct(record: dict) -> np.ndarray:
        return unpack_correct(record["test_correct"]["student"], int(record["test_size"])).astype(float)

    baseline = {experiment_key(r): r for r in records if r["loss"] == "xent"}
    pgrs, diffs, oracle = defaultdict(list), defaultdict(list), {}
    for record in records:
        key = (record["dataset"], record["loss"])
        pgrs[key].append(record["pgr"])
        oracle[key] = bool(record.get("oracle"))
        base = baseline.get(experiment_key(record))
        if base is not None and record["loss"] != "xent":
            diffs[key].append(correct(record) - correct(base))
    rows = []
    for key, values in pgrs.items():
        median, low, high = summarize(values, np.median)
        row = {"dataset": key[0], "student": key[1], "runs": len(values),
               "runs_with_pgr": int(sum(not math.isnan(v) for v in values)),
               "pgr_median": median, "pgr_lo": low, "pgr_hi": high, "oracle": oracle[key]}
        if diffs.get(key):
            mean, (d_low, d_high) = pooled_difference(diffs[key])
            row.update(diff_mean=mean, diff_lo=d_low, diff_hi=d_high, excludes_zero=bool(d_low > 0 or d_high < 0))
        rows.append(row)
    order = {label: i for i, label in enumerate(order_losses(r["student"] for r in rows))}
    return sorted(rows, key=lambda r: (r["dataset"], order[r["student"]]))


def markdown(rows: list[dict], command: str, seconds: float, n_runs: int) -> str:
    datasets = sorted({r["dataset"] for r in rows})
    lines = ["# Methods benchmark", "", f"Made by `{command}` in {seconds / 60:.0f} min ({n_runs} results).", "",
             (__doc__ or "").split("\n\n", 2)[2].strip(), "",
             "| student | " + " | ".join(f"{d}: median PGR [CI] | {d}: vs xent [CI]" for d in datasets) + " |",
             "|---|" + "---:|---:|" * len(datasets)]
    students = list(dict.fromkeys(r["student"] for r in rows))
    by = {(r["dataset"], r["student"]): r for r in rows}
    for student in students:
        cells = []
        for dataset in datasets:
            r = by.get((dataset, student))
            if r is None:
                cells += ["", ""]
                continue
            pgr = ("n/a" if math.isnan(r["pgr_median"]) else
                   f"{r['pgr_median']:.2f} [{r['pgr_lo']:.2f}, {r['pgr_hi']:.2f}]")
            if r["runs_with_pgr"] < r["runs"]:
                pgr += f" ({r['runs_with_pgr']}/{r['runs']})"
            diff = ("" if "diff_mean" not in r else
                    f"{r['diff_mean']:+.3f} [{r['diff_lo']:+.3f}, {r['diff_hi']:+.3f}]"
                    + (" *" if r["excludes_zero"] else ""))
            cells += [pgr, diff]
        lines.append(f"| {student} | " + " | ".join(cells) + " |")
    lines += ["", "PGR in parentheses: runs with a defined PGR out of all (the ceiling at or below the supervisor "
              "leaves it undefined). `(oracle)`: reads ground truth on the student's side, an upper reference."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="sst2,sciq,boolq,anthropic_hh")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--n-train", type=int, default=600)
    parser.add_argument("--n-test", type=int, default=300)
    parser.add_argument("--trace-every", type=int, default=4, help="students' trace interval in steps (0: none)")
    parser.add_argument("--run-root", default="runs/methods_benchmark", help="stages (reused by a second run)")
    parser.add_argument("--out", default="results/methods", help="where the table and the report go")
    args = parser.parse_args()

    import w2slab
    from w2slab.progress import quiet_libraries
    from w2slab.report import write_report
    from w2slab.report.records import load_records

    quiet_libraries()
    command = "python benchmarks/methods.py " + shlex.join(sys.argv[1:])
    started = time.time()
    result = w2slab.sweep(configs(args), w2slab.RuntimeConfig(run_root=args.run_root, echo=lambda *a, **k: None))
    seconds = time.time() - started
    records = [r for r in load_records(Path(args.run_root))
               if r["dataset"] in args.datasets.split(",") and r["seed"] in {int(s) for s in args.seeds.split(",")}]
    rows = table(records)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(rows, command, seconds, len(result.results))
    (out / "README.md").write_text(text, encoding="utf-8")
    with (out / "methods.csv").open("w", newline="", encoding="utf-8") as handle:
        fields = ["dataset", "student", "runs", "runs_with_pgr", "pgr_median", "pgr_lo", "pgr_hi", "diff_mean",
                  "diff_lo", "diff_hi", "excludes_zero", "oracle"]
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    write_report(Path(args.run_root), out / "report")
    print(text)


if __name__ == "__main__":
    main()
