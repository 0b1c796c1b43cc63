"""Per-configuration summary over seeds: PGR and accuracies with their intervals, as CSV and Markdown.

One row per configuration: (dataset, weak, strong, student) and config id (the experiment config without
its seed); the student's label is in the ``loss`` column (summary.csv's published column name). Every interval
comes from :mod:`w2slab.stats`: the pooled PGR's covers seeds and the shared test examples (crossed), the
per-seed means' cover seeds (a t-interval). Runs of another config
(a changed ``n_train``, ``epochs``, data, ...) are never counted as extra seeds: they get their own row,
right after the main configuration's, with the fields that differ.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from w2slab import stats
from w2slab.formatting import markdown_cell, number, with_interval
from w2slab.report.records import (
    config_difference,
    identity_of,
    key_of,
    main_config_records,
    main_configs,
    nanmean,
    order_losses,
    order_models,
)
from w2slab.results import ExperimentResult

ACCURACIES = ("weak_accuracy", "ceiling_accuracy", "student_accuracy")
AUROCS = ("weak_auroc", "ceiling_auroc", "student_auroc")
NOTE_SELF_PAIR = "self-pair"
NOTE_WEAK_NOT_SMALLER = "weak ≥ strong"
NOTE_SUSPECT = "suspect"
NOTE_ORACLE = "ORACLE"

#: A row's key columns: a result's (dataset, weak, strong, student), the student's label under its published name.
ROW_KEYS = ("dataset", "weak", "strong", "loss")
#: CSV column order: keys, config, counts, PGR, accuracies, AUROCs, flags.
COLUMNS = (
    *ROW_KEYS, "config_id", "config_main", "config_diff", "n_seeds", "n_pgr", "n_gap", "pooled_from_examples",
    "pgr_shown", "pgr_pooled", "pgr_pooled_lo", "pgr_pooled_hi", "gap_pooled", "gap_pooled_lo", "gap_pooled_hi",
    "pgr_mean", "pgr_mean_lo", "pgr_mean_hi", "pgr_median",
    *(f"{name}_{part}" for name in ACCURACIES for part in ("mean", "lo", "hi")),
    *(f"{name}_mean" for name in AUROCS),
    "self_pair", "weak_not_smaller", "oracle", "n_suspect", "suspect", "n_no_experiment", "no_experiment", "note",
)


def summarize(values) -> tuple[float, float, float]:
    """(mean, ci_low, ci_high) over the finite per-seed values, the interval a t-interval over seeds
    (:func:`w2slab.stats.mean_estimate`, nested); all NaN when none are finite.

    NaNs are dropped rather than propagated because a NaN PGR means "undefined for this seed"
    (ceiling <= weak), not "unknown"; the count of finite values is reported next to the statistic.
    A single value gives the degenerate CI (value, value).
    """
    finite = np.asarray(values, dtype=float)
    finite = finite[~np.isnan(finite)]
    if len(finite) == 0:
        return (math.nan, math.nan, math.nan)
    if len(finite) == 1:
        return (float(finite[0]),) * 3
    estimate = stats.mean_estimate([np.array([v]) for v in finite], shared_test_set=False)
    return (estimate.value, *estimate.ci95)


def aggregate(results: list[ExperimentResult]) -> list[dict]:
    """One summary row per configuration ((dataset, weak, strong, student) + config id), ordered as the plots are.

    Rows go by dataset, student (paper order), weak model (by weak accuracy), strong model (by ceiling), then
    the main configuration before the others.
    """
    groups: dict[tuple[str, ...], list[ExperimentResult]] = defaultdict(list)
    for result in results:
        groups[(*key_of(result), result.config_id())].append(result)
    main = main_configs(results)
    main_config = {key[:-1]: identity_of(group[0]) for key, group in groups.items() if main[key[:-1]] == key[-1]}
    rows = [_summarize_group(key, group, main_config[key[:-1]], key[-1] == main[key[:-1]])
            for key, group in groups.items()]
    return sorted(rows, key=_row_sort_key(main_config_records(results)))


def _summarize_group(key: tuple[str, ...], group: list[ExperimentResult], main_config: dict, is_main: bool) -> dict:
    """Statistics of one configuration over its seeds."""
    seeds = [r.seed for r in group]
    if len(set(seeds)) < len(seeds):
        warnings.warn(f"{'/'.join(key)} has repeated seeds {sorted(seeds)}: each record is counted "
                      "as a separate seed", stacklevel=3)
    row: dict = dict(zip(ROW_KEYS, key[:-1], strict=True))
    row["config_id"], row["config_main"] = key[-1], is_main
    row["config_diff"] = "" if is_main else config_difference(identity_of(group[0]), main_config)
    # a PGR enters an aggregate only from seeds whose own gap interval excludes 0: elsewhere it divides noise by noise
    pgrs = [r.pgr if r.has_gap() else math.nan for r in group]
    row["n_seeds"] = len(group)
    row["n_pgr"] = sum(not math.isnan(v) for v in pgrs)
    pooled = stats.pooled_pgr(group)
    row["n_gap"] = sum(r.has_gap() for r in group)
    row["pooled_from_examples"] = pooled is not None  # else results without per-example correctness (older files)
    reasons = [f"s{r.seed}: {reason}" for r in group if (reason := r.no_experiment())]
    row["n_no_experiment"], row["no_experiment"] = len(reasons), "; ".join(reasons)
    if pooled is not None:
        row["pgr_shown"] = pooled.shown
        row["pgr_pooled"], (row["pgr_pooled_lo"], row["pgr_pooled_hi"]) = pooled.pgr, pooled.ci95
        row["gap_pooled"], (row["gap_pooled_lo"], row["gap_pooled_hi"]) = pooled.gap.value, pooled.gap.ci95
    else:
        row["pgr_shown"] = stats.shows_pgr(row["n_gap"], len(group))
        row.update(dict.fromkeys(("pgr_pooled", "pgr_pooled_lo", "pgr_pooled_hi", "gap_pooled", "gap_pooled_lo",
                                  "gap_pooled_hi"), math.nan))
    row["pgr_mean"], row["pgr_mean_lo"], row["pgr_mean_hi"] = summarize(pgrs)
    finite = [v for v in pgrs if not math.isnan(v)]
    row["pgr_median"] = float(np.median(finite)) if finite else math.nan
    for name in ACCURACIES:
        row[f"{name}_mean"], row[f"{name}_lo"], row[f"{name}_hi"] = summarize([getattr(r, name) for r in group])
    for name in AUROCS:
        row[f"{name}_mean"] = nanmean(getattr(r, name) for r in group)
    row["self_pair"] = any(r.self_pair for r in group)
    row["weak_not_smaller"] = any(r.weak_not_smaller for r in group)
    row["oracle"] = any(r.oracle for r in group)
    suspect = [r for r in group if r.suspect]
    row["n_suspect"] = len(suspect)
    row["suspect"] = "; ".join(f"s{r.seed}: {reason}" for r in suspect for reason in r.suspect)
    row["note"] = note(row)
    return row


def pgr_cell(row: dict) -> str:
    """The pooled PGR with its interval and how many seeds have a gap; ``no gap (k of n)`` where the gap rule
    (:func:`w2slab.stats.shows_pgr`) says no PGR is a result."""
    if not row.get("pgr_shown"):
        if row.get("n_no_experiment"):  # its reasons are listed under the Markdown table
            return f"no W2S experiment ({row['n_no_experiment']} of {row['n_seeds']})"
        return f"no gap ({row['n_gap']} of {row['n_seeds']})"
    if not row.get("pooled_from_examples"):  # older records: the mean over seeds with a gap, a t-interval
        if row["n_gap"] == 1:  # one seed has no interval over seeds: never print a zero-width one
            return f"{number(row['pgr_mean'])} (1 of {row['n_seeds']}; no interval: rerun to record test examples)"
        interval = with_interval(row["pgr_mean"], row["pgr_mean_lo"], row["pgr_mean_hi"])
        return f"{interval} ({row['n_gap']} of {row['n_seeds']}, mean over seeds)"
    interval = with_interval(row["pgr_pooled"], row["pgr_pooled_lo"], row["pgr_pooled_hi"])
    return f"{interval} ({row['n_gap']} of {row['n_seeds']})"


def note(row: dict) -> str:
    """Marks so a row is not misread: pairs whose weak model is not smaller (the paper allows them) and
    seeds whose run is suspect (their reasons are in the ``suspect`` column and under the Markdown table)."""
    parts = [NOTE_ORACLE] if row.get("oracle") else []
    if row["self_pair"]:
        parts.append(NOTE_SELF_PAIR)
    elif row["weak_not_smaller"]:
        parts.append(NOTE_WEAK_NOT_SMALLER)
    if row.get("n_suspect"):
        parts.append(f"{NOTE_SUSPECT} {row['n_suspect']}/{row['n_seeds']}")
    return ", ".join(parts)


def _row_sort_key(results: list[ExperimentResult]) -> Callable[[dict], tuple]:
    """Sort key placing rows in dataset / student / weak-capability / strong-capability order."""
    rank: dict[tuple[str, str, str], int] = {}
    for dataset in {r.dataset for r in results}:
        subset = [r for r in results if r.dataset == dataset]
        for role in ("weak", "strong"):
            for i, name in enumerate(order_models(subset, role)):
                rank[(dataset, role, name)] = i
    loss_rank = {loss: i for i, loss in enumerate(order_losses(r.student for r in results))}
    return lambda row: (row["dataset"], loss_rank[row["loss"]], rank[(row["dataset"], "weak", row["weak"])],
                        rank[(row["dataset"], "strong", row["strong"])], not row["config_main"], row["config_id"])


def write_tables(rows: list[dict], out_dir: Path) -> tuple[Path, Path]:
    """Write ``summary.csv`` (every column, full precision) and ``summary.md`` (readable, 3 decimals)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / "summary.csv", out_dir / "summary.md"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    md_path.write_text(markdown_table(rows), encoding="utf-8")
    return csv_path, md_path


