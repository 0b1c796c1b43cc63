"""The suite's tables from its records: the ladder (ground-truth accuracies and gaps), the W2S table, the
leaderboard and the claims across tasks. Every interval and correction comes from :mod:`w2slab.stats`.

**Which pairs count.** A pair of a task has a gap when the one gap rule says so (:func:`w2slab.stats.shows_pgr`:
at least half the seeds' own gap intervals and the pooled gap's exclude 0), its ceiling converged on every seed
and its weak model is above chance: a SUSPECT ceiling or a weak model at chance is "no W2S experiment", and such a
pair is left out of every W2S statistic (never averaged in). A task has a gap when one of its pairs has.

**One row per task.** The leaderboard reads each task at its *primary pair*: among its pairs with a gap, the one
with the largest gap on the validation split (xent's runs; chosen without reading a test number). Its family is
the tasks' primary comparisons, Holm-corrected; the pooled row is the mean of the per-task differences with the
t-interval over tasks and a sign test (tasks the unit).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable

import numpy as np

from w2slab import stats
from w2slab.bench import published
from w2slab.bench.suite import BASELINE, part_of, task_of
from w2slab.formatting import number, p_short, signed
from w2slab.report.methods import matched_baseline
from w2slab.results import ExperimentResult, chance_accuracy, unconverged_ceiling

Group = dict[tuple[str, str, str], list[ExperimentResult]]  # (task, weak, strong) -> results of one student


def _task(result: ExperimentResult) -> str:
    """The suite task a result belongs to (:func:`w2slab.bench.suite.task_of`, which reads its dataset)."""
    return task_of({"dataset": result.dataset})


def _part(result: ExperimentResult) -> str:
    """``probe`` or ``finetune`` (:func:`w2slab.bench.suite.part_of`, which reads its config)."""
    return part_of({"config": result.config})


def by_pair(records: list[ExperimentResult], student: str) -> Group:
    """``student``'s results per (task, weak, strong), seeds in order."""
    out: Group = defaultdict(list)
    for record in sorted(records, key=lambda r: r.seed):
        if record.student == student:
            out[(_task(record), record.weak, record.strong)].append(record)
    return out


def unusable(group: list[ExperimentResult], weak: stats.Estimate, ceiling: stats.Estimate) -> str:
    """Why a pair's runs make no W2S experiment ('' when they do): a ceiling whose accuracy interval over the seeds
    (``ceiling``) reaches chance (the strong model cannot learn the task at this size, however long it trains), a
    ceiling that did not converge on some seed (:func:`w2slab.results.unconverged_ceiling`, the rule of every
    table), or a weak model whose interval (``weak``) reaches chance. Chance is the test set's most frequent class
    (:func:`w2slab.results.chance_accuracy`, the rule ``w2s run`` prints by)."""
    chance = float(np.mean([chance_accuracy(r) for r in group]))
    if ceiling.ci95[0] <= chance:
        return (f"strong model at chance ({ceiling.value:.3f} [{ceiling.ci95[0]:.3f}, {ceiling.ci95[1]:.3f}], "
                f"chance {chance:.3f}): it cannot learn this task at this size")
    bad_ceiling = sorted({r.seed for r in group if unconverged_ceiling(r.suspect)})
    if bad_ceiling:
        return f"ceiling did not converge (seeds {', '.join(map(str, bad_ceiling))})"
    if weak.ci95[0] <= chance:
        return f"weak model at chance ({weak.value:.3f} [{weak.ci95[0]:.3f}, {weak.ci95[1]:.3f}])"
    return ""


def validation_gap(group: list[ExperimentResult]) -> float:
    """Mean over seeds of ceiling - weak accuracy on the validation split (NaN when not recorded)."""
    gaps = [r.validation["ceiling_accuracy"] - r.validation["weak_accuracy"] for r in group
            if r.validation.get("ceiling_accuracy") is not None]
    return float(np.mean(gaps)) if gaps else math.nan


