"""Comparing students: paired differences against a baseline student, and the diagnostics behind PGR.

Two students of one experiment (same dataset, models, seed, data and training settings; another loss or
method) were tested on the *same* examples, so their accuracy difference is measured per example and
resampled by example: the shared difficulty of an example cancels, and the interval is far narrower than
the difference of two unpaired accuracies. Seeds are pooled: each seed contributes its test examples'
differences and the bootstrap resamples examples within each seed.

Writes ``paired.csv`` / ``paired.md`` (each student against ``baseline``, default ``xent``, per dataset and
pair), ``diagnostics.md`` (misfit and gain with the Charikar et al. check, the test-set decomposition,
calibration), and three figures: ``gain_vs_misfit.png``, ``forest_<dataset>.png`` (paired differences with
their CIs) and ``decomposition_<dataset>.png`` (stacked bars); for students trained with ``trace_every``,
``training_<dataset>_<weak>_<strong>.png`` (PGR and agreement with the weak labels over training).
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from w2slab.diagnostics import unpack_correct
from w2slab.report.plots import _colours, _ensure_dir, _save, _slug
from w2slab.report.records import nanmean, order_losses
from w2slab.report.tables import fmt

BASELINE = "xent"
PAIRED_COLUMNS = ("dataset", "weak", "strong", "student", "baseline", "n_seeds", "n_examples", "diff_mean",
                  "diff_lo", "diff_hi", "excludes_zero", "oracle")
DECOMPOSITION = ("corrected", "imitated", "changed", "new_errors")


def experiment_key(record: dict) -> str:
    """What two students must share to be paired: the experiment config without its losses and methods."""
    config = {k: v for k, v in (record.get("config") or {}).items() if k not in ("losses", "methods")}
    return json.dumps(config, sort_keys=True, default=str)


def paired_rows(records: list[dict], baseline: str = BASELINE, n_boot: int = 2000) -> list[dict]:
    """Each student against the ``baseline`` student of the same experiments, pooled over seeds."""
    by_experiment: dict[str, dict[str, dict]] = defaultdict(dict)
    for record in records:
        if record.get("test_correct"):
            by_experiment[experiment_key(record)][record["loss"]] = record
    diffs: dict[tuple, list[np.ndarray]] = defaultdict(list)
    oracle: dict[tuple, bool] = {}
    for students in by_experiment.values():
        base = students.get(baseline)
        if base is None:
            continue
        base_correct = _correct(base)
        for label, record in students.items():
            if label == baseline:
                continue
            key = (record["dataset"], record["weak"], record["strong"], label)
            diffs[key].append(_correct(record).astype(float) - base_correct.astype(float))
            oracle[key] = bool(record.get("oracle"))
    rows = []
    for key, per_seed in diffs.items():
        mean, (low, high) = pooled_difference(per_seed, n_boot=n_boot)
        rows.append({"dataset": key[0], "weak": key[1], "strong": key[2], "student": key[3], "baseline": baseline,
                     "n_seeds": len(per_seed), "n_examples": int(sum(len(d) for d in per_seed)),
                     "diff_mean": mean, "diff_lo": low, "diff_hi": high,
                     "excludes_zero": bool(low > 0 or high < 0), "oracle": oracle[key]})
    order = {label: i for i, label in enumerate(order_losses(r["student"] for r in rows))}
    return sorted(rows, key=lambda r: (r["dataset"], r["weak"], r["strong"], order[r["student"]]))


def pooled_difference(per_seed: list[np.ndarray], *, n_boot: int = 2000, seed: int = 0
                      ) -> tuple[float, tuple[float, float]]:
    """Mean per-example difference over all seeds' examples, with a bootstrap CI resampling within each seed."""
    rng = np.random.default_rng(seed)
    total = sum(len(d) for d in per_seed)
    mean = float(sum(d.sum() for d in per_seed) / total)
    samples = np.zeros(n_boot)
    for d in per_seed:
        samples += d[rng.integers(0, len(d), (n_boot, len(d)))].sum(axis=1)
    samples /= total
    return mean, (float(np.quantile(samples, 0.025)), float(np.quantile(samples, 0.975)))


def _correct(record: dict) -> np.ndarray:
    return unpack_correct(record["test_correct"]["student"], int(record["test_size"]))


