"""The statistics every table, report and figure uses: means and PGRs over seeds and test examples, paired
comparisons against a matched baseline, multiplicity correction over a declared family, the minimum detectable
difference, equivalence tests and the gap rule.

**What an interval resamples.** A W2S number averages per-example outcomes over seeds (splits, inits, shuffles)
and test examples. Where the seeds share one test set, seeds and examples are *crossed*: an outcome is
``mu + a_seed + b_example + e_seed,example``, and the grand mean's variance is
``s2_a / k + s2_b / n + s2_e / (k n)``. Its unbiased estimate from the two-way mean squares is
``(MS_seeds + MS_examples - MS_residual) / (k n)``, with Satterthwaite's degrees of freedom; the interval is
``mean +- t(df) * se``. With few seeds and seed-to-seed spread dominating, df is near ``k - 1`` (a seed-level
t-interval); where per-example noise dominates it is large (a normal interval over examples), and nothing is
counted twice (the hierarchical percentile bootstrap that preceded this module covered ~84% in the first regime
and ~99.7% in the second; ``tests/unit/core/test_stats.py`` checks 93-97% in both by
simulation). Seeds on different test
sets (another ``data_seed``) are *nested*: the interval is the t-interval over per-seed means. One seed: over its
test examples.

**PGR** is a ratio of mean gains, ``(student - weak) / (ceiling - weak)``; its interval is Fieller's: the set of
ratios ``r`` whose numerator ``(student - weak) - r (ceiling - weak)`` is not significantly non-zero under the same
variance. It is bounded exactly when the gap itself is significant, and is reported unbounded otherwise.

**Claims.** A comparison belongs to a family declared before the run (e.g. "every student against its matched
baseline on one pair"): its p-value is Holm-adjusted over that family (the family-wise error for "beats xent"
claims), with Benjamini-Hochberg's q beside it, and each table prints its family's size. The minimum detectable
difference uses t quantiles and the family's Bonferroni level (Holm's first step). Equivalence is claimed only by
TOST with a stated margin.

**Results.** The last functions pool results themselves (:class:`Outcomes`: each result's per-example correctness
by role, its seed, its test set and its own gap; :class:`w2slab.results.ExperimentResult` is one), so that the
report, the bench, the benchmarks and ``w2s compare`` unpack outcomes, pair seeds and apply the gap rule the same
way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
from scipy import stats as _scipy

#: Two-sided level of every interval and test.
ALPHA = 0.05
#: Power the minimum detectable difference is stated at.
POWER = 0.8
#: A crossed variance component enters only where its F-test against the residual is significant at this level
#: (the "sometimes-pool" rule of two-way random-effects ANOVA): an absent component estimated from 4 seeds' worth
#: of mean squares otherwise adds only noise, and made the interval over-cover (97-98%) where there is none.
POOL_LEVEL = 0.25


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds and test examples with its standard error, degrees of freedom, 95% interval and the
    two-sided p-value of "it is 0". ``design`` says what the interval covers."""

    value: float
    se: float
    df: float
    ci95: tuple[float, float]
    p: float
    seeds: int
    examples: int
    design: str

    def mdd(self, comparisons: int = 1) -> float:
        """:func:`minimum_detectable` for this estimate's standard error and df."""
        return minimum_detectable(self.se, self.df, comparisons)


@dataclass(frozen=True)
class Ratio:
    """PGR-like ratio of two means with Fieller's 95% interval; ``unbounded`` when the denominator is not
    significantly positive (then ``ci95`` is (NaN, NaN))."""

    value: float
    ci95: tuple[float, float]
    unbounded: bool
    denominator: Estimate


def _matrix(per_seed: Sequence[np.ndarray] | np.ndarray) -> list[np.ndarray]:
    rows = [np.asarray(r, dtype=float) for r in per_seed]
    if not rows or any(r.ndim != 1 or len(r) == 0 for r in rows):
        raise ValueError("need at least one seed with at least one example")
    return rows


def design_of(per_seed: Sequence[np.ndarray], shared_test_set: bool) -> str:
    """``examples`` (one seed), ``crossed`` (seeds share one test set) or ``nested``."""
    rows = _matrix(per_seed)
    if len(rows) == 1:
        return "examples"
    if shared_test_set:
        if len({len(r) for r in rows}) != 1:
            raise ValueError(f"seeds said to share a test set have {sorted({len(r) for r in rows})} examples")
        return "crossed"
    return "nested"