def markdown_table(rows: list[dict]) -> str:
    """The summary as a Markdown document: a one-paragraph legend, then one table."""
    header = ["dataset", "loss", "weak", "strong", "seeds", "PGR pooled [95% CI] (seeds with a gap of n)",
              "PGR median", "weak acc", "ceiling acc", "student acc", "config", "note"]
    lines = [
        "# Weak-to-strong summary",
        "",
        "One row per configuration: (dataset, weak, strong, loss) and `config` id (the experiment config "
        "without its seed); seeds are averaged only within one configuration. Rows of a config other than "
        "the most common one of their (dataset, weak, strong, loss) follow it, with the fields that differ. "
        "PGR = (student - weak) / (ceiling - weak). A PGR is shown only where at least half the seeds have a "
        "gap interval of their own (ceiling - weak over their test examples) that excludes 0 and the pooled "
        "gap's interval excludes 0; `no gap (k of n)` otherwise (k seeds had a gap). A seed whose weak model is at "
        "chance or whose ceiling did not converge is no W2S experiment and counts as one without a gap "
        "(`no W2S experiment (k of n)`, reasons below the table). `PGR pooled`: the ratio "
        "of mean gains over all the seeds, its 95% CI Fieller's under a random-effects model of seeds crossed "
        "with the shared test examples (w2slab.stats; coverage checked by simulation). Accuracy brackets: "
        "t-intervals over seeds; one seed has no such interval. `PGR median`: over the seeds with a gap, no "
        "interval. "
        f"Notes: `{NOTE_SELF_PAIR}` = weak and strong are the same model; "
        f"`{NOTE_WEAK_NOT_SMALLER}` = the weak model is not smaller than the strong one; "
        f"`{NOTE_SUSPECT} k/n` = k of the n seeds are suspect (reasons below the table); "
        f"`{NOTE_ORACLE}` = the student read ground truth on purpose (a named oracle method): an upper "
        "reference, not a weak-to-strong result.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i < 4 or i >= len(header) - 2 else "---:" for i in range(len(header))) + "|",
    ]
    for row in rows:
        seeds = str(row["n_seeds"]) if row["n_pgr"] == row["n_seeds"] else f"{row['n_pgr']}/{row['n_seeds']}"
        cells = [
            *(markdown_cell(row[key]) for key in ("dataset", "loss", "weak", "strong")), seeds,
            pgr_cell(row),
            number(row["pgr_median"]) if row["n_pgr"] > 1 and row.get("pgr_shown") else "n/a",
            *(with_interval(row[f"{n}_mean"], row[f"{n}_lo"], row[f"{n}_hi"]) if row["n_seeds"] > 1
              else number(row[f"{n}_mean"]) for n in ACCURACIES),  # one seed: the value alone (no zero-width interval)
            markdown_cell(row["config_id"] if row["config_main"] else f"{row['config_id']}: {row['config_diff']}"),
            markdown_cell(row["note"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    missing = [row for row in rows if row.get("n_no_experiment")]
    if missing:
        lines += ["", "## No W2S experiment", ""]
        lines += [f"- {row['dataset']} / {row['loss']} / {row['weak']} → {row['strong']} (config {row['config_id']}): "
                  f"{markdown_cell(row['no_experiment'])}" for row in missing]
    suspect = [row for row in rows if row["n_suspect"]]
    if suspect:
        lines += ["", "## Suspect runs", ""]
        lines += [f"- {row['dataset']} / {row['loss']} / {row['weak']} → {row['strong']} (config {row['config_id']}): "
                  f"{markdown_cell(row['suspect'])}" for row in suspect]
    return "\n".join(lines) + "\n"
