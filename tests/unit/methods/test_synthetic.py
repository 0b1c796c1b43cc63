"""The planted Gaussian task: theory gives its PGR, and the harness must measure it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from w2slab.cli import main
from w2slab.data.vectors import GAUSSIAN_W2S, GaussianW2S, decode_vector, encode_vector


def test_theory_gives_pgr_0_when_every_weak_error_can_be_imitated_and_1_when_every_one_is_noise():
    assert GaussianW2S(sigma=0.0).theory()["pgr"] == pytest.approx(0.0, abs=1e-12)  # only the blind spot
    assert GaussianW2S(theta_degrees=0.0).theory()["pgr"] == pytest.approx(1.0)  # only the noise
    theory = GAUSSIAN_W2S.theory()
    assert theory["student"] == pytest.approx(1 - 20 / 180)
    assert theory["weak"] == pytest.approx(1 - math.degrees(math.acos(math.cos(math.radians(20)) / math.sqrt(2)))
                                           / 180)
    assert 0.5 < theory["pgr"] < 0.65


def test_the_planted_structure_holds_in_the_sample():
    """The label is the sign of w.x, and the weak view is the first half of x seen through unit noise: the
    Bayes classifier of each view has the accuracy theory gives, within sampling error."""
    task = GaussianW2S()
    vectors, labels = task.sample(20_000, seed=1)
    x, view = vectors[:, :task.dim], vectors[:, task.dim:]
    theta = math.radians(task.theta_degrees)
    assert np.mean((x[:, 0] * math.cos(theta) + x[:, task.half] * math.sin(theta) > 0) == labels) == 1.0
    assert np.mean((x[:, 0] > 0) == labels) == pytest.approx(task.theory()["student"], abs=0.01)
    assert np.mean((view[:, 0] > 0) == labels) == pytest.approx(task.theory()["weak"], abs=0.01)
    assert np.std(view[:, 0] - x[:, 0]) == pytest.approx(task.sigma, rel=0.03)
    row = encode_vector(vectors[0])
    assert np.array_equal(decode_vector(row), vectors[0])


def test_a_vector_that_is_not_base64_floats_is_one_line():
    from w2slab.errors import DataError

    with pytest.raises(DataError, match="not base64"):
        decode_vector("not a vector!")


@pytest.mark.integration
def test_the_measured_pgr_is_within_its_interval_of_the_known_value(tmp_path):
    """Full runs (linear weak and strong models trained by the harness's own trainer) on the planted task, three
    seeds: each seed's 95% PGR interval (test examples resampled) and the pooled one (seeds, then test examples)
    hold the population PGR (w2slab.stats), and each accuracy is within .02 of its population value (the finite
    sample pulls the ceiling a little below 1)."""
    from w2slab.stats import pgr_estimate

    theory = GAUSSIAN_W2S.theory()
    root = tmp_path / "runs"
    runs = []
    for seed in (0, 1, 2):
        name = f"planted{seed}"
        assert main(["run", "--dataset", "gaussian_w2s", "--weak", GAUSSIAN_W2S.weak_model, "--strong",
                     GAUSSIAN_W2S.strong_model, "--n-train", "10000", "--n-test", "8000", "--losses", "xent",
                     "--seed", str(seed), "--run-root", str(root), "--name", name]) == 0
        folder = root / name
        metrics = json.loads((folder / "metrics.json").read_text())
        student = metrics["students"]["xent"]
        low, high = student["pgr_ci95"]
        assert low <= theory["pgr"] <= high, (seed, student, theory)
        assert metrics["weak"]["accuracy"] == pytest.approx(theory["weak"], abs=0.02)
        assert student["accuracy"] == pytest.approx(theory["student"], abs=0.02)
        assert metrics["ceiling"]["accuracy"] == pytest.approx(theory["ceiling"], abs=0.02)
        assert not metrics["suspect"], metrics["suspect"]
        labels = np.array([json.loads(line)["label"] for line in
                           (folder / "predictions" / "test.jsonl").read_text().splitlines()])
        correct = {}
        for role, file in (("weak", "weak_test"), ("student", "student_xent_test"), ("ceiling", "ceiling_test")):
            with np.load(folder / "predictions" / f"{file}.npz") as saved:
                correct[role] = saved["probs"].argmax(-1) == labels
        runs.append(correct)
    pooled = pgr_estimate(runs)
    assert pooled.ci95[0] <= theory["pgr"] <= pooled.ci95[1], (pooled, theory)
    assert pooled.ci95[1] - pooled.ci95[0] < 0.1  # an interval that says something
