"""Methods benchmark: every loss and every W2S method in the probe setting, with the power to tell them apart.

    python benchmarks/methods.py                                  # both parts: ~95 min on 2 CPU cores
    python benchmarks/methods.py --parts probe                    # the probe part only: ~12 min
    python benchmarks/methods.py --seeds 0,1 --parts probe --out /tmp/methods     # a quick look
    python benchmarks/methods.py --parts probe --seeds 0,1,2,3,4 --out results/methods_field  # the field since 2024

Setting: sentence-level SST-2 (``sst2_sentences``: transfer and test both whole sentences), 4,000 training docs
(2,000 weak-train, 2,000 transfer), 500 validation and 1,800 test docs, the ``--seeds`` (ten by default; each
draws its own rows). Every model is a **linear probe on frozen features** (converged: the run is marked
SUSPECT "did not converge" otherwise, and the table counts such runs). Pairs along the ladder: minilm-l3 ->
minilm-l6, minilm-l3 -> mpnet-base and minilm-l6 -> mpnet-base; every loss on every pair (the noise-robust gce,
sce, elr and co-teaching among them); every method (with ``xent``) on minilm-l3 -> mpnet-base, ``bootstrap``
through minilm-l6, and the multi-teacher losses (raven, edl, csl, and xent as their naive average) on an ensemble
of minilm-l3 and minilm-l6 teachers, two seeds each. Synthetic supervisors replace the weak model, so their
PGR is measured from *their* accuracy, and their paired difference compares another supervisor, not a better
use of the same one. Second part: the fine-tuned default pair (README "The default experiment": minilm-l3
fine-tuned -> mpnet-base fine-tuned, 2,000 training docs, 1,800 test docs) with every loss over the first five
seeds (``--finetune-seeds``), about 80 minutes of CPU time.

Statistics (``w2slab.stats``, the module every table uses): each seed draws its own data (``data_seed`` = seed:
the pool, validation and test rows) as well as its partition, initialisations and shuffles, so seeds are nested
and every interval is a t-interval over them (4 df for 5 seeds), covering another draw of the training data.
A pair shows a PGR only where at least half its seeds have a gap interval of their own that excludes 0 and the
pooled gap's does too ("no gap (k of n)" otherwise, and no star); the PGR pools all seeds (a ratio of mean
gains, Fieller's interval). Each student is compared with its **matched baseline**: xent on the same supervisor
and rows (a multi-teacher loss against xent on the same ensemble; a loss against xent under the same method; a
method against plain xent). A family is every comparison of one (setting, pair), declared here before the run;
its p-values are Holm-adjusted (family-wise 5%), BH q beside them; identical-to-baseline rows (``kl``) are
excluded from the count. The MDD is the smallest true difference found with 80% power at the family's
Bonferroni level, from t quantiles: below it a difference is likely missed, and an unstarred row says "no
detectable difference", never "equivalent" (that needs TOST with a margin). Every choice of this benchmark's
settings was fixed before it ran; the validation split is recorded in every result for tuning elsewhere.

Writes ``<out>/README.md`` (the table and the command that made it), ``methods.csv``, ``records.jsonl.gz`` (every
result's per-example test outcomes and what names it: ``benchmarks/rebuild.py`` remakes README and CSV from it
without training), ``meta.json`` and ``experiments.json`` (the ids of the experiments behind them); the stages
stay under ``--run-root`` for ``benchmarks/reproduction.py``,
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
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from w2slab.results import ExperimentResult

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
           {"name": "graph_smooth"}, {"name": "selective"},
           # the matched baselines (Method.matched_baseline): select's (the same 1,800 rows, no selection), and the
           # label-matched ones of the oracles (oracle_select's 200 held-out rows; trust's and selective's 100)
           {"name": "subset"}, {"name": "truth_swap", "labelled": 200, "holdout": 0.1}, {"name": "truth_swap"})
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
        out += [ExperimentConfig(dataset=args.dataset, seed=int(seed), data_seed=int(seed), losses=FINETUNE_LOSSES)
                for seed in args.finetune_seeds.split(",")]
    for weak, strong in PAIRS if "probe" in parts else ():
        for seed in (int(s) for s in args.seeds.split(",")):
            common = dict(dataset=args.dataset, weak=weak, strong=strong, seed=seed, data_seed=seed,
                          n_train=args.n_train, n_test=args.n_test, weak_train=TrainConfig(mode="probe"),
                          strong_train=probe)
            out.append(ExperimentConfig(losses=LOSSES, methods=({"name": "none"},), **common))
            if (weak, strong) == METHODS_PAIR:
                out.append(ExperimentConfig(losses=("xent",), methods=METHODS, **common))
                out.append(ExperimentConfig(losses=MULTI_TEACHER_LOSSES, methods=(TEACHERS,), **common))
    return out


def setting(record: ExperimentResult) -> str:
    """How the result's strong model trained (``probe``, ``full``, ``lora``): what separates the two parts."""
    from w2slab.config import ExperimentConfig

    return ExperimentConfig.from_dict(record.config).train_config("strong").mode