def diagnostic_rows(records: list[dict]) -> list[dict]:
    """Per (dataset, weak, strong, student): means over seeds of misfit, gain, the decomposition and calibration,
    and how many seeds satisfy gain >= misfit."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for record in records:
        if record.get("diagnostics"):
            groups[(record["dataset"], record["weak"], record["strong"], record["loss"])].append(record)
    rows = []
    for key, group in groups.items():
        diag = [r["diagnostics"] for r in group]
        row = {"dataset": key[0], "weak": key[1], "strong": key[2], "student": key[3], "n_seeds": len(group),
               "oracle": any(r.get("oracle") for r in group),
               "misfit": nanmean(d["misfit"] for d in diag), "gain": nanmean(d["gain"] for d in diag),
               "gain_ge_misfit": sum(bool(d["gain_ge_misfit"]) for d in diag),
               **{part: nanmean(d["decomposition"][part] for d in diag) for part in DECOMPOSITION},
               **{f"{role}_{metric}": nanmean(d["calibration"][role][metric] for d in diag)
                  for role in ("weak", "ceiling", "student") for metric in ("ece", "brier")},
               # older results carry no error overlap: NaN, printed n/a
               "capa_weak_ceiling": nanmean(d.get("capa_weak_ceiling", float("nan")) for d in diag)}
        rows.append(row)
    order = {label: i for i, label in enumerate(order_losses(r["student"] for r in rows))}
    return sorted(rows, key=lambda r: (r["dataset"], r["weak"], r["strong"], order[r["student"]]))


def write_method_report(records: list[dict], out_dir: Path, baseline: str = BASELINE) -> list[Path]:
    out_dir = _ensure_dir(out_dir)
    paired, diagnostics = paired_rows(records, baseline), diagnostic_rows(records)
    paths = []
    if paired:
        with (out_dir / "paired.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=PAIRED_COLUMNS)
            writer.writeheader()
            writer.writerows(paired)
        (out_dir / "paired.md").write_text(paired_markdown(paired), encoding="utf-8")
        paths += [out_dir / "paired.csv", out_dir / "paired.md"]
        for dataset in sorted({r["dataset"] for r in paired}):
            groups = forest_groups([r for r in paired if r["dataset"] == dataset])
            for i, group in enumerate(groups):
                suffix = "" if len(groups) == 1 else f"_{i + 1}"
                paths.append(_save(forest_figure(dataset, group), out_dir / f"forest_{_slug(dataset)}{suffix}.png"))
    if diagnostics:
        (out_dir / "diagnostics.md").write_text(diagnostics_markdown(diagnostics), encoding="utf-8")
        paths.append(out_dir / "diagnostics.md")
        paths.append(_save(gain_misfit_figure(records), out_dir / "gain_vs_misfit.png"))
        for dataset in sorted({r["dataset"] for r in diagnostics}):
            paths.append(_save(decomposition_figure(dataset, [r for r in diagnostics if r["dataset"] == dataset]),
                               out_dir / f"decomposition_{_slug(dataset)}.png"))
    traced: dict[tuple, list[dict]] = defaultdict(list)
    for record in records:
        if record.get("trace"):
            traced[(record["dataset"], record["weak"], record["strong"])].append(record)
    for (dataset, weak, strong), group in sorted(traced.items()):
        paths.append(_save(training_figure(dataset, weak, strong, group),
                           out_dir / f"training_{_slug(dataset)}_{_slug(weak)}_{_slug(strong)}.png"))
    return paths


def _student(row: dict) -> str:
    return row["student"] + (" **ORACLE**" if row["oracle"] and "(oracle)" not in row["student"] else "")


def paired_markdown(rows: list[dict]) -> str:
    lines = ["# Paired differences against the baseline student", "",
             "Student accuracy minus the baseline student's (same experiments, same test examples), pooled over "
             "seeds; 95% CI from a bootstrap over test examples within each seed. `*` marks an interval that "
             "excludes 0. Students marked `(oracle)` read ground truth on the student's side and are upper "
             "references, not weak-to-strong results.", "",
             "| dataset | weak | strong | student | baseline | seeds | difference [95% CI] |",
             "|---|---|---|---|---|---:|---:|"]
    for r in rows:
        star = " *" if r["excludes_zero"] else ""
        lines.append(f"| {r['dataset']} | {r['weak']} | {r['strong']} | {_student(r)} | {r['baseline']} | "
                     f"{r['n_seeds']} | {r['diff_mean']:+.3f} [{r['diff_lo']:+.3f}, {r['diff_hi']:+.3f}]{star} |")
    return "\n".join(lines) + "\n"


def diagnostics_markdown(rows: list[dict]) -> str:
    lines = ["# Diagnostics", "",
             "Means over seeds. misfit = E||student - weak||^2 and gain = E||weak - y||^2 - E||student - y||^2 on "
             "the test set (squared loss on probabilities, Charikar et al. 2024; their result says gain >= misfit "
             "under their assumptions: `holds` counts the seeds where it does). Decomposition: shares of the "
             "test set where the weak model erred and the student was right (corrected), made the same error "
             "(imitated) or another one (changed), and the student's errors where the weak model was right (new). "
             "CAPA: chance-adjusted probabilistic agreement of the weak model and the ceiling on test (Goel et al. "
             "2025; 0 = no more shared errors than their accuracies imply, 1 = the same predictions); lower leaves "
             "more to gain. ECE with 15 equal-width bins.", "",
             "| dataset | weak | strong | student | seeds | misfit | gain | holds | corrected | imitated | "
             "new errors | CAPA weak-ceiling | ECE weak / ceiling / student | Brier student |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['weak']} | {r['strong']} | {_student(r)} | {r['n_seeds']} | "
                     f"{r['misfit']:.3f} | {r['gain']:+.3f} | {r['gain_ge_misfit']}/{r['n_seeds']} | "
                     f"{r['corrected']:.3f} | {r['imitated']:.3f} | {r['new_errors']:.3f} | "
                     f"{fmt(r['capa_weak_ceiling'])} | "
                     f"{r['weak_ece']:.3f} / {r['ceiling_ece']:.3f} / {r['student_ece']:.3f} | "
                     f"{r['student_brier']:.3f} |")
    return "\n".join(lines) + "\n"


def gain_misfit_figure(records: list[dict]) -> Figure:
    """Every student of every run: gain against misfit, with the line gain = misfit; the legend beside the axes
    (it covered the points), one colour per student label (a ten-colour cycle repeated them past ten)."""
    labels = order_losses({r["loss"] for r in records if r.get("diagnostics")})
    fig = Figure(figsize=(6.5 + (1.8 if len(labels) > 1 else 0), 5))
    ax = fig.add_subplot()
    colours = _colours(labels)
    markers = "osD^vP*Xh<>"
    top = 0.0
    for i, label in enumerate(labels):
        points = [(r["diagnostics"]["misfit"], r["diagnostics"]["gain"]) for r in records
                  if r["loss"] == label and r.get("diagnostics")]
        xs, ys = zip(*points, strict=True)
        top = max(top, *xs)
        ax.scatter(xs, ys, s=18, color=colours[label], marker=markers[i % len(markers)], label=label, alpha=0.8)
    ax.plot([0, top * 1.05 or 1], [0, top * 1.05 or 1], color="gray", linestyle="--", linewidth=1,
            label="gain = misfit")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xlabel("misfit to the weak labels (test, squared loss)")
    ax.set_ylabel("gain over the weak model (test, squared loss)")
    ax.set_title("Gain against misfit (Charikar et al. 2024)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    return fig


#: A forest figure fits a paper page: at most this many rows (students) each; more are split by (weak, strong).
FOREST_ROWS_PER_FIGURE = 36


def forest_groups(rows: list[dict]) -> list[list[dict]]:
    """The rows of one dataset's forest figures: all in one when they fit a page, else one figure per pair."""
    if len(rows) <= FOREST_ROWS_PER_FIGURE:
        return [rows]
    return [group[i:i + FOREST_ROWS_PER_FIGURE] for group in by_pair(rows).values()
            for i in range(0, len(group), FOREST_ROWS_PER_FIGURE)]