def ladder_rows(records: list[ExperimentResult]) -> list[dict]:
    """Per (part, task, pair): both models' ground-truth accuracies, the gap with its interval, whether it has a
    W2S experiment (and why not)."""
    rows = []
    for part in ("probe", "finetune"):
        plain = by_pair([r for r in records if _part(r) == part and (r.method or "none") == "none"], BASELINE)
        for (task, weak, strong), group in sorted(plain.items()):
            pooled = stats.pooled_pgr(group)
            if pooled is None:
                continue
            w, c = stats.role_estimate(group, "weak"), stats.role_estimate(group, "ceiling")
            why = unusable(group, w, c) or ("" if pooled.shown else
                                         f"no gap ({pooled.seeds_with_gap} of {pooled.seeds} seeds)")
            rows.append({"part": part, "task": task, "weak": weak, "strong": strong, "seeds": len(group),
                         "test_size": int(group[0].test_size), "weak_acc": w.value, "weak_lo": w.ci95[0],
                         "weak_hi": w.ci95[1], "ceiling_acc": c.value, "ceiling_lo": c.ci95[0],
                         "ceiling_hi": c.ci95[1], "gap": pooled.gap.value, "gap_lo": pooled.gap.ci95[0],
                         "gap_hi": pooled.gap.ci95[1], "seeds_with_gap": pooled.seeds_with_gap,
                         "validation_gap": validation_gap(group), "w2s": not why, "why_not": why})
    return rows


def primary_pair(pairs: list[dict]) -> dict:
    """The task's pair with the largest validation gap (ties: the first on the ladder)."""
    return max(pairs, key=lambda row: (row["validation_gap"] if math.isfinite(row["validation_gap"]) else -1.0))


def _paired(records: list[ExperimentResult], student: str
            ) -> tuple[list[ExperimentResult], list[ExperimentResult], str] | None:
    """The student's results and its matched baseline's, seed by seed, with the baseline's label."""
    mine = sorted((r for r in records if r.student == student), key=lambda r: r.seed)
    if not mine:
        return None
    base_label = matched_baseline(mine[0], BASELINE)
    if base_label is None:
        return None
    base = {r.seed: r for r in records if r.student == base_label}
    mine = [r for r in mine if r.seed in base]
    return (mine, [base[r.seed] for r in mine], base_label) if mine else None


def w2s_rows(records: list[ExperimentResult], student: str, part: str, ladder: list[dict]) -> list[dict]:
    """Per (task, pair) with a W2S experiment: xent's and the student's accuracy and PGR, and the student against
    its matched baseline, Holm over every such pair of the part (family ``<part>: <student> vs its baseline``)."""
    usable = {(row["task"], row["weak"], row["strong"]): row for row in ladder if row["part"] == part and row["w2s"]}
    groups: Group = defaultdict(list)
    for record in records:
        key = (_task(record), record.weak, record.strong)
        if _part(record) == part and key in usable:
            groups[key].append(record)
    rows, entries = [], []
    for key, group in sorted(groups.items()):
        paired = _paired(group, student)
        row = {**usable[key], "student": student}
        for label, name in ((BASELINE, "xent"), (student, "student")):
            mine = sorted((r for r in group if r.student == label), key=lambda r: r.seed)
            pooled = stats.pooled_pgr(mine) if mine else None
            if pooled is not None:
                acc = stats.role_estimate(mine, "student")
                row.update({f"{name}_acc": acc.value, f"{name}_pgr": pooled.pgr, f"{name}_pgr_lo": pooled.ci95[0],
                            f"{name}_pgr_hi": pooled.ci95[1],
                            # students flagged SUSPECT (e.g. "did not converge"): printed beside their numbers
                            f"{name}_suspect": sum(any(reason.startswith("student") for reason in r.suspect)
                                                   for r in mine)})
        if paired is not None:
            mine, base, base_label = paired
            row["baseline"] = base_label
            entries.append((row, stats.paired_results(mine, base)))
        rows.append(row)
    family = f"{part}: {student} vs its matched baseline, every (task, pair) with a gap"
    comparisons = stats.adjust_family(family, [(student, row["baseline"], e) for row, e in entries])
    for (row, _), comparison in zip(entries, comparisons, strict=True):
        row.update(_comparison_fields(comparison))
    return rows


