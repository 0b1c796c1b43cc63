"""K classes: losses, metrics and calibration against hand-computed values (K=2 unchanged, K=10), K-class splits,
and a 4-class text file end to end (K=4 heads, metrics and PGR)."""

from __future__ import annotations

import json
import math
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.helpers.tiny import VOCAB, write_tiny_model
from w2slab.api import run
from w2slab.config import ExperimentConfig, RuntimeConfig, TrainConfig
from w2slab.data import load_task, make_splits
from w2slab.data.types import TaskData
from w2slab.diagnostics import brier_score, expected_calibration_error
from w2slab.errors import DataError
from w2slab.losses import balanced_assignment, class_quota, harden_predictions, make_loss
from w2slab.metrics import accuracy, auroc, pgr

# --- losses --------------------------------------------------------------------------------------------------


def test_xent_k10_hand_values():
    uniform = torch.zeros(3, 10)
    target = torch.eye(10)[[0, 4, 9]]
    assert make_loss("xent")(uniform, target).item() == pytest.approx(math.log(10), abs=1e-6)
    p = torch.tensor([0.4, 0.2, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.025, 0.025])
    logits = p.log()[None]
    assert make_loss("xent")(logits, torch.eye(10)[[1]]).item() == pytest.approx(-math.log(0.2), abs=1e-6)
    soft = torch.zeros(1, 10)
    soft[0, 0], soft[0, 1] = 0.5, 0.5  # -(0.5 ln .4 + 0.5 ln .2)
    assert make_loss("xent")(logits, soft).item() == pytest.approx(-(0.5 * math.log(0.4) + 0.5 * math.log(0.2)),
                                                                   abs=1e-6)


def test_binary_hardening_is_the_quantile_threshold_as_before():
    # p(class 0) = .9 .8 .3 .2; weak labels put 3/4 of their mass on class 1: threshold = quantile(p0, .75) = .825,
    # so the three examples with p0 < .825 become class 1
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.2, 0.8]])
    weak = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    assert harden_predictions(probs, weak).tolist() == [[1, 0], [0, 1], [0, 1], [0, 1]]


def test_class_quota_largest_remainders():
    assert class_quota(4, torch.tensor([0.5, 0.25, 0.25])) == [2, 1, 1]
    assert class_quota(10, torch.tensor([0.34, 0.33, 0.33])) == [4, 3, 3]
    assert sum(class_quota(7, torch.rand(10))) == 7


def test_k_class_hardening_keeps_the_weak_class_balance():
    # greedy over (example, class) from the most probable: (2,0)=.7, (0,0)=.6 fill class 0's quota of 2,
    # (3,2)=.6 takes class 2, example 1 falls back from class 0 (full) to class 1
    probs = torch.tensor([[0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.7, 0.2, 0.1], [0.2, 0.2, 0.6]])
    weak = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [1.0, 0, 0], [0, 0, 1.0]])  # shares .5 .25 .25
    assert balanced_assignment(probs, weak.mean(0)).tolist() == [0, 1, 0, 2]
    assert harden_predictions(probs, weak).argmax(-1).tolist() == [0, 1, 0, 2]
    # a batch smaller than K: per-batch shares are noise, the argmax is used
    small = torch.softmax(torch.randn(3, 10), -1)
    assert harden_predictions(small, torch.eye(10)[[0, 1, 2]]).argmax(-1).tolist() == small.argmax(-1).tolist()


def test_logconf_k10_hand_value():
    """At full weight (aux 1, no warm-up) the target is the hardened prediction: xent against it."""
    probs = torch.full((10, 10), 0.05)
    probs[torch.arange(10), torch.arange(10)] = 0.55  # each example's top class is its own index
    logits = probs.log()
    weak = torch.eye(10)  # one example per class: quotas all 1, so hardening = each example's own class
    loss = make_loss({"name": "logconf", "aux_weight": 1.0, "ramp_frac": 0.0, "ramp_start": 0.0})
    assert loss(logits, weak, 1.0).item() == pytest.approx(-math.log(0.55), abs=1e-5)
    # half weight: target .5 weak + .5 hard = the same one-hot here
    half = make_loss({"name": "logconf", "aux_weight": 0.5, "ramp_frac": 0.0, "ramp_start": 0.0})
    assert half(logits, weak, 1.0).item() == pytest.approx(-math.log(0.55), abs=1e-5)
    # weak labels that disagree with the student: target .5 on the weak class, .5 on the student's
    shifted = torch.eye(10)[[(i + 1) % 10 for i in range(10)]]
    expected = -(0.5 * math.log(0.05) + 0.5 * math.log(0.55))
    assert half(logits, shifted, 1.0).item() == pytest.approx(expected, abs=1e-5)


# --- metrics -----------------------------------------------------------------------------------------------------


def test_k10_accuracy_auroc_pgr_and_calibration_by_hand():
    labels = np.arange(10)
    perfect = np.full((10, 10), 0.01)
    perfect[labels, labels] = 0.91
    assert accuracy(perfect, labels) == 1.0
    assert auroc(perfect, labels) == pytest.approx(1.0)
    wrong = np.roll(perfect, 1, axis=1)  # every example's top class is the next one
    assert accuracy(wrong, labels) == 0.0
    # one-vs-rest: class c's score is .91 on example c-1 and .01 elsewhere, its positive (example c) scores .01:
    # AUROC_c = P(pos > neg) + .5 P(tie) = (0 + .5 * 8) / 9 = 4/9 for every class
    assert auroc(wrong, labels) == pytest.approx(4 / 9)
    # ECE: every example at confidence .91, accuracy 1 -> |1 - .91| = .09; Brier: .09^2 + 9 * .01^2 = .009
    assert expected_calibration_error(perfect, labels) == pytest.approx(0.09)
    assert brier_score(perfect, labels) == pytest.approx(0.0081 + 9 * 0.0001)
    assert pgr(0.5, 0.6, 0.7) == pytest.approx(0.5)


