"""The statistics module: interval coverage by simulation in both regimes, corrections, MDD, TOST, the gap rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from w2slab import stats

#: per-role probability of being right; seeds and examples shift it (latent-threshold model, away from 0 and 1)
RATES = {"weak": 0.55, "student": 0.61, "ceiling": 0.65}
TRUE_PGR = (0.61 - 0.55) / (0.65 - 0.55)
TRUE_DIFF = 0.61 - 0.55


def simulated_runs(rng: np.random.Generator, k: int, n: int, seed_sd: float, noise_sd: float) -> list[dict]:
    """k seeds on one shared test set of n examples: an example is right when its difficulty (shared by every seed
    and role) plus per-seed, per-example noise falls under the role's rate shifted by a per-seed offset. The
    expected accuracy of a role is exactly its rate, so the truth is known."""
    difficulty = rng.uniform(0, 1, n)
    runs = []
    for _ in range(k):
        runs.append({role: difficulty + rng.normal(0, noise_sd, n) < rate + rng.normal(0, seed_sd)
                     for role, rate in RATES.items()})
    return runs


def coverage(regime: dict, reps: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    pgr_hits = diff_hits = 0
    for _ in range(reps):
        runs = simulated_runs(rng, **regime)
        pgr = stats.pgr_estimate(runs)
        pgr_hits += pgr.ci95[0] <= TRUE_PGR <= pgr.ci95[1]
        diff = stats.paired_difference([r["student"] for r in runs], [r["weak"] for r in runs])
        diff_hits += diff.ci95[0] <= TRUE_DIFF <= diff.ci95[1]
    return pgr_hits / reps, diff_hits / reps


@pytest.mark.parametrize("name, regime", [
    # five seeds whose offsets dominate: a seed-level t-interval (df ~ 4) is what covers
    ("seed-dominated", dict(k=5, n=1000, seed_sd=0.02, noise_sd=0.01)),
    # per-seed noise varies per example, examples shared: resampling both levels would count it twice
    ("example-dominated", dict(k=5, n=1000, seed_sd=0.0, noise_sd=0.1)),
    ("one seed", dict(k=1, n=1000, seed_sd=0.0, noise_sd=0.1)),
])
def test_pgr_and_paired_difference_intervals_cover_the_truth_at_93_to_97_percent(name, regime):
    pgr, diff = coverage(regime, reps=1500, seed=11)
    assert 0.93 <= pgr <= 0.97, f"{name}: PGR interval covered {pgr:.3f}"
    assert 0.93 <= diff <= 0.97, f"{name}: paired-difference interval covered {diff:.3f}"


def test_the_crossed_interval_covers_gaussian_seed_and_example_effects():
    rng = np.random.default_rng(3)
    for sd_seed, sd_example, sd_noise in ((0.2, 1.0, 1.0), (0.0, 0.0, 1.0), (0.0, 1.0, 0.5)):
        hits = 0
        for _ in range(1500):
            values = (0.1 + rng.normal(0, sd_seed, (5, 1)) + rng.normal(0, sd_example, (1, 300))
                      + rng.normal(0, sd_noise, (5, 300)))
            low, high = stats.mean_estimate(list(values)).ci95
            hits += low <= 0.1 <= high
        assert 0.93 <= hits / 1500 <= 0.97, (sd_seed, sd_example, sd_noise, hits / 1500)


def test_seed_dominated_interval_is_the_seed_level_t_interval():
    rng = np.random.default_rng(0)
    offsets = rng.normal(0, 1, (5, 1))
    values = offsets + rng.normal(0, 1e-3, (5, 200))
    estimate = stats.mean_estimate(list(values))
    means = values.mean(1)
    half = 2.776 * means.std(ddof=1) / math.sqrt(5)  # t(0.975, 4)
    assert estimate.design == "crossed"
    assert estimate.df == pytest.approx(4, abs=0.05)
    assert estimate.ci95[1] - estimate.value == pytest.approx(half, rel=0.01)


def test_nested_seeds_use_their_means_and_mismatched_pairs_are_refused():
    a = [np.ones(10), np.zeros(12)]
    estimate = stats.mean_estimate(a, shared_test_set=False)
    assert estimate.design == "nested" and estimate.value == 0.5
    with pytest.raises(ValueError, match="share a test set"):
        stats.mean_estimate(a, shared_test_set=True)
    with pytest.raises(ValueError, match="different test sets"):
        stats.paired_difference([np.ones(10)], [np.ones(9)])


def test_pgr_without_a_gap_is_unbounded_and_not_shown():
    rng = np.random.default_rng(0)
    flat = [{"weak": rng.random(300) < 0.7, "student": rng.random(300) < 0.7, "ceiling": rng.random(300) < 0.7}
            for _ in range(3)]
    pgr = stats.pgr_estimate(flat)
    assert pgr.unbounded and not pgr.shown and all(math.isnan(v) for v in pgr.ci95)


def test_the_gap_rule_needs_half_the_seeds_and_the_pooled_gap():
    assert not stats.shows_pgr(2, 5)
    assert stats.shows_pgr(3, 5)
    assert not stats.shows_pgr(0, 0)
    no_pooled_gap = stats.Estimate(0.01, 0.01, 4, (-0.01, 0.03), 0.3, 5, 100, "crossed")
    assert not stats.shows_pgr(5, 5, no_pooled_gap)


def test_holm_and_benjamini_hochberg_match_their_definitions():
    p = [0.01, 0.04, 0.03, 0.005, math.nan]
    # Holm: sorted .005, .01, .03, .04 times 4, 3, 2, 1 = .02, .03, .06, .04, then the running maximum
    assert stats.holm(p)[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert math.isnan(stats.holm(p)[4])
    # BH: p_(i) m / i, running minimum from the top: .005*4/1=.02, .01*4/2=.02, .03*4/3=.04, .04
    assert stats.benjamini_hochberg(p)[:4] == pytest.approx([0.02, 0.04, 0.04, 0.02])


def test_a_family_keeps_degenerate_rows_out_of_its_count():
    live = stats.Estimate(0.02, 0.005, 100, (0.01, 0.03), 1e-4, 5, 1000, "crossed")
    other = stats.Estimate(0.01, 0.005, 100, (0.0, 0.02), 0.048, 5, 1000, "crossed")
    same = stats.Estimate(0.0, 0.0, 100, (0.0, 0.0), 1.0, 5, 1000, "crossed")
    rows = stats.adjust_family("pair", [("a", "xent", live), ("b", "xent", other), ("kl", "xent", same)])
    assert [r.comparisons for r in rows] == [2, 2, 2]
    assert rows[0].p_holm == pytest.approx(2e-4) and rows[0].claimed
    assert rows[1].p_holm == pytest.approx(0.048) and rows[1].claimed  # Holm's second step: .048 * 1
    assert math.isnan(rows[2].p_holm) and math.isnan(rows[2].mdd)


def test_minimum_detectable_difference_has_the_stated_power():
    se, df = 0.01, 30
    mdd = stats.minimum_detectable(se, df, comparisons=1)
    rng = np.random.default_rng(0)
    # an estimate of true value mdd with standard error se: a two-sided t test at 5% finds it 80% of the time
    from scipy import stats as scipy_stats

    t = mdd / se + rng.standard_t(df, 20000)
    power = float(np.mean(np.abs(t) > scipy_stats.t.ppf(0.975, df)))
    assert power == pytest.approx(0.8, abs=0.015)
    assert stats.minimum_detectable(se, df, comparisons=10) > mdd  # the family's correction costs power


def test_equivalence_needs_the_whole_interval_inside_the_margin():
    tight = stats.Estimate(0.001, 0.002, 200, (-0.003, 0.005), 0.6, 5, 1000, "crossed")
    wide = stats.Estimate(0.001, 0.02, 200, (-0.04, 0.04), 0.96, 5, 1000, "crossed")
    assert stats.equivalence_p(tight, margin=0.01) < 0.05
    assert stats.equivalence_p(wide, margin=0.01) > 0.05  # "no detectable difference" is not equivalence


def test_a_function_of_means_gets_the_delta_method_interval_of_its_design():
    rng = np.random.default_rng(5)
    runs = [simulated_runs(rng, k=5, n=1000, seed_sd=0.0, noise_sd=0.1) for _ in range(1)][0]
    arrays = {role: [r[role].astype(float) for r in runs] for role in RATES}
    direct = stats.paired_difference(arrays["student"], arrays["weak"])
    through = stats.function_estimate(lambda m: m["student"] - m["weak"], arrays)
    assert through.value == pytest.approx(direct.value) and through.se == pytest.approx(direct.se, rel=1e-4)
    pgr = stats.function_estimate(lambda m: (m["student"] - m["weak"]) / (m["ceiling"] - m["weak"]), arrays)
    fieller = stats.pgr_estimate(runs)
    assert pgr.value == pytest.approx(fieller.pgr) and pgr.ci95[0] < fieller.pgr < pgr.ci95[1]


def test_power_is_alpha_at_no_effect_and_eighty_percent_at_the_mdd():
    assert stats.power(0.01, 1e6, 0.0) == pytest.approx(0.05, abs=1e-3)
    mdd = stats.minimum_detectable(0.01, 30)
    assert stats.power(0.01, 30, mdd) == pytest.approx(0.8, abs=0.01)
