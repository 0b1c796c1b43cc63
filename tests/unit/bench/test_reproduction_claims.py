"""benchmarks/reproduction.py on synthetic records: the gap rule, a ladder with a gapless rung, power and the
underpowered verdict, and the fixed step of claim (d) (not the argmax of the test curve)."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from w2slab import stats
from w2slab.diagnostics import pack_correct

sys.path.insert(0, "benchmarks")
import reproduction  # noqa: E402

N_TEST = 800
SEEDS = range(10)
#: per pair: weak and ceiling accuracy, and each loss's student accuracy
RATES = {
    ("minilm-l3", "minilm-l6"): (0.80, 0.80, {"xent": 0.80, "logconf": 0.80}),   # no gap
    ("minilm-l3", "mpnet-base"): (0.70, 0.86, {"xent": 0.82, "logconf": 0.83}),  # PGR .75
    ("minilm-l6", "mpnet-base"): (0.76, 0.86, {"xent": 0.83, "logconf": 0.84}),  # PGR .7
}
FRACS = [0.12, 0.24, 0.36, 0.48, 0.6, 0.72, 0.84, 0.96, 1.0]  # nearest 0.5: 0.48; accuracy peaks at 0.24


def trace(rng: np.random.Generator, accuracy: float) -> list[dict]:
    """Test accuracy that peaks early (at 0.24) and imitation of the weak model's errors that keeps rising."""
    out = []
    for i, frac in enumerate(FRACS):
        acc = accuracy + (0.03 if frac == 0.24 else 0.01 - 0.002 * i) + rng.normal(0, 0.001)
        out.append({"step": i * 10, "step_frac": frac, "accuracy": acc, "pgr": math.nan,
                    "agreement_transfer": 0.8, "agreement_test": 0.8,
                    "imitation_test": 0.3 + 0.2 * frac + rng.normal(0, 0.01)})
    return out


def records(rates: dict = RATES, seed: int = 0, imitation: bool = True) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for (weak, strong), (weak_rate, ceiling_rate, students) in rates.items():
        for s in SEEDS:  # each seed its own data (data_seed = seed): nested
            shift = rng.normal(0, 0.005)
            weak_c = rng.random(N_TEST) < weak_rate + shift
            ceiling_c = rng.random(N_TEST) < ceiling_rate + shift
            gap = stats.mean_estimate([ceiling_c.astype(float) - weak_c])
            for loss, rate in students.items():
                student_c = rng.random(N_TEST) < rate + shift + rng.normal(0, 0.01)
                acc = {role: float(c.mean()) for role, c in (("weak", weak_c), ("ceiling", ceiling_c),
                                                             ("student", student_c))}
                steps = trace(rng, acc["student"])
                if not imitation:
                    for step in steps:
                        del step["imitation_test"]
                out.append({
                    "dataset": "sst2_sentences", "weak": weak, "strong": strong, "loss": loss, "method": "none",
                    "seed": s, "experiment_id": f"{weak}-{strong}-{s}", "test_size": N_TEST,
                    "test_correct": {"weak": pack_correct(weak_c), "student": pack_correct(student_c),
                                     "ceiling": pack_correct(ceiling_c)},
                    "weak_accuracy": acc["weak"], "ceiling_accuracy": acc["ceiling"],
                    "student_accuracy": acc["student"],
                    "pgr": ((acc["student"] - acc["weak"]) / (acc["ceiling"] - acc["weak"])
                            if acc["ceiling"] != acc["weak"] else math.nan),
                    "gap_ci95": list(gap.ci95), "suspect": [], "oracle": False, "ground_truth_labels": {},
                    "validation": {},
                    "config": {"data_seed": s, "seed": s, "dataset": "sst2_sentences", "n_test": N_TEST,
                               "strong_train": {"mode": "probe"}},
                    "trace": steps})
    from w2slab.results import ExperimentResult

    return [ExperimentResult.from_dict(record, "synthetic") for record in out]


@pytest.fixture(scope="module")
def claimed():
    return reproduction.claims(records())


def by(rows: list[dict], claim: str, contains: str = "") -> list[dict]:
    return [r for r in rows if r["claim"] == claim and contains in r["what"]]


def test_every_verdict_is_from_the_vocabulary_and_power_is_reported(claimed):
    rows, _ = claimed
    assert all(r["verdict"] in reproduction.VERDICTS for r in rows)
    for r in rows:
        if r["verdict"] in ("holds", "does not hold", "no detectable difference", reproduction.UNDERPOWERED):
            assert 0 <= r["power"] <= 1 and r["se"] > 0 and r["mdd"] > 0 and r["effect"] > 0
            assert r["resamples"] == reproduction.RESAMPLES["nested"]  # data_seed = seed


