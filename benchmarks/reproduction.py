"""The paper's qualitative claims (Burns et al. 2023), checked on the methods benchmark's runs.

    python benchmarks/methods.py          # first: the runs (probe setting, sst2_sentences, 3 pairs, 10 seeds)
    python benchmarks/reproduction.py     # then: the claims, their table and figures in results/sst2_claims/
    python benchmarks/reproduction.py --records results/methods_field/records.jsonl.gz --out /tmp/claims
                                          # or: from a methods benchmark's committed outcomes, without training

Every number comes from ``w2slab.stats``. Each seed draws its own data (``data_seed`` = seed), so the seeds are
*nested* (each has its own test set) and an interval is a t-interval over seeds; where the records share one
test set the seeds are *crossed* with its examples and the interval covers both (the table says which, per row).
The test set is read once: nothing here is chosen on it (the step of claim (d) is a constant fixed before looking
at any curve; the pairs of (c) are ranked by their gap, not by the claimed effect). Each claim states the effect
it should detect; its power against that effect and its minimum detectable difference (MDD, 80% power) are
printed beside it. Verdicts:

- **holds** / **does not hold**: the 95% interval lies on the claimed / the other side of 0;
- **no detectable difference**: the interval covers 0 and the claim had power >= .5 against its effect;
- **underpowered: not testable with this ladder**: the interval covers 0 and the power was below .5, so the
  null result says nothing (it was close to guaranteed);
- **not testable with this ladder**: the claim needs more rungs with a gap than the ladder has (the reason is
  printed);
- **not tested: no real gap**: the pair fails the gap rule (``stats.shows_pgr``): its PGR divides noise by noise;
- **not tested: not recorded**: the records lack what the claim reads (e.g. traces without ``imitation_test``).

Claims:

(a) PGR > 0 for every pair with a real gap (the xent student beats its teacher): the pooled PGR over all seeds,
    Fieller's interval (``stats.pgr_estimate``), tested only where the gap rule shows it; se and power from the
    delta method against a PGR of 0.2;
(b) PGR grows with the strong model's size along the ladder (weak minilm-l3; strong minilm-l6, then mpnet-base):
    PGR(large) - PGR(small) by the delta method (``stats.function_estimate``; seeds and examples paired), power
    against 0.2 PGR; testable only when both rungs have a gap (a trend needs at least two rungs with one);
(c) the auxiliary confidence loss helps where the gap is large, and more than where it is small: PGR(logconf) -
    PGR(xent) at the largest gap (claim: > 0), at the smallest (reported), and their difference (claim: > 0),
    each by the delta method on paired records, power against 0.1 PGR;
(d) with longer training on weak labels the student imitates its teacher's errors: per seed, the xent student's
    ``imitation_test`` (of the test examples the weak model gets wrong, the share where the student makes the
    weak model's error) at the final step minus at the trace point nearest 50% of training (fixed before
    looking), a t-interval over seeds (claim: > 0, power against 0.05); beside it test accuracy, final minus
    the same step (reported, against 0.01).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from w2slab.results import ExperimentResult

PAIRS = (("minilm-l3", "minilm-l6"), ("minilm-l3", "mpnet-base"), ("minilm-l6", "mpnet-base"))
LADDER = (("minilm-l3", "minilm-l6"), ("minilm-l3", "mpnet-base"))  # one weak model, growing strong ones
ROLES = ("weak", "student", "ceiling")

#: The step claim (d) compares the final step with: the trace point nearest this fraction of training. Fixed
#: before looking at any curve (the earlier rule, the argmax of the seed-averaged test curve, chose its step on
#: the very numbers it then tested, and is biased towards a drop).
MID_TRAINING = 0.5

#: The effect each claim should detect, stated before the run: power and MDD are against these.
EFFECTS = {
    "a": 0.2,       # PGR: a small positive PGR
    "b": 0.2,       # PGR(large) - PGR(small)
    "c": 0.1,       # PGR(logconf) - PGR(xent)
    "c_diff": 0.1,  # (logconf - xent at the largest gap) - (at the smallest)
    "d": 0.05,      # imitation of the weak model's errors, final - at MID_TRAINING
    "d_acc": 0.01,  # test accuracy, final - at MID_TRAINING
}
#: Below this power against its stated effect a null result is labelled underpowered, not "no difference".
MIN_POWER = 0.5

HOLDS, FAILS, NULL = "holds", "does not hold", "no detectable difference"
UNDERPOWERED = "underpowered: not testable with this ladder"
NOT_TESTABLE = "not testable with this ladder"
NO_GAP = "not tested: no real gap"
NOT_RECORDED = "not tested: not recorded"
UNCORRECTED = "holds before correction only"
VERDICTS = (HOLDS, FAILS, NULL, UNDERPOWERED, NOT_TESTABLE, NO_GAP, NOT_RECORDED, UNCORRECTED)
#: Rows that only report (the smallest gap's logconf gain, the accuracy beside imitation) test no claim.
REPORTED = ("reported",)


def correct_claims(rows: list[dict]) -> list[dict]:
    """Holm over the claims tested (the rows with an estimate whose text does not say ``reported``): each gets
    its two-sided p and Holm-adjusted p, and a claim that holds only before the correction says so."""
    from scipy import stats as scipy_stats

    from w2slab import stats

    tested_rows = [r for r in rows if math.isfinite(r.get("se", math.nan)) and r["se"] > 0
                   and not any(word in r["what"] for word in REPORTED)]
    for r in rows:
        r["p"], r["p_holm"] = math.nan, math.nan
        if any(word in r["what"] for word in REPORTED) and r["verdict"] in (HOLDS, FAILS):
            r["note"] = "reported beside a claim, not tested: no correction" + (f"; {r['note']}" if r["note"] else "")
            r["verdict"] = UNCORRECTED
    ps = [float(2 * scipy_stats.t.sf(abs(r["value"]) / r["se"], max(r["df"], 1.0))) for r in tested_rows]
    for r, p, adjusted in zip(tested_rows, ps, stats.holm(ps), strict=True):
        r["p"], r["p_holm"], r["claims"] = p, adjusted, len(tested_rows)
        if r["verdict"] in (HOLDS, FAILS) and adjusted >= stats.ALPHA:
            r["note"] = (f"{r['verdict']} before correction; Holm p {adjusted:.3f} over the {len(tested_rows)} "
                         "claims tested" + (f"; {r['note']}" if r["note"] else ""))
            r["verdict"] = UNCORRECTED
    return rows

RESAMPLES = {
    "nested": "seeds (nested: t over seeds)",
    "crossed": "seeds and test examples (crossed: shared test set)",
    "examples": "test examples (one seed)",
}


def verdict(low: float, high: float, power: float, positive: bool = True) -> str:
    """``holds`` when the interval is on the claimed side of 0, ``does not hold`` on the other; otherwise
    ``underpowered...`` where the power against the claim's effect is below :data:`MIN_POWER`, else ``no
    detectable difference``."""
    if math.isfinite(low) and math.isfinite(high):
        if (low > 0) if positive else (high < 0):
            return HOLDS
        if (high < 0) if positive else (low > 0):
            return FAILS
    if math.isfinite(power) and power < MIN_POWER:
        return UNDERPOWERED
    return NULL


def groups_of(records: list[ExperimentResult]) -> dict[tuple, list[ExperimentResult]]:
    """(weak, strong, loss) -> its results, by seed."""
    out: dict[tuple, list[ExperimentResult]] = defaultdict(list)
    for r in sorted(records, key=lambda r: r.seed):
        out[(r.weak, r.strong, r.student)].append(r)
    return dict(out)


def aligned(named: dict[str, list[ExperimentResult]]) -> tuple[dict[str, list[np.ndarray]], list[int], bool]:
    """Per-example correctness ``"<name>:<role>"`` -> one array per seed, over the seeds every group has; the
    seeds and whether they share one test set (crossed) or not (nested). Where a seed's groups were tested on
    test sets of different sizes, each array is reduced to its mean (exact for the nested t-interval)."""
    from w2slab import stats

    by_seed = {name: {r.seed: r for r in group} for name, group in named.items()}
    seeds = sorted(set.intersection(*(set(s) for s in by_seed.values())))
    every = [by_seed[name][s] for name in named for s in seeds]
    shared = stats.shares_test_set(every)
    arrays: dict[str, list[np.ndarray]] = {f"{name}:{role}": [] for name in named for role in ROLES}
    for s in seeds:
        outcomes = {name: {role: by_seed[name][s].correct(role) for role in ROLES} for name in named}
        sizes = {len(v) for o in outcomes.values() for v in o.values()}
        for name, o in outcomes.items():
            for role in ROLES:
                values = o[role].astype(float)
                arrays[f"{name}:{role}"].append(values if len(sizes) == 1 else np.array([values.mean()]))
    return arrays, seeds, shared


def pgr_of(means: dict[str, float], name: str) -> float:
    """PGR of group ``name`` from the means of its roles."""
    gap = means[f"{name}:ceiling"] - means[f"{name}:weak"]
    return (means[f"{name}:student"] - means[f"{name}:weak"]) / gap if gap > 0 else math.nan


def pgr_of_group(group: list[ExperimentResult]):
    """``stats.pgr_estimate`` over every seed of a group (none dropped), shown under the one gap rule."""
    from w2slab import stats

    return stats.pgr_estimate([{role: r.correct(role) for role in ROLES} for r in group],
                              shared_test_set=stats.shares_test_set(group))


def row(claim: str, what: str, *, effect: float, seeds: str, verdict_text: str, value: float = math.nan,
        ci95: tuple[float, float] = (math.nan, math.nan), se: float = math.nan, df: float = math.nan,
        power: float = math.nan, mdd: float = math.nan, design: str = "", note: str = "", **extra) -> dict:
    """One claim of the table; ``verdict`` is one of :data:`VERDICTS`."""
    assert verdict_text in VERDICTS, verdict_text
    return {"claim": claim, "what": what, "value": value, "ci95": [float(ci95[0]), float(ci95[1])], "se": se,
            "df": df, "power": power, "effect": effect, "mdd": mdd, "seeds": seeds,
            "resamples": RESAMPLES.get(design, ""), "design": design, "verdict": verdict_text, "note": note,
            **extra}


def tested(claim: str, what: str, estimate, effect: float, *, positive: bool = True,
           ci95: tuple[float, float] | None = None, value: float | None = None, **extra) -> dict:
    """A row from a ``stats.Estimate`` (its interval unless ``ci95`` is given, e.g. Fieller's), with its power
    against ``effect`` and its MDD, and the verdict they give."""
    from w2slab import stats

    low, high = ci95 if ci95 is not None else estimate.ci95
    power = stats.power(estimate.se, estimate.df, effect)
    return row(claim, what, effect=effect, seeds=extra.pop("seeds", str(estimate.seeds)),
               verdict_text=verdict(low, high, power, positive), value=estimate.value if value is None else value,
               ci95=(low, high), se=estimate.se, df=estimate.df, power=power, mdd=estimate.mdd(),
               design=estimate.design, **extra)


def function_of(function: Callable[[dict], float], named: dict[str, list[ExperimentResult]]):
    """``stats.function_estimate`` of ``function`` (of the role means ``"<name>:<role>"``) over the seeds every
    named group has, paired by seed and test example."""
    from w2slab import stats

    arrays, _, shared = aligned(named)
    return stats.function_estimate(function, arrays, shared_test_set=shared)


def gap_text(pgr) -> str:
    return f"{pgr.seeds_with_gap} of {pgr.seeds} with a gap"


def pgr_positive(group: list[ExperimentResult], where: str, claim: str = "a") -> dict:
    """Claim (a) on one pair: PGR > 0 where the gap rule shows it (Fieller's interval; se and power by the delta
    method), else not tested."""
    pgr = pgr_of_group(group)
    what = f"PGR > 0, {where} (xent)"
    if not pgr.shown:
        return row(claim, what, effect=EFFECTS["a"], seeds=gap_text(pgr), verdict_text=NO_GAP,
                   note=f"gap {pgr.gap.value:+.3f} [{pgr.gap.ci95[0]:+.3f}, {pgr.gap.ci95[1]:+.3f}]: the claim is for "
                   "pairs with a real gap")
    delta = function_of(lambda m: pgr_of(m, "x"), {"x": group})
    return tested(claim, what, delta, EFFECTS["a"], ci95=pgr.ci95, value=pgr.pgr, seeds=gap_text(pgr),
                  note="Fieller's interval; se and power by the delta method")


def logconf_gain(xent: list[ExperimentResult], logconf: list[ExperimentResult], what: str, effect: float,
                 **extra) -> dict:
    """PGR(logconf) - PGR(xent) on one pair, paired by seed and example (delta method)."""
    estimate = function_of(lambda m: pgr_of(m, "logconf") - pgr_of(m, "xent"), {"logconf": logconf, "xent": xent})
    return tested("c", what, estimate, effect, **extra)


def claims(records: list[ExperimentResult]) -> tuple[list[dict], dict]:
    """The rows of claims (a)-(d) on the probe part's records (method ``none``), and what the figures plot."""
    groups = groups_of(records)
    xent = {pair: groups[(*pair, "xent")] for pair in PAIRS if (*pair, "xent") in groups}
    pgrs = {pair: pgr_of_group(group) for pair, group in xent.items()}
    rows: list[dict] = []
    figures: dict = {"ladder": {pair: pgrs.get(pair) for pair in PAIRS}}

    # (a) PGR > 0 on every pair with a real gap
    for pair in PAIRS:
        where = f"{pair[0]} -> {pair[1]}"
        if pair not in xent:
            rows.append(row("a", f"PGR > 0, {where} (xent)", effect=EFFECTS["a"], seeds="0",
                            verdict_text=NOT_RECORDED, note="no xent records of this pair"))
            continue
        rows.append(pgr_positive(xent[pair], where))

    # (b) PGR along the ladder: the larger strong model minus the smaller one; only with a gap on both rungs
    what = f"PGR({LADDER[1][1]}) - PGR({LADDER[0][1]}), weak {LADDER[0][0]}, xent"
    without = [pair for pair in LADDER if pair not in pgrs or not pgrs[pair].shown]
    if without:
        reasons = ", ".join(f"{w} -> {s}" + (f" ({gap_text(pgrs[(w, s)])})" if (w, s) in pgrs else " (not run)")
                            for w, s in without)
        rows.append(row("b", what, effect=EFFECTS["b"], seeds="", verdict_text=NOT_TESTABLE,
                        note=f"no real gap on {reasons}; a trend in the strong model's size needs at least two "
                        f"rungs with a gap, and this ladder has {len(LADDER)} rungs, {len(LADDER) - len(without)} "
                        "with a gap"))
    else:
        estimate = function_of(lambda m: pgr_of(m, "large") - pgr_of(m, "small"),
                               {"small": xent[LADDER[0]], "large": xent[LADDER[1]]})
        rows.append(tested("b", what, estimate, EFFECTS["b"], note="delta method, paired by seed and example"))

    # (c) logconf - xent at the largest and the smallest gap, and whether the gain is larger at the largest
    gaps = {pair: pgrs[pair].gap.value for pair in PAIRS if pair in pgrs and pgrs[pair].shown
            and (*pair, "logconf") in groups}
    if not gaps:
        rows.append(row("c", "PGR(logconf) - PGR(xent) where the gap is large", effect=EFFECTS["c"], seeds="",
                        verdict_text=NO_GAP, note="no pair with both losses has a real gap"))
    else:
        largest, smallest = max(gaps, key=gaps.get), min(gaps, key=gaps.get)
        rows.append(logconf_gain(xent[largest], groups[(*largest, "logconf")],
                                 f"PGR(logconf) - PGR(xent) at the largest gap ({gaps[largest]:.3f}, "
                                 f"{largest[0]} -> {largest[1]})", EFFECTS["c"]))
        diff_what = "the logconf gain is larger at the largest gap than at the smallest (difference of the rows above)"
        if smallest == largest:
            rows.append(row("c", diff_what, effect=EFFECTS["c_diff"], seeds="", verdict_text=NOT_TESTABLE,
                            note="one pair with both losses has a real gap: a contrast needs two"))
        else:
            rows.append(logconf_gain(xent[smallest], groups[(*smallest, "logconf")],
                                     f"PGR(logconf) - PGR(xent) at the smallest gap ({gaps[smallest]:.3f}, "
                                     f"{smallest[0]} -> {smallest[1]}; reported)", EFFECTS["c"]))
            estimate = function_of(
                lambda m: (pgr_of(m, "Ll") - pgr_of(m, "Lx")) - (pgr_of(m, "Sl") - pgr_of(m, "Sx")),
                {"Ll": groups[(*largest, "logconf")], "Lx": xent[largest],
                 "Sl": groups[(*smallest, "logconf")], "Sx": xent[smallest]})
            rows.append(tested("c", diff_what, estimate, EFFECTS["c_diff"],
                               note=f"gaps {gaps[largest]:.3f} vs {gaps[smallest]:.3f}"))

    # (d) imitation of the weak model's errors, final minus at the fixed step
    rows_d, trace = imitation_rows(xent, pgrs)
    rows += rows_d
    if trace:
        figures["trace"] = trace
    return rows, figures


def fixed_index(trace: list[dict]) -> int:
    """The trace point nearest :data:`MID_TRAINING` (the earlier one on a tie)."""
    return min(range(len(trace)), key=lambda i: (abs(trace[i]["step_frac"] - MID_TRAINING), i))


def imitation_rows(xent: dict[tuple, list[ExperimentResult]], pgrs: dict) -> tuple[list[dict], dict]:
    """Claim (d) on the xent student of the pair with the largest gap (among pairs with traces): per seed,
    ``imitation_test`` and test accuracy at the final trace point minus at :func:`fixed_index`; t over seeds."""
    from w2slab import stats

    traced = {pair: [r for r in group if r.trace] for pair, group in xent.items()}
    traced = {pair: group for pair, group in traced.items() if group}
    what = "imitation of the weak model's errors (imitation_test), final - at the step nearest 50% of training"
    if not traced:
        return [row("d", what, effect=EFFECTS["d"], seeds="0", verdict_text=NOT_RECORDED,
                    note="no xent student recorded a trace")], {}
    pair = max(traced, key=lambda p: pgrs[p].gap.value if math.isfinite(pgrs[p].gap.value) else -math.inf)
    traces = [sorted(r.trace, key=lambda t: t["step_frac"]) for r in traced[pair]]
    where = f"{pair[0]} -> {pair[1]}, xent"
    fixed = [fixed_index(t) for t in traces]
    fracs = [t[i]["step_frac"] for t, i in zip(traces, fixed, strict=True)]
    at = float(np.mean(fracs))
    figure = {"pair": pair, "traces": traces, "fixed": fracs}

    def change(key: str) -> list[float]:
        values = []
        for t, i in zip(traces, fixed, strict=True):
            final, mid = t[-1].get(key), t[i].get(key)
            values.append(math.nan if final is None or mid is None else float(final) - float(mid))
        return values

    def over_seeds(values: list[float]):
        return stats.mean_estimate([np.array([v]) for v in values], shared_test_set=False)

    crossed = ("; the seeds share one test set, so this t over seeds does not cover another draw of it"
               if len(traced[pair]) > 1 and stats.shares_test_set(traced[pair]) else "")
    rows = []
    imitation = change("imitation_test")
    missing = sum(not math.isfinite(v) for v in imitation)
    what = (f"imitation of the weak model's errors (imitation_test), final - at {at:.0%} of training (the trace "
            f"point nearest {MID_TRAINING:.0%}, fixed before looking; {where})")
    if missing == len(imitation) or len(imitation) - missing < 2:
        rows.append(row("d", what, effect=EFFECTS["d"], seeds=f"{len(imitation) - missing} of {len(imitation)}",
                        verdict_text=NOT_RECORDED, fixed_step_frac=at,
                        note="the traces lack imitation_test (records from before it was recorded): rerun "
                        "benchmarks/methods.py to test this claim"))
    else:
        finite = [v for v in imitation if math.isfinite(v)]
        rows.append(tested("d", what, over_seeds(finite), EFFECTS["d"], fixed_step_frac=at,
                           seeds=f"{len(finite)} of {len(imitation)}",
                           note=((f"{missing} seeds lack imitation_test" if missing else "") + crossed).lstrip("; ")))
    accuracy = [v for v in change("accuracy") if math.isfinite(v)]
    acc_what = f"test accuracy, final - at {at:.0%} of training (the same fixed step; {where}; reported: < 0?)"
    if len(accuracy) >= 2:
        rows.append(tested("d", acc_what, over_seeds(accuracy), EFFECTS["d_acc"], positive=False,
                           fixed_step_frac=at, note=crossed.lstrip("; ")))
    return rows, figure


def finetuned_rows(records: list[ExperimentResult]) -> list[dict]:
    """Claims (a) and (c) on the methods benchmark's second part, the fine-tuned default pair: the paper's own
    NLP setting, where the strong model is fine-tuned rather than probed."""
    groups = groups_of(records)
    rows = []
    for pair in sorted({(w, s) for w, s, _ in groups}):
        where = f"{pair[0]} -> {pair[1]} fine-tuned"
        if (*pair, "xent") not in groups:
            continue
        xent = groups[(*pair, "xent")]
        rows.append(pgr_positive(xent, where))
        pgr = pgr_of_group(xent)
        what = f"PGR(logconf) - PGR(xent), {where} (gap {pgr.gap.value:.3f})"
        if (*pair, "logconf") not in groups:
            rows.append(row("c", what, effect=EFFECTS["c"], seeds="0", verdict_text=NOT_RECORDED,
                            note="no logconf records"))
        elif not pgr.shown:
            rows.append(row("c", what, effect=EFFECTS["c"], seeds=gap_text(pgr), verdict_text=NO_GAP))
        else:
            rows.append(logconf_gain(xent, groups[(*pair, "logconf")], what, EFFECTS["c"]))
    return rows


def plot(figures: dict, out: Path) -> list[Path]:
    """``pgr_ladder.png`` (the pooled PGR of each pair with a real gap, Fieller's interval; a pair without one is
    marked "no gap" and plots no PGR) and ``training_length.png`` (imitation_test and accuracy over training,
    the fixed step marked)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    if "trace" in figures:
        trace = figures["trace"]
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        for seed_trace in trace["traces"]:
            frac = [t["step_frac"] for t in seed_trace]
            imitation = [math.nan if t.get("imitation_test") is None else t["imitation_test"] for t in seed_trace]
            left.plot(frac, imitation, color="C1", alpha=0.4)
            right.plot(frac, [t["accuracy"] for t in seed_trace], color="C0", alpha=0.4)
        fixed = float(np.mean(trace["fixed"]))
        for ax in (left, right):
            ax.axvline(fixed, color="k", ls="--", lw=1, label=f"fixed step ({fixed:.0%}, nearest "
                       f"{MID_TRAINING:.0%}; chosen before looking)")
            ax.legend(fontsize=7, loc="lower right")
        left.set(xlabel="fraction of training", ylabel="imitation_test (weak's errors made)",
                 title="imitation of the weak model's errors")
        right.set(xlabel="fraction of training", ylabel="student test accuracy", title="accuracy over training")
        fig.suptitle(" -> ".join(trace["pair"]) + " (xent, one line per seed)")
        fig.tight_layout()
        paths.append(out / "training_length.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    ladder = figures["ladder"]
    for x, pgr in enumerate(ladder.values()):
        if pgr is not None and pgr.shown:
            low, high = pgr.ci95
            ax.errorbar([x], [pgr.pgr], yerr=[[pgr.pgr - low], [high - pgr.pgr]], fmt="o", color="C0", capsize=4)
        else:  # the gap rule: no PGR, no point, no colour
            label = "not run" if pgr is None else f"no gap\n({pgr.seeds_with_gap} of {pgr.seeds})"
            ax.text(x, 0.0, label, ha="center", va="bottom", color="grey", fontsize=9)
    ax.set_xticks(range(len(ladder)), [f"{w}\n-> {s}" for w, s in ladder])
    ax.set_xlim(-0.5, len(ladder) - 0.5)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(ylabel="PGR (xent, all seeds; Fieller 95% CI)", title="PGR along the ladder")
    fig.tight_layout()
    paths.append(out / "pgr_ladder.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def setting_of(record: ExperimentResult) -> str:
    """How the result's strong model trained (``probe``, ``full``, ``lora``; ``full`` is the config default)."""
    return (record.config.get("strong_train") or {}).get("mode", "full")


def table(rows: list[dict]) -> list[str]:
    from w2slab.formatting import number, signed

    lines = ["| claim | what | value | 95% CI | se | power (against effect) | MDD | p | Holm p | seeds | "
             "interval resamples | verdict |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        ci = "" if not math.isfinite(r["ci95"][0]) else f"[{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}]"
        power = "" if not math.isfinite(r["power"]) else f"{r['power']:.2f} (against {r['effect']:g})"
        value = signed(r["value"])
        note = f" ({r['note']})" if r["note"] else ""
        p, holm = (f"{r[key]:.3f}" if math.isfinite(r.get(key, math.nan)) else "" for key in ("p", "p_holm"))
        lines.append(f"| {r['claim']} | {r['what']} | {value} | {ci} | {number(r['se'], missing='')} | {power} | "
                     f"{number(r['mdd'], missing='')} | {p} | {holm} | {r['seeds']} | {r['resamples']} | "
                     f"**{r['verdict']}**{note} |")
    return lines


def finite(value):
    """``value`` with every non-finite float as None (strict JSON)."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-root", default="runs/methods_benchmark", help="the methods benchmark's stages")
    parser.add_argument("--records", default=None, help="a methods benchmark's committed records.jsonl.gz (e.g. "
                        "results/methods_field/records.jsonl.gz): the claims from committed outcomes, without a "
                        "run root or training")
    parser.add_argument("--dataset", default="sst2_sentences")
    parser.add_argument("--n-boot", type=int, default=2000, help="ignored: the intervals are analytic "
                        "(w2slab.stats); kept so older commands still run")
    parser.add_argument("--methods", default="results/methods_field", help="the methods benchmark's output folder")
    parser.add_argument("--out", default="results/sst2_claims")
    args = parser.parse_args(argv)

    if args.records:
        sys.path.insert(0, str(Path(__file__).parent))
        from w2slab.results import read_records

        path = Path(args.records)
        if not path.is_file():
            sys.exit(f"error: {path} not found")
        everything = read_records(path)
        probe = [r for r in everything if setting_of(r) == "probe"]
        finetuned = [r for r in everything if setting_of(r) != "probe"]
        source = f"the committed per-example outcomes `{path}` (no run root, no training)"
    else:
        from w2slab.report.records import load_records

        listed = Path(args.methods) / "experiments.json"
        if not listed.is_file():
            sys.exit(f"error: {listed} not found; run python benchmarks/methods.py first (or pass --records)")
        listing = json.loads(listed.read_text(encoding="utf-8"))  # the methods benchmark's experiments only
        ids = set(listing["probe"] if isinstance(listing, dict) else listing)  # the ladder claims: the probe part
        finetuned_ids = set(listing.get("full", [])) if isinstance(listing, dict) else set()
        from w2slab.errors import W2SError

        try:
            everything = load_records(Path(args.run_root))
        except W2SError as error:
            sys.exit(f"error: {error}\n(or recompute the claims from committed outcomes: --records "
                     "results/methods_field/records.jsonl.gz)")
        probe = [r for r in everything if r.experiment_id in ids]
        finetuned = [r for r in everything if r.experiment_id in finetuned_ids]
        source = f"the runs under `{args.run_root}` listed in `{listed}`"
    probe = [r for r in probe if r.dataset == args.dataset and r.method == "none" and (r.weak, r.strong) in PAIRS]
    finetuned = [r for r in finetuned if r.method == "none"]
    if not probe:
        sys.exit(f"error: no probe runs of {args.dataset} in {source}; run python benchmarks/methods.py first")
    rows, figures = claims(probe)
    rows += finetuned_rows(finetuned)
    rows = correct_claims(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = plot(figures, out)
    given = list(sys.argv[1:] if argv is None else argv)
    if "--out" in given:  # where it was written says nothing of how it was made (and rebuild.py writes elsewhere)
        del given[given.index("--out"):given.index("--out") + 2]
    command = "python benchmarks/reproduction.py " + shlex.join(given)
    lines = ["# The paper's claims, checked", "", f"Made by `{command}` from {source}: the methods benchmark's probe "
             f"part ({args.dataset}) for every claim, and its fine-tuned default pair for (a) and (c) in the paper's "
             "own NLP setting.", "", (__doc__ or "").split("\n\n", 2)[2].strip(), ""]
    lines += table(rows)
    lines.append("")
    if not finetuned:
        lines.append("The fine-tuned part (claims (a) and (c) on the fine-tuned default pair) was not run: no "
                     "records of it; `python benchmarks/methods.py --parts finetune` makes them.")
        lines.append("")
    lines += [f"A claim holds only where its Holm-adjusted p over the claims tested (the rows with a p; `reported` "
              f"rows test nothing) is below .05; `{UNCORRECTED}` marks one whose interval alone excludes 0. "
              f"Every interval is read from the test set once; `interval resamples` says what it covers. Power is "
              f"against the row's stated effect at a two-sided 5% level; MDD: the smallest true difference found "
              f"with 80% power. The fixed step of (d) is the trace point nearest {MID_TRAINING:.0%} of training "
              "(`MID_TRAINING`, fixed before looking at any curve).", "",
              "Figures: " + ", ".join(f"`{p.name}`" for p in paths)]
    (out / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "claims.json").write_text(json.dumps(finite(rows), indent=2) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
