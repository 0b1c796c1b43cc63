"""The fast path: per-example caches, length-grouped batches, dropout-free training, one-pass predictions.

Speed itself is measured by ``benchmarks/speed.py``; these tests check that each shortcut computes the
same thing as the long way round, and that what should be reused is reused.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.helpers.tiny import tiny_bert, toy_collate, toy_examples, write_tiny_model, write_toy_dataset
from w2slab.config import ExperimentConfig, RuntimeConfig, TrainConfig
from w2slab.data import load_task, make_splits
from w2slab.example_store import ExampleStore, text_key
from w2slab.losses import make_loss
from w2slab.models.loading import resolve_model
from w2slab.pipeline import role_model
from w2slab.pipeline.role_model import RoleModel
from w2slab.train.trainer import Trainer, TrainerCallback, _epoch_order, train_model


def test_example_store_round_trips_ragged_values_across_instances(tmp_path):
    store = ExampleStore(tmp_path / "s")
    store.add(["a", "bb"], [np.array([1, 2, 3]), np.array([4])])
    values, missing = ExampleStore(tmp_path / "s").get(["bb", "c", "a"])  # a new reader sees the shard
    assert missing == [1]
    assert values[0].tolist() == [4] and values[2].tolist() == [1, 2, 3] and values[1] is None
    store.add(["c"], [np.array([7.5, 8.5])])
    assert len(list((tmp_path / "s").glob("shard-*.npz"))) == 2  # append-only: one shard per add
    values, missing = store.get(["c"])
    assert missing == [] and values[0].tolist() == [7.5, 8.5]


def test_example_store_ignores_a_foreign_or_broken_shard(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "shard-broken.npz").write_bytes(b"not a zip")
    store = ExampleStore(folder)
    store.add(["x"], [np.array([1.0])])
    assert store.get(["x"])[1] == [] and len(store) == 1
    assert text_key("x") != text_key("x ")  # keyed by the exact text


def test_length_grouped_order_is_a_seeded_permutation_with_little_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 120, size=400).tolist()
    order = _epoch_order(400, seed=0, epoch=0, lengths=lengths, batch_size=16)
    assert sorted(order) == list(range(400))
    assert order == _epoch_order(400, seed=0, epoch=0, lengths=lengths, batch_size=16)  # resumable
    assert order != _epoch_order(400, seed=0, epoch=1, lengths=lengths, batch_size=16)  # reshuffled per epoch

    def padded(order):
        batches = [order[i:i + 16] for i in range(0, len(order), 16)]
        return sum(max(lengths[i] for i in b) * len(b) for b in batches)

    random_order = _epoch_order(400, seed=0, epoch=0)
    assert padded(order) < 0.7 * padded(random_order)


def test_training_logs_real_and_padded_tokens_and_groups_by_length():
    examples = toy_examples()
    padded = {}
    for grouped in (False, True):
        cfg = TrainConfig(epochs=1, batch_size=8, precision="fp32", group_by_length=grouped)
        result = train_model(tiny_bert(), examples, toy_collate(), make_loss("xent"), cfg, lr=1e-3, seed=0)
        rows = result.log
        assert sum(r["examples"] for r in rows) == len(examples)
        assert sum(r["tokens"] for r in rows) == sum(len(e["input_ids"]) for e in examples)
        assert all(r["seconds"] > 0 and r["padded_tokens"] >= r["tokens"] for r in rows)
        padded[grouped] = sum(r["padded_tokens"] for r in rows)
    assert padded[True] < padded[False]


class _RecordsMode(TrainerCallback):
    def __init__(self):
        self.modes = []

    def on_step_end(self, trainer, state, row):
        self.modes.append({m.training for m in trainer.model.modules() if isinstance(m, torch.nn.Dropout)})


@pytest.mark.parametrize("dropout", [False, True])
def test_dropout_flag_decides_whether_dropout_runs_while_training(dropout):
    cfg = TrainConfig(epochs=1, batch_size=16, precision="fp32", dropout=dropout)
    record = _RecordsMode()
    Trainer(tiny_bert(), toy_examples(), toy_collate(), make_loss("xent"), cfg, 1e-3, seed=0,
            callbacks=[record]).train()
    assert record.modes and all(modes == {dropout} for modes in record.modes)


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("speed")
    return {"model": str(write_tiny_model(root / "m", layers=1, hidden=16)),
            "data": str(write_toy_dataset(root / "toy.jsonl", n=300))}


def test_token_store_gives_what_the_tokenizer_gives(tiny_files, tmp_path):
    rows = make_splits(load_task(tiny_files["data"]), n_train=40, n_test=20, seed=0).test
    plain = RoleModel("m", resolve_model(tiny_files["model"]), TrainConfig(), 8, "left")
    stored = RoleModel("m", resolve_model(tiny_files["model"]), TrainConfig(), 8, "left", store_root=tmp_path)
    again = RoleModel("m", resolve_model(tiny_files["model"]), TrainConfig(), 8, "left", store_root=tmp_path)
    a, b = plain.encode("test", rows), stored.encode("test", rows)
    c = again.encode("test", rows)  # from the store: this object never loads its tokenizer
    assert a.examples == b.examples == c.examples and a.n_truncated == b.n_truncated == c.n_truncated > 0
    assert "tokenizer" not in vars(again)
    other_ctx = RoleModel("m", resolve_model(tiny_files["model"]), TrainConfig(), 12, "left", store_root=tmp_path)
    assert other_ctx.encode("test", rows).examples != a.examples  # max_ctx is part of the store's key


def test_a_new_seed_of_one_data_seed_extracts_no_features(tiny_files, tmp_path):
    from w2slab.api import sweep

    probe = TrainConfig(mode="probe", epochs=1, batch_size=16, precision="fp32")

    def run(seeds):
        role_model.COMPUTE_SECONDS.clear()
        configs = [ExperimentConfig(dataset=tiny_files["data"], weak=tiny_files["model"], strong=tiny_files["model"],
                                    losses=["xent"], n_train=60, n_test=20, max_ctx=16, seed=s,
                                    weak_train=probe, strong_train=probe) for s in seeds]
        result = sweep(configs, RuntimeConfig(run_root=str(tmp_path), echo=lambda *a: None))
        return result, dict(role_model.COMPUTE_SECONDS)

    first, spent = run([0])
    assert spent.get("features", 0) > 0
    second, spent = run([1, 2])
    assert "features" not in spent and "tokens" not in spent  # the pool's every text was seen by seed 0
    assert len(second.results) == 2
    with np.load(next((tmp_path / "stages" / "features").glob("*/features.npz"))) as data:
        assert data["transfer"].shape == (30, 16)
    about = [json.loads(p.read_text()) for p in (tmp_path / "examples").glob("*/*/about.json")]
    assert {a["kind"] for a in about} == {"tokens", "features"}


def test_predictions_on_several_splits_in_one_pass_equal_one_split_at_a_time(tiny_files):
    splits = make_splits(load_task(tiny_files["data"]), n_train=40, n_test=20, seed=0)
    model = RoleModel("m", resolve_model(tiny_files["model"]), TrainConfig(precision="fp32"), 16, "left")
    model.encode("transfer", splits.transfer)
    model.encode("test", splits.test)
    net = model.new_model()
    together = model.predict_splits(net, ("transfer", "test"))
    for name in ("transfer", "test"):
        np.testing.assert_allclose(together[name], model.predict(net, name), atol=1e-5)
        assert together[name].shape == (len(model.splits[name].examples), 2)


def test_fp16_on_a_cpu_says_it_will_crawl(tiny_files, tmp_path):
    from w2slab.api import sweep

    said = []
    half = TrainConfig(mode="probe", epochs=1, precision="fp16")
    cfg = ExperimentConfig(dataset=tiny_files["data"], weak=tiny_files["model"], strong=tiny_files["model"],
                           losses=["xent"], n_train=20, n_test=10, max_ctx=16, weak_train=half, strong_train=half)
    sweep([cfg], RuntimeConfig(run_root=str(tmp_path), echo=said.append), plan_only=True)
    assert any("fp16 on a CPU" in line and "bf16" in line for line in said)


def test_checkpoints_wait_for_their_minimum_interval(tmp_path, monkeypatch):
    import w2slab.train.trainer as trainer_module

    clock = {"now": 0.0}
    monkeypatch.setattr(trainer_module.time, "monotonic", lambda: clock["now"])

    class Tick(TrainerCallback):  # each step takes 10 "seconds"; runs before the checkpoint callback looks
        def on_step_end(self, trainer, state, row):
            clock["now"] += 10.0

    saved = []
    original = trainer_module.CheckpointCallback.save
    monkeypatch.setattr(trainer_module.CheckpointCallback, "save",
                        lambda self, trainer, state: saved.append(state.step) or original(self, trainer, state))
    cfg = TrainConfig(epochs=3, batch_size=8, precision="fp32")  # 24 steps
    trainer = Trainer(tiny_bert(), toy_examples(), toy_collate(), make_loss("xent"), cfg, 1e-3, seed=0,
                      checkpoint_dir=tmp_path, checkpoint_every=2, checkpoint_seconds=55.0)
    trainer.callbacks.insert(0, Tick())
    trainer.train()
    assert saved == [6, 12, 18]  # every 2 steps, but no sooner than 55 s after the last save