def test_binary_metrics_unchanged():
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.6, 0.4]])
    labels = np.array([0, 1, 1, 1])
    assert accuracy(probs, labels) == 0.75
    # p(class 1) of positives .6 .7 .4 vs the negative .1: all above it -> AUROC 1
    assert auroc(probs, labels) == 1.0


# --- K-class splits and user files ---------------------------------------------------------------------------


def _four_class_rows(n: int, seed: int = 0) -> list[dict]:
    """Texts whose class is which of w5..w8 they contain (learnable by a tiny model)."""
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        label = len(rows) % 4
        words = [f"w{rng.randrange(10, VOCAB)}" for _ in range(rng.randrange(3, 10))]
        words[rng.randrange(len(words))] = f"w{5 + label}"
        text = " ".join(words)
        if text not in seen:
            seen.add(text)
            rows.append({"text": text, "label": ["north", "east", "south", "west"][label]})
    return rows


def test_splits_balance_k_classes_and_binary_draws_are_unchanged():
    rows = [{"id": f"r{i}", "text": f"t{i}", "label": i % 4} for i in range(400)]
    task = TaskData("four", rows[:300], rows[300:], num_classes=4)
    splits = make_splits(task, n_train=42, n_test=20, seed=0)
    for split, n in ((splits.weak_train, 21), (splits.transfer, 21), (splits.test, 20)):
        counts = np.bincount([r["label"] for r in split], minlength=4)
        assert counts.sum() == n and counts.max() - counts.min() <= 1
    assert splits.num_classes == 4
    with pytest.raises(DataError, match="class 0 .*lower --n-test to at most 100"):
        make_splits(task, n_train=40, n_test=104, seed=0)
    # a binary task draws exactly the rows it drew before K classes (ids printed by the code of d2aeb76)
    binary = TaskData("two", [{"id": f"b{i}", "text": f"t{i}", "label": i % 2} for i in range(100)],
                      [{"id": f"c{i}", "text": f"u{i}", "label": i % 2} for i in range(40)])
    two = make_splits(binary, n_train=11, n_test=5, seed=3)
    assert [r["id"] for r in two.test] == ["c26", "c10", "c31", "c36", "c39"]
    assert sorted(r["id"] for r in two.weak_train) == ["b28", "b3", "b38", "b46", "b53"]
    assert [r["id"] for r in two.transfer] == ["b85", "b34", "b64", "b47", "b52", "b7"]


def test_user_file_infers_k_and_reports_it(tmp_path):
    path = tmp_path / "compass.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _four_class_rows(80)))
    task = load_task(str(path), label_map={"north": 0, "east": 1, "south": 2, "west": 3})
    assert task.num_classes == 4 and task.class_names == ("north", "east", "south", "west")
    assert any("4 classes (labels 0..3: north, east, south, west)" in note for note in task.notes)
    numbered = tmp_path / "numbered.csv"
    numbered.write_text("text,label\n" + "".join(f"w{10 + i} w{20 + i},{i % 3}\n" for i in range(12)))
    assert load_task(str(numbered)).num_classes == 3


@pytest.fixture(scope="module")
def four_class_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("four")
    data = root / "compass.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _four_class_rows(600)))
    cfg = ExperimentConfig(
        dataset=str(data), weak=str(write_tiny_model(root / "weak", layers=1, hidden=16)),
        strong=str(write_tiny_model(root / "strong", layers=2, hidden=32, seed=1)), losses=["xent", "logconf"],
        label_map={"north": 0, "east": 1, "south": 2, "west": 3}, n_train=240, n_test=48, max_ctx=16,
        weak_train=TrainConfig(mode="full", epochs=1, batch_size=16, lr=1e-3),
        strong_train=TrainConfig(mode="full", epochs=8, batch_size=16, lr=3e-3))
    results = run(cfg, RuntimeConfig(run_root=str(root / "runs"), echo=lambda *a: None))
    return SimpleNamespace(results=results, cfg=cfg)


def test_a_four_class_text_file_runs_end_to_end(four_class_run):
    folder = four_class_run.results.folder
    metrics = json.loads((folder / "metrics.json").read_text())

    def predictions(name: str) -> tuple[np.ndarray, np.ndarray]:
        with np.load(folder / "predictions" / name) as data:
            return data["probs"], data["labels"]

    probs, labels = predictions("weak_test.npz")
    assert probs.shape == (48, 4) and set(labels.tolist()) == {0, 1, 2, 3}  # K=4 heads, balanced test set
    weak = metrics["weak"]["accuracy"]
    ceiling = metrics["ceiling"]["accuracy"]
    assert weak == pytest.approx(accuracy(probs, labels))
    assert metrics["weak"]["auroc"] == pytest.approx(auroc(probs, labels))  # macro one-vs-rest over 4 classes
    assert ceiling > 0.45  # chance is .25: the tiny strong model learns the 4-class task
    for loss, entry in metrics["students"].items():
        student_probs, _ = predictions(f"student_{loss}_test.npz")
        assert student_probs.shape == (48, 4)
        assert entry["accuracy"] == pytest.approx(accuracy(student_probs, labels))
        if ceiling > weak:
            assert entry["pgr"] == pytest.approx((entry["accuracy"] - weak) / (ceiling - weak))
