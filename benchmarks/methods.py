"""Methods benchmark: every loss and every W2S method in the probe setting, with the power to tell them apart.

    python benchmarks/methods.py                                  # both parts: ~95 min on 2 CPU cores
    python benchmarks/methods.py --parts probe                    # the probe part only: ~12 min
    python benchmarks/methods.py --seeds 0,1 --parts probe --out /tmp/methods     # a quick look
    python benchmarks/methods.py --parts probe --seeds 0,1,2,3,4 --out results/methods_field  # the field since 2024

Setting: sentence-level SST-2 (``sst2_sentences``: transfer and test both whole sentences), 4,000 training docs
(2,000 weak-train, 2,000 transfer) and 1,800 test docs, the ``--seeds`` (ten by default; each repartitions one
pool; all share the test set). Every model is a **linear probe on frozen features** (converged: the run is marked
SUSPECT "did not converge" otherwise, and the table counts such runs). Pairs along the ladder: minilm-l3 ->
minilm-l6, minilm-l3 -> mpnet-base and minilm-l6 -> mpnet-base; every loss on every pair (the noise-robust gce,
sce, elr and co-teaching among them); every method (with ``xent``) on minilm-l3 -> mpnet-base, ``bootstrap``
through minilm-l6, and the multi-teacher losses (raven, edl, csl, and xent as their naive average) on an ensemble
of minilm-l3 and minilm-l6 teachers, two seeds each. Synthetic supervisors replace the weak model, so their
PGR is measured from *their* accuracy, and their paired difference compares another supervisor, not a better
use of the same one. Second part: the fine-tuned default pair (README "The default experiment": minilm-l3
fine-tuned -> mpnet-base fine-tuned, 2,000 training docs, 1,800 test docs) with every loss over the first five
seeds (``--finetune-seeds``), about 80 minutes of CPU time.

Statistics: a PGR enters only from seeds whose own gap interval excludes 0, and a pair shows one only where at
least half its seeds have such a gap ("no gap (k of n)" otherwise: k seeds' PGR would be chance picking); the
pooled PGR and its 95% CI come from a hierarchical bootstrap (seeds, then test examples, one draw of test
indices shared by the seeds). The paired difference against ``xent`` is the mean per-example accuracy
difference on the same test examples, its 95% CI hierarchical too; ``*`` marks an interval that excludes 0.
The minimum detectable difference (MDD) at 80% power and 5% two-sided level is ``2.8 x SE`` of that paired
difference, the SE read off its interval (width / 3.92): a true difference smaller than the MDD is more likely
missed than found.

Writes ``<out>/README.md`` (the table and the command that made it), ``methods.csv`` and ``experiments.json``
(the ids of the experiments behind them); the stages stay under ``--run-root`` for ``benchmarks/reproduction.py``,
which reads exactly those experiments.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shlex
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

DATASET = "sst2_sentences"
LOSSES = ("xent", "logconf", "entropy", "adaptive_conf", "product", "kl", "reverse_kl", "window",
          {"name": "logconf", "buffer": 128, "balance_batch": True}, "gce", "sce", "elr", "coteach")
PAIRS = (("minilm-l3", "minilm-l6"), ("minilm-l3", "mpnet-base"), ("minilm-l6", "mpnet-base"))
METHODS_PAIR = ("minilm-l3", "mpnet-base")
FINETUNE_LOSSES = tuple(loss for loss in LOSSES if isinstance(loss, str))  # every loss once, with its defaults
SETTINGS = ("probe", "full")  # how the strong model trains: the table's sections, in this order
METHODS = ({"name": "conf_filter", "drop": 0.2}, {"name": "knn"}, {"name": "knn", "mode": "filter"},
           {"name": "logreg"}, {"name": "select"}, {"name": "oracle_select"}, {"name": "ensemble", "seeds": 3},
           {"name": "s2s"}, {"name": "bootstrap", "via": "minilm-l6"}, {"name": "synthetic_flip", "rate": 0.2},
           {"name": "synthetic_class_flip", "rates": [0.0, 0.4]}, {"name": "synthetic_cue", "cue": "long"},
           {"name": "ensemw2s", "rounds": 3}, {"name": "icm", "restarts": 2, "iterations": 5}, {"name": "trust"},
           {"name": "graph_smooth"}, {"name": "selective"})
#: Multi-teacher losses learn from an ensemble's members: teachers of two sizes from the ladder (minilm-l3 and
#: minilm-l6, two seeds each); xent on the same ensemble is their naive average.
TEACHERS = {"name": "ensemble", "seeds": 2, "models": ["minilm-l6"]}
MULTI_TEACHER_LOSSES = ("xent", "raven", "edl", "csl")


def configs(args) -> list:
    from w2slab.config import ExperimentConfig, TrainConfig

    probe = TrainConfig(mode="probe", trace_every=args.trace_every)
    out = []
    parts = set(args.parts.split(","))
    if "finetune" in parts:  # the default experiment, changed in its losses only
        out += [ExperimentConfig(dataset=args.dataset, seed=int(seed), losses=FINETUNE_LOSSES)
                for seed in args.finetune_seeds.split(",")]
    for weak, strong in PAIRS if "probe" in parts else ():
        for seed in (int(s) for s in args.seeds.split(",")):
            common = dict(dataset=args.dataset, weak=weak, strong=strong, seed=seed, n_train=args.n_train,
                          n_test=args.n_test, weak_train=TrainConfig(mode="probe"), strong_train=probe)
            out.append(ExperimentConfig(losses=LOSSES, methods=({"name": "none"},), **common))
            if (weak, strong) == METHODS_PAIR:
                out.append(ExperimentConfig(losses=("xent",), methods=METHODS, **common))
                out.append(ExperimentConfig(losses=MULTI_TEACHER_LOSSES, methods=(TEACHERS,), **common))
    return out


def setting(record: dict) -> str:
    """How the record's strong model trained (``probe``, ``full``, ``lora``): what separates the two parts."""
    from w2slab.config import ExperimentConfig

    return ExperimentConfig.from_dict(record["config"]).train_config("strong").mode