def by_pair(rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Rows grouped by (weak, strong), in their order."""
    pairs: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        pairs[(row["weak"], row["strong"])].append(row)
    return pairs


def forest_figure(dataset: str, rows: list[dict]) -> Figure:
    """Paired accuracy difference of each student against the baseline, with 95% CIs, grouped by (weak, strong)
    pair under a heading each; at most a paper page high (7 x 9.5 in)."""
    pairs = by_pair(rows)
    lines = sum(len(group) + 1 for group in pairs.values())  # a heading line per pair
    fig = Figure(figsize=(7, min(9.5, 0.24 * lines + 1.3)))
    ax = fig.add_subplot()
    y, ticks, names = lines - 1, [], []
    for (weak, strong), group in pairs.items():
        ax.axhline(y, color="0.85", linewidth=0.6)
        ax.text(0.0, y, f"{weak} -> {strong}", transform=ax.get_yaxis_transform(), ha="left", va="center",
                fontsize=7, fontweight="bold")
        y -= 1
        for r in group:
            colour = "tab:green" if r["diff_lo"] > 0 else "tab:red" if r["diff_hi"] < 0 else "tab:gray"
            ax.errorbar(r["diff_mean"], y, xerr=[[r["diff_mean"] - r["diff_lo"]], [r["diff_hi"] - r["diff_mean"]]],
                        fmt="D" if r["oracle"] else "o", color=colour, capsize=2, markersize=4)
            ticks.append(y)
            names.append(r["student"])
            y -= 1
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(ticks, names, fontsize=7)
    ax.set_ylim(-0.7, lines - 0.3)
    ax.set_xlabel(f"accuracy difference against {rows[0]['baseline']} (paired, 95% CI)")
    ax.set_title(f"{dataset}: methods against {rows[0]['baseline']} (diamond: oracle)", fontsize=10)
    fig.tight_layout()
    return fig


def decomposition_figure(dataset: str, rows: list[dict]) -> Figure:
    """Stacked bars: what happened to the test set's weak errors, and the student's new errors, per student."""
    fig = Figure(figsize=(max(6, 0.6 * len(rows) + 2), 4.5))
    ax = fig.add_subplot()
    names = [f"{r['weak']}->{r['strong']}\n{r['student']}" if len({(x['weak'], x['strong']) for x in rows}) > 1
             else r["student"] for r in rows]
    x = np.arange(len(rows))
    bottom = np.zeros(len(rows))
    colours = {"corrected": "tab:green", "imitated": "tab:red", "changed": "tab:orange", "new_errors": "tab:purple"}
    for part in DECOMPOSITION:
        values = np.array([r[part] if not math.isnan(r[part]) else 0.0 for r in rows])
        if not values.any():  # "changed" is always 0 with two classes (a weak error has one other class)
            continue
        ax.bar(x, values, bottom=bottom, color=colours[part], label=part.replace("_", " "))
        bottom += values
    ax.set_xticks(x, names, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("share of the test set")
    ax.set_title(f"{dataset}: the weak model's errors, corrected or imitated, and the student's new ones")
    ax.legend(fontsize=7)
    return fig


def training_figure(dataset: str, weak: str, strong: str, records: list[dict]) -> Figure:
    """PGR on test and agreement with the weak labels on transfer over training, per student (mean over seeds)."""
    fig = Figure(figsize=(10, 4))
    pgr_ax, agree_ax = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    labels = order_losses({r["loss"] for r in records})
    colours = _colours(labels)
    for label in labels:
        by_frac: dict[float, list[dict]] = defaultdict(list)
        for record in records:
            if record["loss"] == label:
                for row in record["trace"]:
                    by_frac[round(row["step_frac"], 4)].append(row)
        fracs = sorted(by_frac)
        pgr_ax.plot(fracs, [nanmean(r["pgr"] for r in by_frac[f]) for f in fracs], marker=".", color=colours[label],
                    label=label)
        agree_ax.plot(fracs, [nanmean(r["agreement_transfer"] for r in by_frac[f]) for f in fracs], marker=".",
                      color=colours[label], label=label)
    pgr_ax.axhline(0, color="black", linewidth=0.6)
    pgr_ax.axhline(1, color="gray", linewidth=0.6, linestyle="--")
    pgr_ax.set_xlabel("fraction of training")
    pgr_ax.set_ylabel("PGR on test")
    agree_ax.set_xlabel("fraction of training")
    agree_ax.set_ylabel("agreement with the weak labels (transfer)")
    pgr_ax.set_title(f"{dataset}: {weak} -> {strong}", fontsize=9)
    agree_ax.legend(fontsize=7)
    return fig