def _comparison_fields(comparison: stats.Comparison) -> dict:
    e = comparison.estimate
    return {"family": comparison.family, "comparisons": comparison.comparisons, "diff": e.value, "se": e.se, "df": e.df,
            "diff_lo": e.ci95[0], "diff_hi": e.ci95[1], "p": e.p, "p_holm": comparison.p_holm,
            "q_bh": comparison.q_bh, "mdd": comparison.mdd, "claimed": comparison.claimed}


def leaderboard(w2s: list[dict], student: str, part: str) -> tuple[list[dict], dict]:
    """One row per task with a gap (its primary pair, Holm over the tasks) and the pooled row across tasks."""
    by_task: dict[str, list[dict]] = defaultdict(list)
    for row in w2s:
        by_task[row["task"]].append(row)
    primaries = [dict(primary_pair(rows)) for _, rows in sorted(by_task.items())]
    compared = [row for row in primaries if "diff" in row]
    family = f"{part}: {student} vs its matched baseline, one primary pair per task"
    # the primary rows' own estimates, corrected again over this family (the tasks)
    estimates = [stats.Estimate(row["diff"], row["se"], row["df"], (row["diff_lo"], row["diff_hi"]), row["p"], 0, 0,
                                "") for row in compared]
    for row, comparison in zip(compared, stats.adjust_family(family, [(student, row["baseline"], e)
                                                                      for row, e in zip(compared, estimates,
                                                                                        strict=True)]),
                               strict=True):
        row.update({"family": family, "comparisons": comparison.comparisons, "p_holm": comparison.p_holm,
                    "q_bh": comparison.q_bh, "mdd": comparison.mdd, "claimed": comparison.claimed})
    return primaries, pooled_row(primaries)


def pooled_row(primaries: list[dict]) -> dict:
    """Across tasks (each task one value): the mean difference with its t-interval over tasks, the sign test, and
    the median PGR of xent and of the student with their order-statistic intervals."""
    diffs = [row["diff"] for row in primaries if "diff" in row]
    mean = stats.mean_over_tasks(diffs)
    wins, decided, p_sign = stats.sign_test(diffs)
    out = {"tasks": len(primaries), "compared": len(diffs), "diff": mean.value, "diff_lo": mean.ci95[0],
           "diff_hi": mean.ci95[1], "p": mean.p, "wins": wins, "decided": decided, "p_sign": p_sign}
    for name in ("xent", "student"):
        values = [row[f"{name}_pgr"] for row in primaries if f"{name}_pgr" in row]
        median = stats.median_over_tasks(values)
        out.update({f"{name}_median_pgr": median.value, f"{name}_median_lo": median.ci95[0],
                    f"{name}_median_hi": median.ci95[1], f"{name}_median_method": median.method,
                    f"{name}_pgr_above_0": sum(row[f"{name}_pgr_lo"] > 0 for row in primaries
                                               if f"{name}_pgr" in row)})
    return out


def interval(row: dict, key: str, lo: str, hi: str, digits: int = 3, sign: bool = False) -> str:
    """``row[key] [row[lo], row[hi]]`` to ``digits`` decimals (with their signs: ``sign``); empty where the row has
    no ``key`` (a pair without that student)."""
    if key not in row:
        return ""
    write = signed if sign else number
    return f"{write(row[key], digits)} [{write(row[lo], digits)}, {write(row[hi], digits)}]"