def family_of(record: ExperimentResult) -> str:
    """The family a comparison is corrected in, declared before the run: every student of one (setting, pair)
    against its matched baseline."""
    return f"{setting(record)}: {record.weak} -> {record.strong}"


def student_rows(records: list[ExperimentResult]) -> list[dict]:
    """Per (setting, pair, student): the pooled PGR over all seeds (shown under the gap rule) and the paired
    difference against the student's matched baseline with p, Holm p and BH q over its family (w2slab.stats)."""
    from w2slab import stats
    from w2slab.report.methods import matched_baseline, paired_rows, student_label_ground_truth
    from w2slab.report.records import order_losses

    compared = {(r["family"], r["student"]): r for r in paired_rows(records, family_of=family_of)}
    groups: dict[tuple, list[ExperimentResult]] = defaultdict(list)
    for record in sorted(records, key=lambda r: r.seed):
        groups[(setting(record), record.weak, record.strong, record.student)].append(record)
    rows = []
    for (mode, weak, strong, student), group in groups.items():
        pooled = stats.pooled_pgr(group)
        family = family_of(group[0])
        row = {"setting": mode, "weak": weak, "strong": strong, "student": student, "family": family,
               "baseline": matched_baseline(group[0]) or "", "seeds": len(group),
               "seeds_with_gap": sum(r.has_gap() for r in group),
               "supervisor_acc": float(np.mean([r.weak_accuracy for r in group])),
               "ceiling_acc": float(np.mean([r.ceiling_accuracy for r in group])),
               "student_acc": float(np.mean([r.student_accuracy for r in group])),
               "gap": pooled.gap.value, "gap_lo": pooled.gap.ci95[0], "gap_hi": pooled.gap.ci95[1],
               "pgr_shown": pooled.shown, "pgr": pooled.pgr, "pgr_lo": pooled.ci95[0], "pgr_hi": pooled.ci95[1],
               "ground_truth": float(np.mean([student_label_ground_truth(r) for r in group])),
               "oracle": any(r.oracle for r in group),
               "suspect": sum(bool(r.suspect) for r in group)}
        paired = compared.get((family, student))
        if paired is not None:
            row.update({key: paired[key] for key in ("comparisons", "diff_mean", "diff_lo", "diff_hi", "se", "df",
                                                     "p", "p_holm", "q_bh", "mdd", "claimed",
                                                     "baseline_ground_truth", "design")})
        rows.append(row)
    order = {label: i for i, label in enumerate(order_losses(r["student"] for r in rows))}
    ranks = {pair: i for i, pair in enumerate(PAIRS)}  # a pair off the ladder (another --dataset's) goes last
    return sorted(rows, key=lambda r: (SETTINGS.index(r["setting"]), ranks.get((r["weak"], r["strong"]), len(PAIRS)),
                                       r["weak"], r["strong"], order[r["student"]]))


