"""Results as data: every finished result as a pandas DataFrame, and paired comparisons of two runs.

    import w2slab
    df = w2slab.load_results("runs")                 # a run root, or one experiment folder of `w2s run`
    df.groupby(["loss", "strong_train.lr"]).pgr.mean()
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
from w2slab.results import ExperimentResult, read_results
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
    """What two results must share to be compared example by example: the test set (dataset, data seed, n_test,
    data file fields) and the seed, and the student (loss and method label)."""
    config = result.config or {}
    return (result.dataset, config.get("data_seed", 0), config.get("n_test"), config.get("max_ctx"),
            config.get("truncation"), result.seed, result.loss)


def compare(a: str | Path, b: str | Path, *, role: str = "student", n_boot: int = 2000) -> list[dict[str, Any]]:
    """Paired differences ``B - A`` of ``role``'s test accuracy (student, ceiling or weak), per student label,
    pooled over the seeds both hold; the 95% interval resamples test examples within each seed.

    Results pair when they share a test set, a seed and a student label (:func:`pairing_key`); when A and B each
    hold one student label (a run of xent against a run of logconf), those two pair.
    """
    from w2slab.report.methods import pooled_difference

    left, right = read_results(Path(a)), read_results(Path(b))
    if {r.loss for r in left} != {r.loss for r in right} and len({r.loss for r in left}) == 1 \
            and len({r.loss for r in right}) == 1:
        label = f"{left[0].loss} -> {right[0].loss}"
        left_keys = {pairing_key(r)[:-1] + (label,): r for r in left}
        right_keys = {pairing_key(r)[:-1] + (label,): r for r in right}
    else:
        left_keys = {pairing_key(r): r for r in left}
        right_keys = {pairing_key(r): r for r in right}
    shared = sorted(set(left_keys) & set(right_keys), key=str)
    if not shared:
        raise W2SError(f"compare: no result of {a} shares a test set, seed and student with one of {b}; compare "
                       "runs of one dataset, data_seed and n_test (seeds and students in common)")
    diffs: dict[tuple, list] = defaultdict(list)
    for key in shared:
        x, y = left_keys[key], right_keys[key]
        diffs[(key[0], key[-1])].append(y.correct(role).astype(float) - x.correct(role).astype(float))
    rows = []
    for (dataset, student), per_seed in sorted(diffs.items()):
        mean, (low, high) = pooled_difference(per_seed, n_boot=n_boot)
        rows.append({"dataset": dataset, "student": student, "role": role, "n_seeds": len(per_seed),
                     "n_examples": int(sum(len(d) for d in per_seed)), "diff_mean": mean, "diff_lo": low,
                     "diff_hi": high, "excludes_zero": bool(low > 0 or high < 0)})
    return rows


def format_comparison(rows: list[dict[str, Any]], a: str, b: str) -> str:
    """The rows of :func:`compare` as a plain table."""
    lines = [f"B - A in test accuracy (A = {a}, B = {b}); 95% CI resamples test examples within each seed",
             f"{'dataset':16s} {'student':28s} {'role':8s} {'seeds':>5s} {'examples':>8s} {'diff':>7s}  95% CI"]
    for r in rows:
        ci = f"[{r['diff_lo']:+.3f}, {r['diff_hi']:+.3f}]" if math.isfinite(r["diff_lo"]) else "[n/a]"
        mark = "  *" if r["excludes_zero"] else ""
        lines.append(f"{r['dataset'][:16]:16s} {r['student'][:28]:28s} {r['role']:8s} {r['n_seeds']:5d} "
                     f"{r['n_examples']:8d} {r['diff_mean']:+7.3f}  {ci}{mark}")
    lines.append("* the interval excludes 0")
    return "\n".join(lines)