def _mean_squares(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Cross mean squares (seeds, examples, residual) of two k x n matrices; with x = y the ANOVA mean squares."""
    k, n = x.shape
    dx_r, dy_r = x.mean(1) - x.mean(), y.mean(1) - y.mean()
    dx_c, dy_c = x.mean(0) - x.mean(), y.mean(0) - y.mean()
    rx = x - x.mean(1, keepdims=True) - x.mean(0, keepdims=True) + x.mean()
    ry = y - y.mean(1, keepdims=True) - y.mean(0, keepdims=True) + y.mean()
    ms_r = n * float(dx_r @ dy_r) / (k - 1)
    ms_c = k * float(dx_c @ dy_c) / (n - 1) if n > 1 else 0.0
    ms_e = float((rx * ry).sum()) / ((k - 1) * (n - 1)) if n > 1 else 0.0
    return ms_r, ms_c, ms_e


def _present(component: float, residual: float, df: int, df_residual: int) -> bool:
    """Whether a variance component is present: its mean square exceeds the residual's, significantly at
    :data:`POOL_LEVEL` (any excess when the residual is exactly 0)."""
    if component <= residual:
        return False
    return residual == 0 or bool(_scipy.f.sf(component / residual, df, df_residual) < POOL_LEVEL)


def _coefficients(rows: list[np.ndarray]) -> tuple[float, float, float, float]:
    """For crossed seeds: the weights of (MS_seeds, MS_examples, MS_residual) in the grand mean's variance and its
    Satterthwaite df. A component is present where its F-test passes :data:`POOL_LEVEL`: both present,
    ``(MS_s + MS_x - MS_r) / kn``; no seed component, ``MS_x / kn``; no example component, ``MS_s / kn`` (the
    seed-level t-interval); neither, ``MS_r / kn``."""
    matrix = np.stack(rows)
    k, n = matrix.shape
    ms = _mean_squares(matrix, matrix)
    dfs = (k - 1, n - 1, (k - 1) * (n - 1))
    seeds, examples = _present(ms[0], ms[2], dfs[0], dfs[2]), n > 1 and _present(ms[1], ms[2], dfs[1], dfs[2])
    weights = (float(seeds), float(examples), float(seeds and examples) * -1.0 + float(not seeds and not examples))
    if n == 1:
        weights = (1.0, 0.0, 0.0)
    variance = sum(w * m for w, m in zip(weights, ms, strict=True))
    terms = sum((w * m) ** 2 / d for w, m, d in zip(weights, ms, dfs, strict=True) if w and d > 0)
    df = variance ** 2 / terms if terms > 0 else math.inf
    return (*(w / (k * n) for w in weights), df)


def _covariance(x: list[np.ndarray], y: list[np.ndarray], design: str,
                weights: tuple[float, float, float] | None = None) -> float:
    """The estimated covariance of the grand means of x and y; for crossed seeds, bilinear under fixed
    ``weights`` of the mean squares (so Fieller's quadratic can use it)."""
    if design == "examples":
        a, b = x[0], y[0]
        n = len(a)
        return float(((a - a.mean()) * (b - b.mean())).sum() / (n - 1) / n) if n > 1 else 0.0
    if design == "nested":
        ma, mb = np.array([r.mean() for r in x]), np.array([r.mean() for r in y])
        k = len(ma)
        return float(((ma - ma.mean()) * (mb - mb.mean())).sum() / (k - 1) / k)
    weights = weights or _coefficients(x)[:3]
    ms = _mean_squares(np.stack(x), np.stack(y))
    return float(sum(w * m for w, m in zip(weights, ms, strict=True)))


def _variance_and_df(rows: list[np.ndarray], design: str) -> tuple[float, float]:
    """The grand mean's estimated variance and its degrees of freedom (Satterthwaite where crossed)."""
    if design == "examples":
        return _covariance(rows, rows, design), float(len(rows[0]) - 1)
    if design == "nested":
        return _covariance(rows, rows, design), float(len(rows) - 1)
    *weights, df = _coefficients(rows)
    return _covariance(rows, rows, design, tuple(weights)), df


def _t(df: float, q: float) -> float:
    return float(_scipy.norm.ppf(q)) if not math.isfinite(df) else float(_scipy.t.ppf(q, max(df, 1.0)))


def mean_estimate(per_seed: Sequence[np.ndarray], *, shared_test_set: bool = True) -> Estimate:
    """The mean of per-example values (correctness, or a paired difference) over seeds and examples, with the
    interval of the design the seeds form (see the module docstring)."""
    rows = _matrix(per_seed)
    design = design_of(rows, shared_test_set)
    value = float(np.mean([r.mean() for r in rows]))
    variance, df = _variance_and_df(rows, design)
    se = math.sqrt(max(variance, 0.0))
    if se == 0:
        p = 1.0 if value == 0 else 0.0
        return Estimate(value, 0.0, df, (value, value), p, len(rows), len(rows[0]), design)
    half = _t(df, 1 - ALPHA / 2) * se
    p = float(2 * _scipy.t.sf(abs(value) / se, max(df, 1.0)))
    return Estimate(value, se, df, (value - half, value + half), p, len(rows), len(rows[0]), design)


def paired_difference(treatment: Sequence[np.ndarray], baseline: Sequence[np.ndarray], *,
                      shared_test_set: bool = True) -> Estimate:
    """Treatment minus baseline, per example and seed (the same test examples, the same seeds), then
    :func:`mean_estimate`: the shared difficulty of an example cancels before anything is resampled."""
    pairs = list(zip(_matrix(treatment), _matrix(baseline), strict=True))
    for t, b in pairs:
        if t.shape != b.shape:
            raise ValueError(f"paired outcomes over different test sets ({len(t)} and {len(b)} examples)")
    return mean_estimate([t - b for t, b in pairs], shared_test_set=shared_test_set)


def ratio_estimate(numerator: Sequence[np.ndarray], denominator: Sequence[np.ndarray], *,
                   shared_test_set: bool = True) -> Ratio:
    """mean(numerator) / mean(denominator) with Fieller's interval under the seeds' design."""
    num, den = _matrix(numerator), _matrix(denominator)
    design = design_of(num, shared_test_set)
    gap = mean_estimate(den, shared_test_set=shared_test_set)
    a, b = float(np.mean([r.mean() for r in num])), gap.value
    value = a / b if b > 0 else math.nan
    # the variance model (which components are present) and df of the linearised numerator at the estimate
    linear = [n - (value if math.isfinite(value) else 0.0) * d for n, d in zip(num, den, strict=True)]
    _, df = _variance_and_df(linear, design)
    weights = tuple(_coefficients(linear)[:3]) if design == "crossed" else None
    v_nn, v_nd, v_dd = (_covariance(x, y, design, weights) for x, y in ((num, num), (num, den), (den, den)))
    t2 = _t(df, 1 - ALPHA / 2) ** 2
    # (a - r b)^2 <= t2 (v_nn - 2 r v_nd + r^2 v_dd)  <=>  qa r^2 + qb r + qc <= 0
    qa, qb, qc = b * b - t2 * v_dd, -2 * (a * b - t2 * v_nd), a * a - t2 * v_nn
    disc = qb * qb - 4 * qa * qc
    if not b > 0 or qa <= 0 or disc < 0:
        return Ratio(value, (math.nan, math.nan), True, gap)
    root = math.sqrt(disc)
    return Ratio(value, ((-qb - root) / (2 * qa), (-qb + root) / (2 * qa)), False, gap)


@dataclass(frozen=True)
class Pgr:
    """PGR over seeds (ratio of mean gains) with Fieller's interval, the gap's estimate, and how many seeds have
    a gap of their own (``seeds_with_gap`` of ``seeds``)."""

    pgr: float
    ci95: tuple[float, float]
    unbounded: bool
    gap: Estimate
    seeds_with_gap: int
    seeds: int
    shown: bool = field(default=False)

    @property
    def design(self) -> str:
        return self.gap.design


def pgr_estimate(runs: Sequence[dict[str, np.ndarray]], *, shared_test_set: bool = True) -> Pgr:
    """PGR of per-seed ``{"weak", "student", "ceiling"}`` correctness over all the seeds, shown only under
    :func:`shows_pgr` (no seeds are dropped for lacking a gap of their own: that would select on noise)."""
    if not runs:
        nan = Estimate(math.nan, math.nan, math.nan, (math.nan, math.nan), math.nan, 0, 0, "examples")
        return Pgr(math.nan, (math.nan, math.nan), True, nan, 0, 0)
    get = {role: [np.asarray(r[role], dtype=float) for r in runs] for role in ("weak", "student", "ceiling")}
    gains = [s - w for s, w in zip(get["student"], get["weak"], strict=True)]
    gaps = [c - w for c, w in zip(get["ceiling"], get["weak"], strict=True)]
    ratio = ratio_estimate(gains, gaps, shared_test_set=shared_test_set)
    with_gap = sum(mean_estimate([g]).ci95[0] > 0 for g in gaps)
    result = Pgr(ratio.value, ratio.ci95, ratio.unbounded, ratio.denominator, int(with_gap), len(runs))
    shown = shows_pgr(result.seeds_with_gap, result.seeds, result.gap)
    return Pgr(result.pgr, result.ci95, result.unbounded, result.gap, result.seeds_with_gap, result.seeds, shown)


def shows_pgr(seeds_with_gap: int, seeds: int, gap: Estimate | None = None) -> bool:
    """The one gap rule of every table and figure: a PGR (and any star or colour derived from one) is shown only
    where at least half the seeds have a gap interval of their own that excludes 0 and the pooled gap's interval
    excludes 0. Elsewhere it divides noise by noise."""
    if seeds == 0 or 2 * seeds_with_gap < seeds:
        return False
    return gap is None or gap.ci95[0] > 0


def function_estimate(function, arrays: dict[str, Sequence[np.ndarray]], *, shared_test_set: bool = True,
                      step: float = 1e-6) -> Estimate:
    """A smooth function of several means (e.g. PGR(large) - PGR(small) along a ladder, or a difference of two
    pairs' logconf gains) with the delta method: ``function`` takes the mapping of each name to its mean over
    seeds and examples; its numerical gradient weights each name's per-seed, per-example values into one
    influence array per seed, whose mean's interval (:func:`mean_estimate`, the same design) is the function's.
    Every name must hold the same seeds on the same examples."""
    names = list(arrays)
    rows = {name: _matrix(arrays[name]) for name in names}
    means = {name: float(np.mean([r.mean() for r in rows[name]])) for name in names}
    value = float(function(means))
    gradient = {}
    for name in names:
        shifted = dict(means)
        shifted[name] += step
        gradient[name] = (float(function(shifted)) - value) / step
    seeds = len(rows[names[0]])
    influence = [sum(gradient[name] * (rows[name][s] - means[name]) for name in names) for s in range(seeds)]
    spread = mean_estimate(influence, shared_test_set=shared_test_set)
    half = spread.ci95[1] - spread.value
    p = float(2 * _scipy.t.sf(abs(value) / spread.se, max(spread.df, 1.0))) if spread.se > 0 else float(value == 0)
    return Estimate(value, spread.se, spread.df, (value - half, value + half), p, spread.seeds, spread.examples,
                    spread.design)


def power(se: float, df: float, effect: float, comparisons: int = 1) -> float:
    """The probability that a two-sided test at ALPHA / comparisons finds a true difference ``effect`` measured
    with standard error ``se`` (a claim's power: below ~.8 a null result says little)."""
    if not se > 0:
        return math.nan
    crit = _t(df, 1 - ALPHA / max(comparisons, 1) / 2)
    shift = abs(effect) / se
    d = max(df, 1.0) if math.isfinite(df) else math.inf
    upper = _scipy.norm.sf(crit - shift) if not math.isfinite(d) else _scipy.t.sf(crit - shift, d)
    lower = _scipy.norm.cdf(-crit - shift) if not math.isfinite(d) else _scipy.t.cdf(-crit - shift, d)
    return float(upper + lower)


# --- families: multiplicity, detectable differences, equivalence -------------------------------------------


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error); NaN entries stay NaN and do not count."""
    p = np.asarray(p_values, dtype=float)
    finite = np.flatnonzero(np.isfinite(p))
    out = np.full(len(p), math.nan)
    m = len(finite)
    running = 0.0
    for rank, i in enumerate(finite[np.argsort(p[finite], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg q-values (false discovery rate); NaN entries stay NaN and do not count."""
    p = np.asarray(p_values, dtype=float)
    finite = np.flatnonzero(np.isfinite(p))
    out = np.full(len(p), math.nan)
    if len(finite):
        out[finite] = _scipy.false_discovery_control(p[finite], method="bh")
    return out.tolist()


def minimum_detectable(se: float, df: float, comparisons: int = 1, power: float = POWER) -> float:
    """The smallest true difference found with probability ``power`` by a two-sided test at the family's
    Bonferroni level ``ALPHA / comparisons`` (Holm's first step): ``(t(1 - a/2) + t(power)) * se``. A true
    difference below it is found with probability below ``power``, not "more likely missed"."""
    if not math.isfinite(se) or se <= 0:
        return math.nan
    level = ALPHA / max(comparisons, 1)
    return (_t(df, 1 - level / 2) + _t(df, power)) * se


def equivalence_p(estimate: Estimate, margin: float) -> float:
    """TOST: the p-value of "the true difference lies within +-``margin``" (both one-sided tests at once);
    equivalence may be claimed at level ALPHA only where it is below ALPHA."""
    if not estimate.se > 0:
        return 0.0 if abs(estimate.value) < margin else 1.0
    df = max(estimate.df, 1.0)
    lower = _scipy.t.sf((estimate.value + margin) / estimate.se, df)
    upper = _scipy.t.cdf((estimate.value - margin) / estimate.se, df)
    return float(max(lower, upper))


@dataclass(frozen=True)
class Comparison:
    """One row of a family: a student against its matched baseline, with the family-adjusted p-values."""

    family: str
    student: str
    baseline: str
    estimate: Estimate
    p_holm: float = math.nan
    q_bh: float = math.nan
    comparisons: int = 0
    mdd: float = math.nan

    @property
    def claimed(self) -> bool:
        """Whether the difference may be claimed: Holm-adjusted p below ALPHA over its family."""
        return bool(self.p_holm < ALPHA)


def degenerate(estimate: Estimate) -> bool:
    """A comparison with no variance (a student identical to its baseline on every example and seed): it tests
    nothing, so it is kept out of a family's count, its corrections and its median MDD."""
    return not estimate.se > 0


def adjust_family(family: str, rows: Sequence[tuple[str, str, Estimate]]) -> list[Comparison]:
    """Holm and BH over the family's non-degenerate comparisons; each row's MDD at the family's size."""
    live = [i for i, (_, _, e) in enumerate(rows) if not degenerate(e)]
    m = len(live)
    p_holm = holm([rows[i][2].p for i in live])
    q_bh = benjamini_hochberg([rows[i][2].p for i in live])
    adjusted = {i: (p_holm[j], q_bh[j]) for j, i in enumerate(live)}
    out = []
    for i, (student, baseline, estimate) in enumerate(rows):
        ph, q = adjusted.get(i, (math.nan, math.nan))
        out.append(Comparison(family, student, baseline, estimate, ph, q, m, estimate.mdd(m) if i in adjusted
                              else math.nan))
    return out


# --- across tasks: tasks are the unit ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AcrossTasks:
    """A statistic over tasks, each task one value (its PGR, its paired difference), with its 95% interval and what
    the interval resamples: the tasks, the top level of tasks x seeds x examples, whose per-task values already
    carry their own seeds' and examples' noise (resampling the lower levels again would count that noise twice:
    Field and Welsh 2007, Ren et al. 2010)."""

    value: float
    ci95: tuple[float, float]
    tasks: int
    method: str


def median_over_tasks(values: Sequence[float]) -> AcrossTasks:
    """The median of per-task values with the distribution-free interval between order statistics: the widest
    ``[x_(k), x_(n+1-k)]`` whose coverage of the tasks' median, ``1 - 2 P(Binomial(n, 1/2) < k)``, is still at least
    95% (it needs 6 tasks; fewer get the range, with its lower coverage named in ``method``)."""
    x = np.sort(np.asarray([v for v in values if math.isfinite(v)], dtype=float))
    n = len(x)
    if n == 0:
        return AcrossTasks(math.nan, (math.nan, math.nan), 0, "no task")
    k = 1
    while k + 1 <= n // 2 and 1 - 2 * _scipy.binom.cdf(k, n, 0.5) >= 1 - ALPHA:
        k += 1
    coverage = 1 - 2 * _scipy.binom.cdf(k - 1, n, 0.5)
    return AcrossTasks(float(np.median(x)), (float(x[k - 1]), float(x[n - k])), n,
                       f"order statistics {k} and {n + 1 - k} of {n} tasks (coverage {coverage:.3f})")


def mean_over_tasks(values: Sequence[float]) -> Estimate:
    """The mean of per-task values with the t-interval over tasks (n - 1 df): the pooled difference of a method
    across tasks, tasks the unit."""
    x = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    return mean_estimate([x]) if len(x) >= 2 else Estimate(
        float(x.mean()) if len(x) else math.nan, math.nan, math.nan, (math.nan, math.nan), math.nan, 1, len(x),
        "tasks")


def sign_test(differences: Sequence[float]) -> tuple[int, int, float]:
    """Wins, decided tasks (ties dropped) and the two-sided exact binomial p of "wins and losses equally likely"."""
    wins = sum(1 for d in differences if d > 0)
    decided = sum(1 for d in differences if d != 0 and math.isfinite(d))
    p = float(_scipy.binomtest(wins, decided, 0.5).pvalue) if decided else math.nan
    return wins, decided, p


# --- over results: the seeds of one setting ----------------------------------------------------------------------


class Outcomes(Protocol):
    """What the statistics read of one result (one seed of one student; :class:`w2slab.results.ExperimentResult`)."""

    seed: int

    def correct(self, role: str) -> np.ndarray:
        """Per-example correctness of ``role`` (``weak``, ``student``, ``ceiling``) on the test set."""
        ...

    def test_set(self) -> str:
        """What two results must share to be paired example by example."""
        ...

    def has_outcomes(self) -> bool:
        """Whether the result recorded its per-example test outcomes."""
        ...

    def has_gap(self) -> bool:
        """Whether the result counts as a seed with a gap of its own under the gap rule."""
        ...


#: The roles a PGR pools: the supervisor the student learnt from, the student, the ceiling.
ROLES = ("weak", "student", "ceiling")


def shares_test_set(results: Sequence[Outcomes]) -> bool:
    """Whether the results were measured on one test set: their seeds are then crossed with its examples,
    otherwise nested (the ``shared_test_set`` of every estimate above)."""
    return len({r.test_set() for r in results}) <= 1


def role_estimate(results: Sequence[Outcomes], role: str) -> Estimate:
    """``role``'s test accuracy over the results' seeds and test examples (:func:`mean_estimate`)."""
    return mean_estimate([r.correct(role) for r in results], shared_test_set=shares_test_set(results))


def pooled_pgr(results: Sequence[Outcomes]) -> Pgr | None:
    """The PGR of one setting over all its seeds (:func:`pgr_estimate`; none dropped), its seeds with a gap counted
    by each result's own rule (``has_gap``: its gap interval excludes 0 and it is a W2S experiment at all), shown
    under :func:`shows_pgr`; None when some seed did not record its per-example outcomes (older result files)."""
    usable = sorted((r for r in results if r.has_outcomes()), key=lambda r: r.seed)
    if not usable or len(usable) < len(results):
        return None
    pooled = pgr_estimate([{role: r.correct(role) for role in ROLES} for r in usable],
                          shared_test_set=shares_test_set(usable))
    with_gap = sum(r.has_gap() for r in usable)
    return replace(pooled, seeds_with_gap=with_gap, shown=shows_pgr(with_gap, len(usable), pooled.gap))


def paired_results(treatment: Sequence[Outcomes], baseline: Sequence[Outcomes], role: str = "student") -> Estimate:
    """``role``'s accuracy in each treatment result minus in the baseline result beside it (the same seed on the
    same test examples): :func:`paired_difference`, the seeds crossed where the treatment's share one test set."""
    return paired_difference([t.correct(role) for t in treatment], [b.correct(role) for b in baseline],
                             shared_test_set=shares_test_set(treatment))