def markdown(rows: list[dict], meta: dict) -> str:
    """The benchmark's README from its rows and the run's metadata alone (so rebuild.py can remake it)."""
    from w2slab.formatting import markdown_cell, p_short, signed

    timing = (f"in {meta['seconds'] / 60:.0f} min, computing {meta['computed']} stages" if meta["computed"] else
              "from stages an earlier invocation computed on this machine")
    lines = ["# Methods benchmark", "", f"Made by `{meta['command']}` {timing} ({meta['n_results']} results) on 2 "
             f"cores of {meta['cpu']} (bf16 kernels differ between CPUs: numbers reproduce on one machine, not "
             f"across machines), with w2slab source digest `{meta['source_digest']}`"
             + (f" (commit {meta['commit']})" if meta.get("commit") else "") + ". Rebuilt from the committed "
             "per-example outcomes (`records.jsonl.gz`) by `python benchmarks/rebuild.py`, without training.", "",
             (__doc__ or "").split("\n\n", 2)[2].split("\n\nWrites")[0].strip(), ""]
    for mode, (weak, strong) in ((mode, pair) for mode in SETTINGS for pair in PAIRS):
        pair_rows = [r for r in rows if (r["setting"], r["weak"], r["strong"]) == (mode, weak, strong)]
        if not pair_rows:
            continue
        first = next((r for r in pair_rows if r["student"] == "xent"), pair_rows[0])
        compared = [r for r in pair_rows if "p" in r and not math.isnan(r["p"])]
        count = compared[0]["comparisons"] if compared else 0
        mdds = [r["mdd"] for r in compared]
        claims = [r for r in compared if r["claimed"]]
        title = (f"{weak} -> {strong} (linear probes)" if mode == "probe" else
                 f"{weak} -> {strong}, fine-tuned ({mode}): the default experiment with every loss")
        gap_text = (f"gap {first['gap']:.3f} [{first['gap_lo']:.3f}, {first['gap_hi']:.3f}]; seeds whose own gap "
                    f"interval excludes 0: {first['seeds_with_gap']} of {first['seeds']}")
        lines += [f"## {title}", "",
                  f"Family `{first['family']}`: {count} comparisons against matched baselines (identical-to-"
                  f"baseline rows excluded), Holm-corrected. Plain xent: supervisor {first['supervisor_acc']:.3f}, "
                  f"ceiling {first['ceiling_acc']:.3f}; {gap_text}"
                  + (f"; median MDD {np.median(mdds):.3f} at the family's level" if mdds else "") + ". "
                  + (f"Differences that survive Holm: {', '.join(r['student'] for r in claims)}." if claims else
                     "No difference survives Holm.")
                  + ("" if first["pgr_shown"] else " **No gap: no PGR is a result on this pair, and no star.**"), "",
                  "| student | baseline | supervisor acc | GT labels | accuracy | PGR [95% CI] | vs baseline [95% CI] "
                  "| p | Holm p | BH q | MDD | suspect |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in pair_rows:
            pgr = (f"{r['pgr']:.2f} [{r['pgr_lo']:.2f}, {r['pgr_hi']:.2f}]" if r["pgr_shown"] else
                   f"no gap ({r['seeds_with_gap']} of {r['seeds']})")
            if "p" not in r:
                diff = ""
            elif math.isnan(r["p"]):
                diff = "identical to baseline"
            else:
                diff = f"{signed(r['diff_mean'])} [{signed(r['diff_lo'])}, {signed(r['diff_hi'])}]" + (
                    " *" if r["claimed"] else "")
            mdd = f"{r['mdd']:.3f}" if "mdd" in r and not math.isnan(r["mdd"]) else ""
            gt = f"{r['ground_truth']:.0f}" + (f" ({r['baseline_ground_truth']:.0f})" if "p" in r else "")
            lines.append(f"| {markdown_cell(r['student'])} | {markdown_cell(r['baseline'])} | "
                         f"{r['supervisor_acc']:.3f} | {gt} | {r['student_acc']:.3f} | {pgr} | {diff} | "
                         f"{p_short(r.get('p'))} | {p_short(r.get('p_holm'))} | {p_short(r.get('q_bh'))} | {mdd} | "
                         f"{r['suspect']}/{r['seeds']} |")
        lines.append("")
    lines += ["`*`: Holm-adjusted p < .05 within the pair's family and the pair has a gap: the only differences to "
              "claim. An unstarred row is *no detectable difference*, not equivalence (that needs TOST with a "
              "margin). `(oracle)`: reads ground truth on the student's side (GT labels: per seed, the baseline's "
              "in brackets), an upper reference. Synthetic supervisors (`synthetic_*`) replace the weak model: their "
              "PGR is from their own accuracy, and their comparison is against plain xent (another supervisor). "
              "Adapted methods (their `w2s methods` source says `adapted:`) are measured as adapted."]
    return "\n".join(lines) + "\n"


#: What each committed record keeps: enough to rebuild every table (per-example outcomes, the config that names
#: its setting and test set, what it read, the students' traces for the reproduction claims).
KEPT_FIELDS = ("dataset", "weak", "strong", "student", "method", "seed", "oracle", "weak_accuracy", "ceiling_accuracy",
               "student_accuracy", "pgr", "gap_ci95", "ground_truth_labels", "suspect", "test_size", "test_correct",
               "experiment_id", "config", "validation", "trace")


def write_records(records: list[ExperimentResult], path: Path) -> None:
    """The per-example outcomes behind the table (:func:`w2slab.results.write_records` with this benchmark's
    fields)."""
    from w2slab.results import write_records as write

    write(records, path, KEPT_FIELDS)


def render(out: Path) -> str:
    """(Re)write README.md and methods.csv of ``out`` from its records.jsonl.gz and meta.json."""
    from w2slab.results import RECORDS_FILE, read_records

    records = read_records(out / RECORDS_FILE)
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    rows = student_rows(records)
    text = markdown(rows, meta)
    (out / "README.md").write_text(text, encoding="utf-8")
    with (out / "methods.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(dict.fromkeys(k for r in rows for k in r)),
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return text


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
    records = [r for r in load_records(Path(args.run_root)) if r.experiment_id in set(ids)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    by_setting = {mode: sorted(r.experiment_id for r in records if setting(r) == mode) for mode in SETTINGS}
    (out / "experiments.json").write_text(json.dumps(by_setting) + "\n", encoding="utf-8")  # for reproduction.py
    from w2slab.fingerprint import source_digest
    from w2slab.results import RECORDS_FILE

    write_records(records, out / RECORDS_FILE)

    meta = {"command": command, "seconds": round(seconds), "n_results": len(result.results), "cpu": cpu_name(),
            "computed": computed, "source_digest": source_digest()}
    (out / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(render(out))


if __name__ == "__main__":
    main()
