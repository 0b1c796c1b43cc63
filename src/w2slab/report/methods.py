"""Comparing students: paired differences against each student's matched baseline, and the diagnostics behind PGR.

Two students of one experiment (same dataset, models, seed, data and training settings; another loss or
method) were tested on the *same* examples, so their accuracy difference is measured per example: the shared
difficulty of an example cancels. Each student is paired with its **matched baseline** (:func:`matched_baseline`):
the baseline loss under the same method (same supervisor, same rows) for a loss, the plain baseline student for a
method. The difference over seeds and test examples, its interval, p-value and the family's Holm and BH
adjustments all come from :mod:`w2slab.stats` (the benchmark's module): a family is every comparison of one
(dataset, weak, strong) pair, and a difference is starred only where its Holm-adjusted p is below .05 and the pair
has a gap by the one gap rule.

Writes ``paired.csv`` / ``paired.md`` (each student against its baseline, default ``xent``, per dataset and
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
from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from w2slab import stats
from w2slab.formatting import markdown_cell, number, p_value, signed
from w2slab.report.plots import _colours, _ensure_dir, _save, _slug
from w2slab.report.records import nanmean, order_losses
from w2slab.results import ExperimentResult

BASELINE = "xent"
PAIRED_COLUMNS = ("dataset", "weak", "strong", "student", "baseline", "family", "comparisons", "n_seeds",
                  "n_examples", "supervisor_acc", "gap", "gap_lo", "gap_hi", "pair_has_gap", "ground_truth",
                  "baseline_ground_truth", "diff_mean", "diff_lo", "diff_hi", "se", "df", "p", "p_holm", "q_bh",
                  "mdd", "claimed", "excludes_zero", "oracle", "design")
DECOMPOSITION = ("corrected", "imitated", "changed", "new_errors")


def experiment_key(result: ExperimentResult) -> str:
    """What two students must share to be paired: the experiment config without its losses and methods."""
    config = {k: v for k, v in result.config.items() if k not in ("losses", "methods")}
    return json.dumps(config, sort_keys=True, default=str)


def loss_label(result: ExperimentResult) -> str:
    """The loss part of a student label (``raven`` of ``raven+ensemble[...]``)."""
    method = result.method or "none"
    label = result.student.removesuffix("(oracle)")
    return label[: -len(method) - 1] if method != "none" and label.endswith(f"+{method}") else label


def matched_baseline(record: ExperimentResult, baseline: str = BASELINE) -> str | None:
    """The student label a result is compared against: the same method with the ``baseline`` loss for a loss
    (same supervisor and rows: RAVEN on an ensemble against xent on that ensemble); for a method under the baseline
    loss, its method's own matched baseline where it has one (``Method.matched_baseline``: ``select`` against
    ``subset``, the same training rows without selection; an oracle against ``truth_swap``, as many ground-truth
    labels learnt directly), else the plain ``baseline`` student; None for the baseline itself. A result whose
    config no longer builds (an older result) gets the default rule."""
    method = record.method or "none"
    loss = loss_label(record)
    if loss == baseline and method != "none":
        from w2slab.config import ExperimentConfig
        from w2slab.errors import ConfigError

        try:
            matched = ExperimentConfig.from_dict(record.config).methods[0].matched_baseline()
        except (ConfigError, KeyError, TypeError, ValueError, IndexError, OSError):  # an older record: default rule
            matched = None
        if matched is not None:
            return matched.student_label(baseline)
    if loss == baseline:
        return None if method == "none" else baseline
    oracle = "(oracle)" if record.oracle else ""
    return baseline if method == "none" else f"{baseline}+{method}{oracle}"


def student_label_ground_truth(record: ExperimentResult) -> int:
    """Ground-truth labels the student's side read (an oracle's, a truth_swap's). A synthetic supervisor's reads
    are the weak side's (it simulates the weak model), as the weak model's training labels are: not counted."""
    return int(record.ground_truth_labels.get("student", 0))


def paired_rows(records: list[ExperimentResult], baseline: str = BASELINE,
                family_of: Callable[[ExperimentResult], str] | None = None) -> list[dict]:
    """Each student against its matched baseline over the seeds both hold, with the family's corrections.

    ``family_of`` names a record's family (default: ``dataset: weak -> strong``); Holm and BH run over each
    family's non-degenerate comparisons (:func:`w2slab.stats.adjust_family`).
    """
    family_of = family_of or (lambda r: f"{r.dataset}: {r.weak} -> {r.strong}")
    by_experiment: dict[str, dict[str, ExperimentResult]] = defaultdict(dict)
    for record in records:
        if record.has_outcomes():
            by_experiment[experiment_key(record)][record.student] = record
    pairs: dict[tuple, list[tuple[ExperimentResult, ExperimentResult]]] = defaultdict(list)
    for students in by_experiment.values():
        for label, record in students.items():
            base_label = matched_baseline(record, baseline)
            if base_label is None or base_label not in students:
                continue
            base = students[base_label]
            if base.test_set() != record.test_set():  # pragma: no cover - one experiment, one test set
                continue
            key = (family_of(record), record.dataset, record.weak, record.strong, label, base_label)
            pairs[key].append((record, base))
    by_family: dict[str, list[tuple[tuple, stats.Estimate]]] = defaultdict(list)
    for key, matched in pairs.items():
        matched.sort(key=lambda pair: pair[0].seed)
        estimate = stats.paired_results([r for r, _ in matched], [b for _, b in matched])
        by_family[key[0]].append((key, estimate))
    rows = []
    for family, entries in by_family.items():
        adjusted = stats.adjust_family(family, [(key[4], key[5], e) for key, e in entries])
        for (key, _), comparison in zip(entries, adjusted, strict=True):
            matched = pairs[key]
            rows.append(_paired_row(key, comparison, matched))
    order = {label: i for i, label in enumerate(order_losses(r["student"] for r in rows))}
    return sorted(rows, key=lambda r: (r["family"], r["dataset"], r["weak"], r["strong"], order[r["student"]]))


def _paired_row(key: tuple, comparison: stats.Comparison,
                matched: list[tuple[ExperimentResult, ExperimentResult]]) -> dict:
    """One CSV row: the comparison, its supervisor's accuracy and gap (of the baseline's runs), labels read."""
    records = [r for r, _ in matched]
    bases = [b for _, b in matched]
    pooled = stats.pooled_pgr(bases)  # the baseline's gap and the one gap rule, as the summary table has them
    gap, pair_gap = pooled.gap, pooled.shown
    e = comparison.estimate
    return {"dataset": key[1], "weak": key[2], "strong": key[3], "student": key[4], "baseline": key[5],
            "family": comparison.family, "comparisons": comparison.comparisons, "n_seeds": e.seeds,
            "n_examples": e.examples * e.seeds,
            "supervisor_acc": float(np.mean([r.weak_accuracy for r in records])),
            "gap": gap.value, "gap_lo": gap.ci95[0], "gap_hi": gap.ci95[1], "pair_has_gap": pair_gap,
            "ground_truth": float(np.mean([student_label_ground_truth(r) for r in records])),
            "baseline_ground_truth": float(np.mean([student_label_ground_truth(b) for b in bases])),
            "diff_mean": e.value, "diff_lo": e.ci95[0], "diff_hi": e.ci95[1], "se": e.se, "df": e.df, "p": e.p,
            "p_holm": comparison.p_holm, "q_bh": comparison.q_bh, "mdd": comparison.mdd,
            "claimed": comparison.claimed and pair_gap, "excludes_zero": bool(e.ci95[0] > 0 or e.ci95[1] < 0),
            "oracle": any(r.oracle for r in records), "design": e.design}


def diagnostic_rows(records: list[ExperimentResult]) -> list[dict]:
    """Per (dataset, weak, strong, student): means over seeds of misfit, gain, the decomposition and calibration,
    and how many seeds satisfy gain >= misfit."""
    groups: dict[tuple, list[ExperimentResult]] = defaultdict(list)
    for record in records:
        if record.diagnostics:
            groups[(record.dataset, record.weak, record.strong, record.student)].append(record)
    rows = []
    for key, group in groups.items():
        diag = [r.diagnostics for r in group]
        row = {"dataset": key[0], "weak": key[1], "strong": key[2], "student": key[3], "n_seeds": len(group),
               "oracle": any(r.oracle for r in group),
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


def write_method_report(records: list[ExperimentResult], out_dir: Path, baseline: str = BASELINE) -> list[Path]:
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
    traced: dict[tuple, list[ExperimentResult]] = defaultdict(list)
    for record in records:
        if record.trace:
            traced[(record.dataset, record.weak, record.strong)].append(record)
    for (dataset, weak, strong), group in sorted(traced.items()):
        paths.append(_save(training_figure(dataset, weak, strong, group),
                           out_dir / f"training_{_slug(dataset)}_{_slug(weak)}_{_slug(strong)}.png"))
    return paths


def _student(row: dict) -> str:
    return row["student"] + (" **ORACLE**" if row["oracle"] and "(oracle)" not in row["student"] else "")


def paired_markdown(rows: list[dict]) -> str:
    """The paired comparisons, one table per family, each saying how many comparisons it holds."""
    lines = ["# Paired differences against each student's matched baseline", "",
             "Student accuracy minus its matched baseline's on the same test examples and seeds: the baseline "
             "loss under the same method (same supervisor and rows) for a loss, the plain baseline student for a "
             "method. 95% CI and p from w2slab.stats (a random-effects model of seeds crossed with the shared "
             "test examples, t with Satterthwaite df; coverage checked by simulation). A family is every "
             "comparison of one pair; `Holm p` adjusts over it (family-wise), `BH q` beside it. `*`: Holm p < .05 "
             "and the pair has a gap (at least half the seeds, and the pooled gap, exclude 0); only starred rows "
             "are differences to claim. `MDD`: the smallest true difference found with 80% power at the family's "
             "Bonferroni level; a smaller one is not excluded by an unstarred row (that needs an equivalence "
             "test). `GT`: ground-truth labels the student's side read (per seed; baseline's in brackets). "
             "`(oracle)` students read ground truth on purpose and are upper references, not W2S results.", ""]
    for family in dict.fromkeys(r["family"] for r in rows):
        members = [r for r in rows if r["family"] == family]
        first = members[0]
        gap = "" if first["pair_has_gap"] else " — no gap: no PGR and no star"
        lines += [f"## {markdown_cell(family)} ({first['comparisons']} comparisons){gap}", "",
                  "| student | baseline | supervisor acc | gap [95% CI] | GT | seeds | difference [95% CI] | p | "
                  "Holm p | BH q | MDD |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in members:
            star = " *" if r["claimed"] else ""
            lines.append(
                f"| {markdown_cell(_student(r))} | {markdown_cell(r['baseline'])} | {r['supervisor_acc']:.3f} | "
                f"{r['gap']:.3f} [{r['gap_lo']:.3f}, {r['gap_hi']:.3f}] | {r['ground_truth']:.0f} "
                f"({r['baseline_ground_truth']:.0f}) | {r['n_seeds']} | {signed(r['diff_mean'])} "
                f"[{signed(r['diff_lo'])}, {signed(r['diff_hi'])}]{star} | {p_value(r['p'])} | "
                f"{p_value(r['p_holm'])} | {p_value(r['q_bh'])} | {number(r['mdd'])} |")
        lines.append("")
    return "\n".join(lines)


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
        lines.append(f"| {markdown_cell(r['dataset'])} | {markdown_cell(r['weak'])} | {markdown_cell(r['strong'])} | "
                     f"{markdown_cell(_student(r))} | {r['n_seeds']} | "
                     f"{r['misfit']:.3f} | {r['gain']:+.3f} | {r['gain_ge_misfit']}/{r['n_seeds']} | "
                     f"{r['corrected']:.3f} | {r['imitated']:.3f} | {r['new_errors']:.3f} | "
                     f"{number(r['capa_weak_ceiling'])} | "
                     f"{r['weak_ece']:.3f} / {r['ceiling_ece']:.3f} / {r['student_ece']:.3f} | "
                     f"{r['student_brier']:.3f} |")
    return "\n".join(lines) + "\n"


def gain_misfit_figure(records: list[ExperimentResult]) -> Figure:
    """Every student of every run: gain against misfit, with the line gain = misfit; the legend beside the axes
    (it covered the points), one colour per student label (a ten-colour cycle repeated them past ten)."""
    labels = order_losses({r.student for r in records if r.diagnostics})
    fig = Figure(figsize=(6.5 + (1.8 if len(labels) > 1 else 0), 5))
    ax = fig.add_subplot()
    colours = _colours(labels)
    markers = "osD^vP*Xh<>"
    top = 0.0
    for i, label in enumerate(labels):
        points = [(r.diagnostics["misfit"], r.diagnostics["gain"]) for r in records
                  if r.student == label and r.diagnostics]
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
            # coloured only where the difference may be claimed (Holm over its family, and the pair has a gap)
            colour = "tab:gray" if not r["claimed"] else "tab:green" if r["diff_mean"] > 0 else "tab:red"
            ax.errorbar(r["diff_mean"], y, xerr=[[r["diff_mean"] - r["diff_lo"]], [r["diff_hi"] - r["diff_mean"]]],
                        fmt="D" if r["oracle"] else "o", color=colour, capsize=2, markersize=4)
            ticks.append(y)
            names.append(r["student"])
            y -= 1
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(ticks, names, fontsize=7)
    ax.set_ylim(-0.7, lines - 0.3)
    ax.set_xlabel("accuracy difference against the matched baseline (paired, 95% CI)")
    ax.set_title(f"{dataset}: students against their matched baselines (coloured: Holm p < .05; diamond: oracle)",
                 fontsize=9)
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


def training_figure(dataset: str, weak: str, strong: str, records: list[ExperimentResult]) -> Figure:
    """PGR on test and agreement with the weak labels on transfer over training, per student (mean over seeds)."""
    fig = Figure(figsize=(10, 4))
    pgr_ax, agree_ax = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    labels = order_losses({r.student for r in records})
    colours = _colours(labels)
    for label in labels:
        by_frac: dict[float, list[dict]] = defaultdict(list)
        for record in records:
            if record.student == label:
                for row in record.trace:
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
