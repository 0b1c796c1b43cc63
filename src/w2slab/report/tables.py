"""Per-configuration summary over seeds: PGR and accuracies with bootstrap CIs, as CSV and Markdown.

One row per (dataset, weak, strong, loss). Seeds are the unit of resampling: the spread that matters
for a claim such as "logconf recovers more of the gap" is the run-to-run spread, not the test-set noise.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from w2slab.metrics import bootstrap_ci
from w2slab.report.records import KEY_FIELDS, nanmean, order_losses, order_models

ACCURACIES = ("weak_accuracy", "ceiling_accuracy", "student_accuracy")
AUROCS = ("weak_auroc", "ceiling_auroc", "student_auroc")
NOTE_SELF_PAIR = "self-pair"
NOTE_WEAK_NOT_SMALLER = "weak ≥ strong"

#: CSV column order: keys, counts, PGR, accuracies, AUROCs, flags.
COLUMNS = (
    *KEY_FIELDS, "n_seeds", "n_pgr",
    "pgr_mean", "pgr_mean_lo", "pgr_mean_hi", "pgr_median", "pgr_median_lo", "pgr_median_hi",
    *(f"{name}_{part}" for name in ACCURACIES for part in ("mean", "lo", "hi")),
    *(f"{name}_mean" for name in AUROCS),
    "self_pair", "weak_not_smaller", "note",
)


def summarize(values, statistic: Callable = np.mean) -> tuple[float, float, float]:
    """(point, ci_low, ci_high) of ``statistic`` over the finite values; all NaN when none are finite.

    NaNs are dropped rather than propagated because a NaN PGR means "undefined for this seed"
    (ceiling <= weak), not "unknown"; the count of finite values is reported next to the statistic.
    A single value gives the degenerate CI (value, value) without running the bootstrap.
    """
    finite = np.asarray(values, dtype=float)
    finite = finite[~np.isnan(finite)]
    if len(finite) == 0:
        return (math.nan, math.nan, math.nan)
    point = float(statistic(finite))
    if len(finite) == 1:
        return (point, point, point)
    low, high = bootstrap_ci(finite, statistic=statistic)
    return (point, low, high)


def aggregate(records: list[dict]) -> list[dict]:
    """One summary row per (dataset, weak, strong, loss), ordered as the plots are.

    Rows go by dataset, loss (paper order), weak model (by weak accuracy), strong model (by ceiling).
    """
    groups: dict[tuple[str, ...], list[dict]] = defaultdict(list)
    for record in records:
        groups[tuple(record[key] for key in KEY_FIELDS)].append(record)
    rows = [_summarize_group(key, group) for key, group in groups.items()]
    return sorted(rows, key=_row_sort_key(records))


def _summarize_group(key: tuple[str, ...], group: list[dict]) -> dict:
    """Statistics of one configuration over its seeds."""
    seeds = [r["seed"] for r in group]
    if len(set(seeds)) < len(seeds):
        warnings.warn(f"{'/'.join(key)} has repeated seeds {sorted(seeds)}: each record is counted "
                      "as a separate seed", stacklevel=3)
    row: dict = dict(zip(KEY_FIELDS, key, strict=True))
    pgrs = [r["pgr"] for r in group]
    row["n_seeds"] = len(group)
    row["n_pgr"] = sum(not math.isnan(v) for v in pgrs)
    row["pgr_mean"], row["pgr_mean_lo"], row["pgr_mean_hi"] = summarize(pgrs, np.mean)
    row["pgr_median"], row["pgr_median_lo"], row["pgr_median_hi"] = summarize(pgrs, np.median)
    for name in ACCURACIES:
        row[f"{name}_mean"], row[f"{name}_lo"], row[f"{name}_hi"] = summarize([r[name] for r in group])
    for name in AUROCS:
        row[f"{name}_mean"] = nanmean(r[name] for r in group)
    row["self_pair"] = any(r["self_pair"] for r in group)
    row["weak_not_smaller"] = any(r["weak_not_smaller"] for r in group)
    row["note"] = note(row)
    return row


def note(row: dict) -> str:
    """The paper allows pairs whose weak model is not smaller; the table marks them so they are not misread."""
    if row["self_pair"]:
        return NOTE_SELF_PAIR
    if row["weak_not_smaller"]:
        return NOTE_WEAK_NOT_SMALLER
    return ""


def _row_sort_key(records: list[dict]) -> Callable[[dict], tuple]:
    """Sort key placing rows in dataset / loss / weak-capability / strong-capability order."""
    rank: dict[tuple[str, str, str], int] = {}
    for dataset in {r["dataset"] for r in records}:
        subset = [r for r in records if r["dataset"] == dataset]
        for role in ("weak", "strong"):
            for i, name in enumerate(order_models(subset, role)):
                rank[(dataset, role, name)] = i
    loss_rank = {loss: i for i, loss in enumerate(order_losses(r["loss"] for r in records))}
    return lambda row: (row["dataset"], loss_rank[row["loss"]], rank[(row["dataset"], "weak", row["weak"])],
                        rank[(row["dataset"], "strong", row["strong"])])


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


def fmt(value: float) -> str:
    """A number to 3 decimals; NaN (undefined) as ``n/a``."""
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def fmt_ci(point: float, low: float, high: float) -> str:
    """``0.550 [0.410, 0.700]``; just ``n/a`` when the statistic is undefined."""
    return "n/a" if math.isnan(point) else f"{fmt(point)} [{fmt(low)}, {fmt(high)}]"


def markdown_table(rows: list[dict]) -> str:
    """The summary as a Markdown document: a one-paragraph legend, then one table."""
    header = ["dataset", "loss", "weak", "strong", "seeds", "PGR mean [95% CI]", "PGR median [95% CI]",
              "weak acc", "ceiling acc", "student acc", "note"]
    lines = [
        "# Weak-to-strong summary",
        "",
        "One row per (dataset, weak, strong, loss). Brackets: bootstrap 95% CI over seeds. "
        "PGR = (student - weak) / (ceiling - weak); seeds with an undefined PGR (ceiling <= weak) are "
        "left out of the PGR statistics, so `seeds` shows `valid/total` when some were. "
        f"Notes: `{NOTE_SELF_PAIR}` = weak and strong are the same model; "
        f"`{NOTE_WEAK_NOT_SMALLER}` = the weak model is not smaller than the strong one.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i < 4 or i == len(header) - 1 else "---:" for i in range(len(header))) + "|",
    ]
    for row in rows:
        seeds = str(row["n_seeds"]) if row["n_pgr"] == row["n_seeds"] else f"{row['n_pgr']}/{row['n_seeds']}"
        cells = [
            row["dataset"], row["loss"], row["weak"], row["strong"], seeds,
            fmt_ci(row["pgr_mean"], row["pgr_mean_lo"], row["pgr_mean_hi"]),
            fmt_ci(row["pgr_median"], row["pgr_median_lo"], row["pgr_median_hi"]),
            *(fmt_ci(row[f"{n}_mean"], row[f"{n}_lo"], row[f"{n}_hi"]) for n in ACCURACIES),
            row["note"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