def student_rows(records: list[dict]) -> list[dict]:
    """Per (setting, pair, student): pooled PGR over the seeds with a gap and the paired difference against xent."""
    from w2slab.metrics import hierarchical_paired_difference
    from w2slab.report.methods import experiment_key
    from w2slab.report.records import order_losses
    from w2slab.report.tables import correct_by_role, has_gap, pooled_pgr

    def correct(record: dict) -> np.ndarray:
        return correct_by_role(record)["student"].astype(float)

    baseline = {experiment_key(r): r for r in records if r["loss"] == "xent"}
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for record in sorted(records, key=lambda r: r["seed"]):  # seed order: bootstrap draws independent of listing
        groups[(setting(record), record["weak"], record["strong"], record["loss"])].append(record)
    rows = []
    for (mode, weak, strong, student), group in groups.items():
        pooled = pooled_pgr(group)
        row = {"setting": mode, "weak": weak, "strong": strong, "student": student, "seeds": len(group),
               "seeds_with_gap": sum(has_gap(r) for r in group), "pgr": pooled.pgr, "pgr_lo": pooled.ci95[0],
               "pgr_hi": pooled.ci95[1], "oracle": any(r.get("oracle") for r in group),
               "gap": float(np.mean([r["ceiling_accuracy"] - r["weak_accuracy"] for r in group])),
               "suspect": sum(bool(r.get("suspect")) for r in group),
               "weak_acc": float(np.mean([r["weak_accuracy"] for r in group])),
               "ceiling_acc": float(np.mean([r["ceiling_accuracy"] for r in group])),
               "student_acc": float(np.mean([r["student_accuracy"] for r in group]))}
        pairs = [(correct(r), correct(baseline[experiment_key(r)])) for r in group
                 if student != "xent" and experiment_key(r) in baseline]
        if pairs:
            mean, (low, high) = hierarchical_paired_difference([a - b for a, b in pairs])
            row.update(diff=mean, diff_lo=low, diff_hi=high, excludes_zero=bool(low > 0 or high < 0),
                       mdd=2.8 * (high - low) / 3.92)
        rows.append(row)
    order = {label: i for i, label in enumerate(order_losses(r["student"] for r in rows))}
    return sorted(rows, key=lambda r: (SETTINGS.index(r["setting"]), PAIRS.index((r["weak"], r["strong"])),
                                       order[r["student"]]))


