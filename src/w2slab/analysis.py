"""Results as data: every finished result as a pandas DataFrame, and paired comparisons of two runs.

    import w2slab
    df = w2slab.load_results("runs")                 # a run root, or one experiment folder of `w2s run`
    df.groupby(["student", "strong_train.lr"]).pgr.mean()
    w2slab.compare("runs/a", "runs/b")               # what `w2s compare A B` prints

One row per result (one student of one experiment): the accuracies, PGR and its interval as ``pgr_ci_low`` /
``pgr_ci_high``, the diagnostics, and the experiment's config flattened into columns (``n_train``,
``strong_train.lr``, ...; nested mappings joined with dots). ``config_id`` groups the seeds of one setting.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from w2slab.errors import W2SError
from w2slab.results import ExperimentResult, read_results, test_set_difference
from w2slab.typed import flatten

#: Result fields that are per-example records or long lists: out of the DataFrame (read the result files for them).
BULKY = ("test_correct", "trace", "selection")


def result_row(result: ExperimentResult) -> dict[str, Any]:
    """One result as a flat row: its own fields first, then its config's (``resolved.*`` for what ran)."""
    data = dataclasses.asdict(result)
    config, resolved = data.pop("config"), data.pop("resolved")
    for name in BULKY:
        data.pop(name, None)
    for name in ("pgr_ci95", "gap_ci95"):
        low, high = data.pop(name)
        data[f"{name[:-5]}_ci_low"], data[f"{name[:-5]}_ci_high"] = low, high
    data["suspect"] = "; ".join(data["suspect"])
    # diagnostics.misfit, diagnostics.capa_weak_ceiling, ...
    data.update(flatten(data.pop("diagnostics", None) or {}, "diagnostics.", scalar_lists=True))
    data["config_id"] = result.config_id()
    for key, value in flatten(config, scalar_lists=True).items():
        data.setdefault(key, value)  # dataset, weak, strong and seed are the result's own
    data.update(flatten(resolved, "resolved.", scalar_lists=True))
    return data


def load_results(path: str | Path):
    """Every finished result under ``path`` (a run root or a ``w2s run`` experiment folder) as a DataFrame."""
    import pandas as pd

    return pd.DataFrame([result_row(result) for result in read_results(Path(path))])


def pairing_key(result: ExperimentResult) -> tuple:
    """What two results must share to be compared example by example: the test set
    (:meth:`ExperimentResult.test_set`: dataset and revision, data seed, n_test, data-file fields), the seed and
    the student (loss and method label)."""
    return (result.test_set(), result.seed, result.student)


def _refuse_mismatched_test_sets(left: list[ExperimentResult], right: list[ExperimentResult], a: str, b: str
                                 ) -> None:
    """One line where A and B hold a dataset, seed and student in common but measured on other test sets (another
    data revision, label field, n_test or size): pairing them example by example would compare apples and
    oranges, or fail on their lengths."""
    sets = {(r.dataset, r.seed, r.student): r.test_set() for r in left}
    for result in right:
        other = sets.get((result.dataset, result.seed, result.student))
        if other is not None and other != result.test_set():
            raise W2SError(f"compare: {a} and {b} hold {result.dataset} seed {result.seed} ({result.student}) on other "
                           f"test sets ({test_set_difference(other, result.test_set())}); compare runs of one data "
                           "revision and one test set")


def compare(a: str | Path, b: str | Path, *, role: str = "student") -> list[dict[str, Any]]:
    """Paired differences ``B - A`` of ``role``'s test accuracy (student, ceiling or weak), per student label,
    over the seeds both hold, with the interval and p-value of :func:`w2slab.stats.paired_results` (the
    benchmark's rule: seeds crossed with the shared test examples) and Holm / BH over the labels compared.

    Results pair when they share a test set, a seed and a student label (:func:`pairing_key`); when A and B each
    hold one student label (a run of xent against a run of logconf), those two pair.
    """
    from w2slab import stats

    left, right = read_results(Path(a)), read_results(Path(b))
    _refuse_mismatched_test_sets(left, right, str(a), str(b))
    if {r.student for r in left} != {r.student for r in right} and len({r.student for r in left}) == 1 \
            and len({r.student for r in right}) == 1:
        label = f"{left[0].student} -> {right[0].student}"
        left_keys = {pairing_key(r)[:-1] + (label,): r for r in left}
        right_keys = {pairing_key(r)[:-1] + (label,): r for r in right}
    else:
        left_keys = {pairing_key(r): r for r in left}
        right_keys = {pairing_key(r): r for r in right}
    shared = sorted(set(left_keys) & set(right_keys), key=lambda k: (str(k[0]), k[1], k[2]))
    if not shared:
        raise W2SError(f"compare: no result of {a} shares a test set, seed and student with one of {b}; compare "
                       "runs of one dataset, data_seed and n_test (seeds and students in common)")
    groups: dict[tuple, list[tuple[ExperimentResult, ExperimentResult]]] = defaultdict(list)
    for key in shared:
        groups[(left_keys[key].dataset, key[-1])].append((left_keys[key], right_keys[key]))
    entries = [((dataset, student), stats.paired_results([y for _, y in pairs], [x for x, _ in pairs], role))
               for (dataset, student), pairs in sorted(groups.items())]
    adjusted = stats.adjust_family(f"{a} vs {b}", [(s, "A", e) for (_, s), e in entries])
    rows = []
    for ((dataset, student), estimate), comparison in zip(entries, adjusted, strict=True):
        rows.append({"dataset": dataset, "student": student, "role": role, "n_seeds": estimate.seeds,
                     "n_examples": estimate.examples * estimate.seeds, "diff_mean": estimate.value,
                     "diff_lo": estimate.ci95[0], "diff_hi": estimate.ci95[1], "p": estimate.p,
                     "p_holm": comparison.p_holm, "q_bh": comparison.q_bh, "comparisons": comparison.comparisons,
                     "excludes_zero": bool(estimate.ci95[0] > 0 or estimate.ci95[1] < 0),
                     "claimed": comparison.claimed, "design": estimate.design})
    return rows


def format_comparison(rows: list[dict[str, Any]], a: str, b: str) -> str:
    """The rows of :func:`compare` as a plain table."""
    count = rows[0]["comparisons"] if rows else 0
    lines = [f"B - A in test accuracy (A = {a}, B = {b}); 95% CI over seeds and the shared test examples "
             f"(w2slab.stats); Holm over the {count} comparisons",
             f"{'dataset':16s} {'student':28s} {'role':8s} {'seeds':>5s} {'examples':>8s} {'diff':>7s}  "
             f"{'95% CI':18s} {'p':>7s} {'Holm p':>7s}"]
    for r in rows:
        ci = f"[{r['diff_lo']:+.3f}, {r['diff_hi']:+.3f}]" if math.isfinite(r["diff_lo"]) else "[n/a]"
        mark = "  *" if r["claimed"] else ""
        lines.append(f"{r['dataset'][:16]:16s} {r['student'][:28]:28s} {r['role']:8s} {r['n_seeds']:5d} "
                     f"{r['n_examples']:8d} {r['diff_mean']:+7.3f}  {ci:18s} {r['p']:7.4f} {r['p_holm']:7.4f}{mark}")
    lines.append("* Holm-adjusted p < .05 over the comparisons printed")
    return "\n".join(lines)
