"""Preference pairs and Bradley-Terry reward models: each text scored alone, a pair's logits (score(b), score(a))."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from w2slab.cli import main
from w2slab.data.custom import load_custom_file
from w2slab.data.types import content, is_pair
from w2slab.models.loading import PairwiseScorer, ProbeHead


def test_a_pair_is_scored_text_by_text_and_swapping_it_swaps_the_preference():
    from tests.helpers.tiny import tiny_bert, toy_collate
    from w2slab.models.loading import zero_head

    bert = tiny_bert()
    bert.head = zero_head(32, 1)  # one score per text
    scorer = PairwiseScorer(bert).eval()  # no dropout
    torch.nn.init.normal_(scorer.head.weight)  # a zero head scores every text 0
    a, b = [11, 7, 12], [13, 14, 15, 16]
    collate = toy_collate()
    forward = scorer(**{k: v for k, v in collate([{"input_ids": a, "input_ids_b": b, "index": 0},
                                                   {"input_ids": b, "input_ids_b": a, "index": 1}]).items()
                        if k in ("input_ids", "attention_mask")})
    alone = scorer.scorer(**{k: v for k, v in collate([{"input_ids": a, "index": 0},
                                                       {"input_ids": b, "index": 1}]).items()
                             if k in ("input_ids", "attention_mask")}).squeeze(-1)
    # logits of (a, b) are (score(b), score(a)), each score what the text gets alone (padding changes nothing)
    assert torch.allclose(forward[0], torch.stack([alone[1], alone[0]]), atol=1e-5)
    assert torch.allclose(forward[1], forward[0].flip(-1), atol=1e-5)
    p = forward.softmax(-1)[:, 1]
    assert p[0].item() == pytest.approx(1 - p[1].item(), abs=1e-6)
    assert p[0].item() == pytest.approx(torch.sigmoid(alone[0] - alone[1]).item(), abs=1e-6)


def test_a_probe_scorer_reads_each_texts_features():
    head = ProbeHead(4, 1)
    torch.nn.init.normal_(head.head.weight)
    features = torch.randn(3, 2, 4)
    logits = PairwiseScorer(head)(features=features)
    scores = head(features.reshape(6, 4)).reshape(3, 2)
    assert torch.allclose(logits, scores.flip(-1))


def test_a_file_of_chosen_and_rejected_texts_is_pairs_in_a_fixed_balanced_order(tmp_path):
    from tests.helpers.tiny import write_toy_preferences

    path = write_toy_preferences(tmp_path / "prefs.jsonl", n=400)
    with path.open("a") as fh:
        fh.write(json.dumps({"chosen": "w10 w11", "rejected": "w10 w11 "}) + "\n")  # nothing to prefer
    task = load_custom_file(path)
    rows = task.train + task.test
    assert task.pairwise and all(is_pair(r) for r in rows) and len(rows) == 400
    originals = [json.loads(line) for line in path.read_text().splitlines()]
    chosen = {r["chosen"] for r in originals}
    for row in rows:  # label 1 exactly when the first text is the chosen one
        assert (row["text"] in chosen) == (row["label"] == 1)
    assert 0.4 < np.mean([r["label"] for r in rows]) < 0.6
    assert any("identical" in note for note in task.notes)
    again = load_custom_file(path)
    assert [content(r) for r in again.train] == [content(r) for r in task.train]


def test_an_empty_rejected_text_is_one_line_naming_the_row(tmp_path):
    from w2slab.errors import DataError

    path = tmp_path / "prefs.jsonl"
    path.write_text(json.dumps({"chosen": "w10", "rejected": "w11"}) + "\n"
                    + json.dumps({"chosen": "w12", "rejected": " "}) + "\n")
    with pytest.raises(DataError, match="row 2: empty chosen or rejected"):
        load_custom_file(path)


def test_a_probe_reward_model_trained_by_the_trainer_learns_which_features_are_preferred():
    """Features [N, 2, H] of pairs whose chosen text is the one with the larger first coordinate."""
    from w2slab.config import TrainConfig
    from w2slab.losses import make_loss
    from w2slab.train.batching import Collator
    from w2slab.train.trainer import train_model

    rng = np.random.default_rng(0)
    features = rng.standard_normal((400, 2, 8)).astype(np.float32)
    labels = (features[:, 0, 0] > features[:, 1, 0]).astype(int)  # 1: the first text is preferred
    examples = [{"features": f, "index": i, "target": np.eye(2, dtype=np.float32)[y]}
                for i, (f, y) in enumerate(zip(features, labels, strict=True))]
    model = PairwiseScorer(ProbeHead(8, 1))
    train_model(model, examples, Collator(), make_loss("xent"), TrainConfig(mode="probe", epochs=5, batch_size=32,
                                                                         precision="fp32"), 1e-1, seed=0)
    with torch.no_grad():
        logits = model(features=torch.from_numpy(features))
    assert (logits.argmax(-1).numpy() == labels).mean() > 0.95
    weight = model.head.weight.detach().numpy()[0]
    assert weight[0] > 5 * np.abs(weight[1:]).max()  # it scores the first coordinate, and little else


def test_reward_models_learn_a_preference_and_accuracy_is_chosen_scored_higher(tmp_path):
    """Trained on ground truth, a reward model scores the chosen text higher on held-out pairs; the saved test
    probability of a pair is sigmoid(score(first) - score(second))."""
    from tests.helpers.tiny import write_tiny_model, write_toy_preferences

    data = write_toy_preferences(tmp_path / "prefs.jsonl", n=500)
    weak = write_tiny_model(tmp_path / "weak", layers=1, hidden=16)
    strong = write_tiny_model(tmp_path / "strong", layers=1, hidden=32, seed=1)
    root = tmp_path / "runs"
    assert main(["run", "--dataset", str(data), "--weak", str(weak), "--strong", str(strong), "--n-train", "240",
                 "--n-test", "80", "--max-ctx", "16", "--losses", "xent", "--weak.mode", "full", "--strong.mode",
                 "full", "--epochs", "4", "--strong.lr", "1e-3", "--weak.lr", "1e-3", "--weak.head_lr", "1e-1",
                 "--strong.head_lr", "1e-1", "--run-root", str(root), "--name",
                 "rm"]) == 0
    metrics = json.loads((root / "rm" / "metrics.json").read_text())
    for role in ("weak", "ceiling"):  # chance is .5: both tiny random encoders learned to score w7 up
        assert metrics[role]["accuracy"] >= 0.8 and metrics[role]["auroc"] >= 0.9, metrics[role]
    test = [json.loads(line) for line in (root / "rm" / "predictions" / "test.jsonl").read_text().splitlines()]
    assert all("text_b" in row for row in test)
    with np.load(root / "rm" / "predictions" / "ceiling_test.npz") as saved:
        logits, probs = saved["logits"], saved["probs"]
    chosen_first = np.array([row["label"] for row in test]) == 1
    # accuracy is how often the chosen text scores higher: logit 1 is score(first), logit 0 score(second)
    chosen_higher = np.where(chosen_first, logits[:, 1] > logits[:, 0], logits[:, 0] > logits[:, 1])
    assert chosen_higher.mean() == pytest.approx(metrics["ceiling"]["accuracy"])
    assert len(np.unique(probs[:, 1].round(4))) > 20  # scores, not a few tied values


def test_anthropic_hh_is_pairs_of_last_exchanges_labelled_by_which_is_chosen(data_root):
    from w2slab.data import load_task
    from w2slab.data.formatters import last_exchange
    from w2slab.data.readers import read_anthropic_hh

    task = load_task("anthropic_hh", data_root=str(data_root), seed=0)
    assert task.pairwise and task.num_classes == 2
    raw = read_anthropic_hh(Path(data_root) / "anthropic_hh", "all")
    chosen = {last_exchange(r["chosen"]) for r in raw}
    assert all(r["text"].startswith("Human:") and "\n\nAssistant:" in r["text"] for r in task.train[:300])
    rows = task.train[:300]
    assert all((r["text"] in chosen) == (r["label"] == 1) for r in rows)
    assert 0.4 < np.mean([r["label"] for r in task.train]) < 0.6