def markdown_ladder(ladder: list[dict]) -> list[str]:
    lines = ["| part | task | pair | seeds | test n | weak acc | ceiling acc | gap [95% CI] | validation gap | "
             "W2S experiment |", "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for row in ladder:
        lines.append(f"| {row['part']} | {row['task']} | {row['weak']} -> {row['strong']} | {row['seeds']} | "
                     f"{row['test_size']} | {interval(row, 'weak_acc', 'weak_lo', 'weak_hi')} | "
                     f"{interval(row, 'ceiling_acc', 'ceiling_lo', 'ceiling_hi')} | "
                     f"{interval(row, 'gap', 'gap_lo', 'gap_hi')} | {number(row['validation_gap'])} | "
                     f"{'yes' if row['w2s'] else row['why_not']} |")
    return lines


def markdown_w2s(rows: list[dict], student: str) -> list[str]:
    lines = [f"| task | pair | weak | ceiling | xent acc | xent PGR | {student} acc | {student} PGR | baseline | "
             "difference [95% CI] | p | Holm p | MDD | SUSPECT students (xent, student) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        star = " *" if row.get("claimed") else ""
        lines.append(f"| {row['task']} | {row['weak']} -> {row['strong']} | {number(row['weak_acc'])} | "
                     f"{number(row['ceiling_acc'])} | {number(row.get('xent_acc'))} | "
                     f"{interval(row, 'xent_pgr', 'xent_pgr_lo', 'xent_pgr_hi', 2)} | "
                     f"{number(row.get('student_acc'))} | "
                     f"{interval(row, 'student_pgr', 'student_pgr_lo', 'student_pgr_hi', 2)} | "
                     f"{row.get('baseline', '')} | {interval(row, 'diff', 'diff_lo', 'diff_hi', 3, True)}{star} | "
                     f"{p_short(row.get('p'))} | {p_short(row.get('p_holm'))} | {number(row.get('mdd'))} | "
                     f"{row.get('xent_suspect', 0)}, {row.get('student_suspect', 0)} of {row['seeds']} |")
    return lines


def markdown_leaderboard(primaries: list[dict], pooled: dict, student: str) -> list[str]:
    count = next((row["comparisons"] for row in primaries if "comparisons" in row), 0)
    lines = [f"{student} against its matched baseline, one row per task with a gap (its primary pair, chosen on "
             f"validation); family: {count} comparisons, Holm-corrected. `*`: Holm p < .05.", "",
             "| task | primary pair | baseline | xent PGR | student PGR | difference [95% CI] | p | Holm p | MDD | "
             "published PGR xent / logconf |", "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for row in primaries:
        star = " *" if row.get("claimed") else ""
        lines.append(f"| {row['task']} | {row['weak']} -> {row['strong']} | {row.get('baseline', '')} | "
                     f"{interval(row, 'xent_pgr', 'xent_pgr_lo', 'xent_pgr_hi', 2)} | "
                     f"{interval(row, 'student_pgr', 'student_pgr_lo', 'student_pgr_hi', 2)} | "
                     f"{interval(row, 'diff', 'diff_lo', 'diff_hi', 3, True)}{star} | {p_short(row.get('p'))} | "
                     f"{p_short(row.get('p_holm'))} | {number(row.get('mdd'))} | {published.beside(row['task'])} |")
    lines.append(f"| **pooled ({pooled['compared']} tasks)** | | | median {number(pooled['xent_median_pgr'], 2)} "
                 f"[{number(pooled['xent_median_lo'], 2)}, {number(pooled['xent_median_hi'], 2)}] | median "
                 f"{number(pooled['student_median_pgr'], 2)} [{number(pooled['student_median_lo'], 2)}, "
                 f"{number(pooled['student_median_hi'], 2)}] | {signed(pooled['diff'])} "
                 f"[{signed(pooled['diff_lo'])}, {signed(pooled['diff_hi'])}] | {p_short(pooled['p'])} "
                 f"| sign test: {pooled['wins']} of {pooled['decided']}, p {p_short(pooled['p_sign'])} | | "
                 f"Burns et al.: median .25 / .80 |")
    lines += ["", f"Published numbers: {published.NOTES}."]
    return lines


def claims(pooled: dict, student: str) -> list[dict]:
    """The paper's claims across tasks, tasks the unit: (a) PGR > 0 and the median PGR; (c) the student against
    xent (wins, sign test, pooled difference)."""
    n = pooled["tasks"]
    return [
        {"claim": "(a) naive W2S: xent's PGR > 0", "result": f"{pooled['xent_pgr_above_0']} of {n} tasks with a gap "
         f"(PGR interval above 0)", "median": f"{number(pooled['xent_median_pgr'], 2)} "
         f"[{number(pooled['xent_median_lo'], 2)}, {number(pooled['xent_median_hi'], 2)}]",
         "interval": pooled["xent_median_method"]},
        {"claim": f"(a) {student}'s PGR > 0", "result": f"{pooled['student_pgr_above_0']} of {n} tasks",
         "median": f"{number(pooled['student_median_pgr'], 2)} [{number(pooled['student_median_lo'], 2)}, "
         f"{number(pooled['student_median_hi'], 2)}]", "interval": pooled["student_median_method"]},
        {"claim": f"(c) {student} beats its matched baseline", "result": f"wins {pooled['wins']} of "
         f"{pooled['decided']} tasks, sign test p {p_short(pooled['p_sign'])}", "median": "",
         "interval": f"pooled difference {signed(pooled['diff'])} [{signed(pooled['diff_lo'])}, "
         f"{signed(pooled['diff_hi'])}] (t over tasks), p {p_short(pooled['p'])}"},
    ]


def markdown_claims(rows: list[dict]) -> list[str]:
    lines = ["| claim | result | median PGR [95% CI] | interval / pooled |", "|---|---|---|---|"]
    lines += [f"| {r['claim']} | {r['result']} | {r['median']} | {r['interval']} |" for r in rows]
    return lines


def summarize(records: list[ExperimentResult], student: str, parts: tuple[str, ...] = ("probe", "finetune"),
              echo: Callable[[str], None] | None = None) -> dict:
    """Every table of a bench run: ``{"ladder", part: {"w2s", "leaderboard", "pooled", "claims"}}``."""
    ladder = ladder_rows(records)
    out: dict = {"ladder": ladder}
    for part in parts:
        if not any(row["part"] == part for row in ladder):
            continue
        rows = w2s_rows(records, student, part, ladder)
        primaries, pooled = leaderboard(rows, student, part)
        out[part] = {"w2s": rows, "leaderboard": primaries, "pooled": pooled, "claims": claims(pooled, student)}
    return out


def markdown(summary: dict, student: str) -> str:
    """The tables as Markdown (what ``w2s bench`` prints and ``results/suite/README.md`` holds)."""
    lines = ["## Ladder: ground-truth accuracy and gap per task and pair", "",
             "Accuracies and gaps over seeds and test examples (w2slab.stats; crossed: the seeds share the test "
             "set). A pair is a W2S experiment only with a gap (the gap rule), a converged ceiling and a weak model "
             "above chance.", "", *markdown_ladder(summary["ladder"]), ""]
    without = sorted({r["task"] for r in summary["ladder"]} - {r["task"] for r in summary["ladder"] if r["w2s"]})
    if without:
        lines += [f"Tasks without a W2S experiment on any pair (left out of every W2S statistic): "
                  f"{', '.join(without)}.", ""]
    for part in ("probe", "finetune"):
        if part not in summary:
            continue
        tables = summary[part]
        lines += [f"## {part}: W2S per task and pair", "", *markdown_w2s(tables["w2s"], student), "",
                  f"## {part}: leaderboard", "", *markdown_leaderboard(tables["leaderboard"], tables["pooled"],
                                                                       student), "",
                  f"## {part}: claims across tasks (tasks the unit)", "", *markdown_claims(tables["claims"]), ""]
    return "\n".join(lines) + "\n"