def markdown(rows: list[dict], command: str, seconds: float, n_runs: int, cpu: str, computed: int) -> str:
    timing = (f"in {seconds / 60:.0f} min, computing {computed} stages" if computed else
              "from stages an earlier invocation computed on this machine")
    from w2slab.fingerprint import source_digest

    lines = ["# Methods benchmark", "", f"Made by `{command}` {timing} ({n_runs} results) on 2 cores of {cpu} "
             "(bf16 kernels differ between CPUs: numbers reproduce on one machine, not across machines), with "
             f"w2slab source digest `{source_digest()}`.", "",
             (__doc__ or "").split("\n\n", 2)[2].split("\n\nWrites")[0].strip(), ""]
    for mode, (weak, strong) in ((mode, pair) for mode in SETTINGS for pair in PAIRS):
        pair_rows = [r for r in rows if (r["setting"], r["weak"], r["strong"]) == (mode, weak, strong)]
        if not pair_rows:
            continue
        first = pair_rows[0]
        mdds = [r["mdd"] for r in pair_rows if "mdd" in r]
        title = (f"{weak} -> {strong} (linear probes)" if mode == "probe" else
                 f"{weak} -> {strong}, fine-tuned ({mode}): the default experiment with every loss")
        lines += [f"## {title}", "",
                  f"weak {first['weak_acc']:.3f}, ceiling {first['ceiling_acc']:.3f} (means over {first['seeds']} "
                  f"seeds); gap {first['gap']:.3f}; seeds whose gap interval excludes 0: {first['seeds_with_gap']} "
                  f"of {first['seeds']}" + (f"; median MDD of a paired accuracy difference {np.median(mdds):.3f}"
                                            if mdds else ""), "",
                  "| student | accuracy | PGR pooled [95% CI] (seeds with a gap) | vs xent [95% CI] | MDD | "
                  "suspect runs |", "|---|---:|---:|---:|---:|---:|"]
        for r in pair_rows:
            if 2 * r["seeds_with_gap"] < r["seeds"] or math.isnan(r["pgr"]):  # a pair without a real gap
                pgr = f"no gap ({r['seeds_with_gap']} of {r['seeds']})"
            else:
                pgr = f"{r['pgr']:.2f} [{r['pgr_lo']:.2f}, {r['pgr_hi']:.2f}] ({r['seeds_with_gap']} of {r['seeds']})"
            diff = ("" if "diff" not in r else f"{r['diff']:+.3f} [{r['diff_lo']:+.3f}, {r['diff_hi']:+.3f}]"
                    + (" *" if r["excludes_zero"] else ""))
            mdd = f"{r['mdd']:.3f}" if "mdd" in r else ""
            lines.append(f"| {r['student']} | {r['student_acc']:.3f} | {pgr} | {diff} | {mdd} | "
                         f"{r['suspect']}/{r['seeds']} |")
        lines.append("")
    lines += ["`(oracle)`: reads ground truth on the student's side, an upper reference. Synthetic supervisors "
              "(`synthetic_*`) replace the weak model: their PGR is from their own accuracy."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=DATASET)
    parser.add_argument("--parts", default="probe,finetune", help="probe (3 pairs of linear probes), finetune "
                        "(the fine-tuned default pair), or both")
    parser.add_argument("--seeds", default="0,1,2,3,4,5,6,7,8,9", help="seeds of the probe part")
    parser.add_argument("--finetune-seeds", default="0,1,2,3,4", help="seeds of the fine-tuned part")
    parser.add_argument("--n-train", type=int, default=4000, help="probe part (the fine-tuned part: the default's)")
    parser.add_argument("--n-test", type=int, default=1800)
    parser.add_argument("--trace-every", type=int, default=25, help="students' trace interval in steps (0: none)")
    parser.add_argument("--run-root", default="runs/methods_benchmark", help="stages (reused by a second run)")
    parser.add_argument("--out", default="results/methods", help="where the table goes")
    args = parser.parse_args()

    import w2slab
    from w2slab.progress import quiet_libraries
    from w2slab.report.records import load_records

    sys.path.insert(0, str(Path(__file__).parent))
    from recipe import cpu_name

    quiet_libraries()
    command = "python benchmarks/methods.py " + shlex.join(sys.argv[1:])
    started = time.time()
    result = w2slab.sweep(configs(args), w2slab.RuntimeConfig(run_root=args.run_root, echo=lambda *a, **k: None))
    seconds = time.time() - started
    computed = len(result.plan.todo())  # stages this invocation computed (0: every one reused from the run root)
    # this invocation's experiments only: the run root also holds those of earlier code revisions (results
    # written before they recorded their code revision share a config id with these, and would count as seeds)
    ids = sorted(r.experiment_id for r in result.results)
    records = [r for r in load_records(Path(args.run_root)) if r["experiment_id"] in set(ids)]
    rows = student_rows(records)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    by_setting = {mode: sorted(r["experiment_id"] for r in records if setting(r) == mode) for mode in SETTINGS}
    (out / "experiments.json").write_text(json.dumps(by_setting) + "\n", encoding="utf-8")  # for reproduction.py
    text = markdown(rows, command, seconds, len(result.results), cpu_name(), computed)
    (out / "README.md").write_text(text, encoding="utf-8")
    with (out / "methods.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        writer.writeheader()
        writer.writerows(rows)
    print(text)


if __name__ == "__main__":
    main()