def test_a_is_tested_only_where_the_gap_rule_shows_a_pgr(claimed):
    rows, figures = claimed
    assert by(rows, "a", "minilm-l3 -> minilm-l6")[0]["verdict"] == "not tested: no real gap"
    assert math.isnan(by(rows, "a", "minilm-l3 -> minilm-l6")[0]["value"])
    holds = by(rows, "a", "minilm-l3 -> mpnet-base")[0]
    assert holds["verdict"] == "holds" and 0.5 < holds["value"] < 1 and holds["ci95"][0] > 0
    assert holds["seeds"].endswith("of 10 with a gap")
    ladder = figures["ladder"]  # the figure plots no PGR for the pair the table calls "no real gap"
    assert not ladder[("minilm-l3", "minilm-l6")].shown and ladder[("minilm-l3", "mpnet-base")].shown


def test_b_is_not_testable_with_a_gapless_rung(claimed):
    (b,) = by(claimed[0], "b")
    assert b["verdict"] == "not testable with this ladder"
    assert "minilm-l3 -> minilm-l6" in b["note"] and "at least two rungs with a gap" in b["note"]
    assert math.isnan(b["value"])


def test_b_is_computed_with_power_when_both_rungs_have_a_gap():
    rates = dict(RATES)
    rates[("minilm-l3", "minilm-l6")] = (0.70, 0.80, {"xent": 0.75, "logconf": 0.75})
    (b,) = by(reproduction.claims(records(rates, seed=1))[0], "b")
    assert b["verdict"] in ("holds", "does not hold", "no detectable difference", reproduction.UNDERPOWERED)
    assert b["effect"] == 0.2 and 0 < b["power"] <= 1 and b["value"] == pytest.approx(0.75 - 0.5, abs=0.2)


def test_the_difference_of_logconf_gains_is_underpowered_and_labelled_so(claimed):
    rows, _ = claimed
    (diff,) = by(rows, "c", "difference")
    assert diff["effect"] == 0.1 and diff["power"] < reproduction.MIN_POWER
    assert diff["ci95"][0] < 0 < diff["ci95"][1]
    assert diff["verdict"] == "underpowered: not testable with this ladder"
    assert stats.power(diff["se"], diff["df"], 0.1) == pytest.approx(diff["power"])


def test_the_verdict_rule():
    assert reproduction.verdict(0.1, 0.3, 0.2) == "holds"  # a significant result stays one
    assert reproduction.verdict(-0.3, -0.1, 0.9) == "does not hold"
    assert reproduction.verdict(-0.1, 0.2, 0.3) == "underpowered: not testable with this ladder"
    assert reproduction.verdict(-0.1, 0.2, 0.8) == "no detectable difference"
    assert reproduction.verdict(-0.3, -0.1, 0.9, positive=False) == "holds"


def test_d_compares_the_final_step_with_the_fixed_step_not_the_peak(claimed):
    rows, figures = claimed
    imitation, accuracy = by(rows, "d")
    assert reproduction.MID_TRAINING == 0.5
    assert imitation["fixed_step_frac"] == pytest.approx(0.48)  # an argmax of the accuracy curve picks 0.24
    assert "48%" in imitation["what"] and "imitation_test" in imitation["what"]
    assert imitation["value"] == pytest.approx(0.2 * (1.0 - 0.48), abs=0.02) and imitation["verdict"] == "holds"
    assert imitation["seeds"] == "10 of 10" and imitation["resamples"] == reproduction.RESAMPLES["nested"]
    assert accuracy["fixed_step_frac"] == pytest.approx(0.48) and "accuracy" in accuracy["what"]
    assert accuracy["value"] == pytest.approx((0.01 - 0.016) - (0.01 - 0.006), abs=0.002)  # not 0.03 off
    assert figures["trace"]["fixed"] == [0.48] * 10


def test_d_says_when_traces_lack_imitation():
    rows, _ = reproduction.claims(records(imitation=False))
    imitation = by(rows, "d", "imitation")[0]
    assert imitation["verdict"] == "not tested: not recorded" and "lack imitation_test" in imitation["note"]


def test_the_command_line_reads_committed_records(tmp_path):
    sys.path.insert(0, "benchmarks")
    from methods import write_records

    path = tmp_path / "records.jsonl.gz"
    write_records(records(), path)
    out = tmp_path / "out"
    reproduction.main(["--records", str(path), "--out", str(out)])
    readme = (out / "README.md").read_text()
    assert "not testable with this ladder" in readme and "nested: t over seeds" in readme
    assert "fine-tuned part" in readme and "was not run" in readme
    assert (out / "pgr_ladder.png").is_file() and (out / "training_length.png").is_file()
