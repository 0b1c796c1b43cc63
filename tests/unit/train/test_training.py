"""Training engine and model wrapper on tiny models built from configs (no downloads)."""

import json

import numpy as np
import pytest
import torch

from tests.helpers.tiny import tiny_bert, tiny_llama, tiny_tokenizer, toy_collate, toy_examples
from w2slab.config import TrainConfig
from w2slab.losses import make_loss
from w2slab.models.loading import apply_training_mode, pool
from w2slab.models.registry import FAMILIES
from w2slab.train.batching import Collator
from w2slab.train.trainer import predict_logits, train_model


def test_pooling_uses_attention_mask_not_pad_ids():
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    assert pool(hidden, mask, "last").squeeze(-1).tolist() == [2.0, 5.0]
    assert pool(hidden, mask, "mean").squeeze(-1).tolist() == [1.0, 4.5]
    assert pool(hidden, mask, "cls").squeeze(-1).tolist() == [0.0, 4.0]
    left = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1]])  # left padding
    assert pool(hidden, left, "last").squeeze(-1).tolist() == [3.0, 7.0]
    assert pool(hidden, left, "cls").squeeze(-1).tolist() == [1.0, 6.0]


def test_decoder_logits_ignore_pad_token_that_also_appears_in_text():
    # pad id == eos id == 2, and 2 also occurs inside the text: pooling must still pick the true last token
    model = tiny_llama().eval()
    text = [5, 2, 9, 11]
    collate = Collator(tiny_tokenizer(pad_token="[CLS]"))  # pad id 2
    alone = collate([{"input_ids": text, "index": 0}])
    padded = collate([{"input_ids": text, "index": 0}, {"input_ids": text + [12, 13, 14], "index": 1}])
    with torch.no_grad():
        a = model(alone["input_ids"], alone["attention_mask"])[0]
        model.head.weight.data.normal_()
        a = model(alone["input_ids"], alone["attention_mask"])[0]
        b = model(padded["input_ids"], padded["attention_mask"])[0]
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("make_model, mode", [(tiny_bert, "full"), (tiny_llama, "full"), (tiny_bert, "lora")])
def test_training_lowers_the_loss(make_model, mode):
    model = make_model()
    family = FAMILIES["bert"] if make_model is tiny_bert else FAMILIES["llama"]
    model = apply_training_mode(model, mode, family, lora_targets="all-linear")
    cfg = TrainConfig(mode=mode, epochs=6, batch_size=16, warmup_frac=0.1, precision="fp32")
    examples = toy_examples()
    collate = toy_collate()
    lr = 3e-3 if mode == "full" else 2e-2  # adapters on a random tiny base need a larger step
    result = train_model(model, examples, collate, make_loss("xent"), cfg, lr=lr, seed=0, desc="t")
    losses = [row["loss"] for row in result.log]
    assert np.mean(losses[-4:]) < np.mean(losses[:4]) - 0.1
    assert result.stability.steps == len(result.log) == 24
    assert result.stability.skipped_steps == 0
    assert all(np.isfinite(row["grad_norm"]) for row in result.log)
    logits = predict_logits(model, examples, collate, batch_size=8, precision="fp32")
    assert logits.shape == (64, 2)
    assert ((logits.argmax(-1) == np.arange(64) % 2).mean()) > 0.7


def test_warmup_and_clipping_are_applied():
    model = apply_training_mode(tiny_bert(), "full", FAMILIES["bert"])
    cfg = TrainConfig(epochs=2, batch_size=16, warmup_frac=0.5, max_grad_norm=1e-3, precision="fp32")
    result = train_model(model, toy_examples(), toy_collate(), make_loss("xent"), cfg, lr=1e-3, seed=0, desc="t")
    lrs = [row["lr"] for row in result.log]
    assert lrs[0] == 0.0 and lrs[4] == pytest.approx(1e-3) and lrs[-1] < lrs[4]
    assert np.argmax(lrs) == 4  # 8 steps, 4 warm-up steps, then decay


def test_lora_and_probe_train_only_adapters_and_head():
    lora = apply_training_mode(tiny_bert(), "lora", FAMILIES["bert"], lora_targets="all-linear")
    names = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n or n.startswith("head.") for n in names)
    probe = apply_training_mode(tiny_bert(), "probe", FAMILIES["bert"])
    assert [n for n, p in probe.named_parameters() if p.requires_grad] == ["head.weight", "head.bias"]


def test_training_is_deterministic_in_the_seed():
    def run(seed):
        model = apply_training_mode(tiny_bert(), "full", FAMILIES["bert"])
        cfg = TrainConfig(epochs=1, batch_size=16, precision="fp32")
        return [r["loss"] for r in train_model(model, toy_examples(), toy_collate(), make_loss("xent"), cfg,
                                               lr=1e-3, seed=seed, desc="t").log]

    assert run(1) == run(1)
    assert run(1) != run(2)


class Crash(Exception):
    pass


def test_resume_from_checkpoint_matches_an_uninterrupted_run(tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=16, precision="fp32")  # 12 steps over 3 shuffled epochs
    loss = make_loss("xent")

    def fresh():
        torch.manual_seed(0)
        return apply_training_mode(tiny_bert(), "full", FAMILIES["bert"])

    reference_model = fresh()
    reference = train_model(reference_model, toy_examples(), toy_collate(), loss, cfg, lr=1e-3, seed=5, desc="ref")

    def crashing_loss(logits, labels, step_frac):
        if step_frac >= 7 / 12:  # dies in step 7, after the checkpoint of step 6
            raise Crash()
        return loss(logits, labels, step_frac)

    with pytest.raises(Crash):
        train_model(fresh(), toy_examples(), toy_collate(), crashing_loss, cfg, lr=1e-3, seed=5, desc="a",
                    checkpoint_dir=tmp_path, checkpoint_every=3)
    assert (tmp_path / "checkpoint-latest.json").exists()
    resumed_model = fresh()
    resumed = train_model(resumed_model, toy_examples(), toy_collate(), loss, cfg, lr=1e-3, seed=5, desc="b",
                          checkpoint_dir=tmp_path, checkpoint_every=3)
    assert [r["loss"] for r in resumed.log] == [r["loss"] for r in reference.log]
    for a, b in zip(reference_model.parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_tensorboard_tracking_writes_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    model = apply_training_mode(tiny_bert(), "full", FAMILIES["bert"])
    cfg = TrainConfig(epochs=1, batch_size=16, precision="fp32")
    train_model(model, toy_examples(), toy_collate(), make_loss("xent"), cfg, lr=1e-3, seed=0, desc="tb run",
                trackers=("tensorboard",), tracking_dir=tmp_path)
    events = list(tmp_path.rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_trainer_state_round_trips_through_json():
    from w2slab.train.trainer import TrainerState

    state = TrainerState(step=3, total_steps=8, steps_per_epoch=4, log=[{"step": 0, "loss": 0.5}], grad_norms=[1.0],
                         skipped=1, evaluations=[{"step": 2, "accuracy": 0.5}])
    assert TrainerState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_periodic_evaluation_records_a_named_split_and_changes_nothing():
    from w2slab.train.trainer import PeriodicEvaluation

    cfg = TrainConfig(epochs=3, batch_size=16, precision="fp32")

    def train(callbacks):
        model = apply_training_mode(tiny_bert(), "full", FAMILIES["bert"])
        return train_model(model, toy_examples(), toy_collate(), make_loss("xent"), cfg, lr=3e-3, seed=0, desc="t",
                           callbacks=callbacks)

    evaluation = PeriodicEvaluation("val", toy_examples(32, seed=1), every=5)
    watched, plain = train([evaluation]), train([])
    assert [row["loss"] for row in watched.log] == [row["loss"] for row in plain.log]  # no RNG drawn, no drift
    rows = watched.state.evaluations
    assert [row["step"] for row in rows] == [5, 10, 12] and {row["split"] for row in rows} == {"val"}
    assert all(0.0 <= row["accuracy"] <= 1.0 and row["loss"] > 0 for row in rows)


def test_a_callback_can_stop_training_early():
    from w2slab.train.trainer import TrainerCallback

    class StopAt(TrainerCallback):
        def on_step_end(self, trainer, state, row):
            state.should_stop = state.step >= 5

    model = apply_training_mode(tiny_bert(), "full", FAMILIES["bert"])
    cfg = TrainConfig(epochs=3, batch_size=16, precision="fp32")
    result = train_model(model, toy_examples(), toy_collate(), make_loss("xent"), cfg, lr=3e-3, seed=0, desc="t",
                         callbacks=[StopAt()])
    assert result.stability.steps == 5 and len(result.log) == 5


def test_per_example_weights_reach_the_loss():
    seen = []

    class Recording:
        def __call__(self, logits, labels, step_frac, weights=None):
            seen.append(weights)
            return make_loss("xent")(logits, labels, step_frac, weights=weights)

    examples = [dict(e, weight=float(e["index"] % 2)) for e in toy_examples()]
    cfg = TrainConfig(epochs=1, batch_size=16, precision="fp32")
    train_model(tiny_bert(), examples, toy_collate(), Recording(), cfg, lr=1e-3, seed=0)
    assert len(seen) == 4 and all(w is not None and w.shape == (16,) for w in seen)
    assert sorted(torch.cat(seen).tolist()) == [0.0] * 32 + [1.0] * 32  # each example's own weight, once


def test_lp_ft_fits_the_head_on_frozen_features_before_fine_tuning():
    """head_init: probe (LP-FT): the head starts as a logistic regression on the frozen features, so the model
    separates the classes before its first step; with a class missing the head stays at zero."""
    from w2slab.pipeline.role_model import fit_probe_head

    rng = np.random.default_rng(0)
    labels = np.arange(200) % 2
    features = rng.normal(size=(200, 8)).astype(np.float32)
    features[:, 0] += 2.0 * (2 * labels - 1)
    targets = np.eye(2, dtype=np.float32)[labels] * 0.8 + 0.1  # soft labels, argmax = the label
    head = torch.nn.Linear(8, 2)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    assert fit_probe_head(head, features, targets)
    with torch.no_grad():
        predicted = head(torch.from_numpy(features)).argmax(-1).numpy()
    assert (predicted == labels).mean() > 0.9
    empty = torch.nn.Linear(8, 2)
    torch.nn.init.zeros_(empty.weight)
    assert not fit_probe_head(empty, features, np.eye(2, dtype=np.float32)[np.zeros(200, dtype=int)])
    assert float(empty.weight.detach().abs().sum()) == 0.0
    assert TrainConfig(head_init="probe").head_init == "probe"


def test_off_a_terminal_progress_is_a_line_every_few_seconds_with_step_loss_and_eta(monkeypatch, capsys):
    """Under nohup or a batch scheduler the bar is invisible: a line with the step, the status and the ETA."""
    import sys

    from w2slab.progress import StageClock, progress_bar

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    monkeypatch.setenv("W2SLAB_PROGRESS_SECONDS", "0")  # every step
    monkeypatch.delenv("W2SLAB_QUIET", raising=False)
    capsys.readouterr()
    with progress_bar("student xent", 4, start=1) as advance:
        for loss in (0.6, 0.5, 0.4):
            advance(f"loss {loss:.3f}")
    lines = [line for line in capsys.readouterr().out.splitlines() if "student xent" in line]
    assert len(lines) == 2  # steps 2 and 3; the last step needs no ETA
    assert "step 2/4 (50%)  loss 0.600" in lines[0] and "elapsed" in lines[0] and "ETA" in lines[0]
    clock = StageClock(["split", "weak_train", "weak_train", "student"])
    assert clock.line(0) == "stage 1 of 4, 0s elapsed"
    clock.record("split", 1.0)
    clock.record("weak_train", 60.0)
    assert "ETA" not in clock.line(2)  # no student has run yet: its time is unknown, so no guess
    clock.record("student", 30.0)
    assert clock.line(2).endswith("ETA ~1m30s")  # one more weak_train (60 s) and a student (30 s)


def test_a_loss_with_a_memory_resumes_it_from_the_checkpoint(tmp_path):
    """ELR keeps a running average per example: a resumed training must continue that memory, not restart it,
    to end where an uninterrupted run would."""
    from w2slab.losses import TrainingContext

    cfg = TrainConfig(epochs=3, batch_size=16, precision="fp32")

    def fresh():
        torch.manual_seed(0)
        return apply_training_mode(tiny_bert(), "full", FAMILIES["bert"])

    def elr():
        return make_loss({"name": "elr", "lam": 3.0}).for_training(TrainingContext())

    class CrashingAt:
        """The ELR loss that dies in step 7 (after the checkpoint of step 6), its memory checkpointed as ELR's."""

        needs = frozenset({"indices"})

        def __init__(self, inner):
            self.inner = inner

        def __call__(self, logits, labels, step_frac, indices=None):
            if step_frac >= 7 / 12:
                raise Crash()
            return self.inner(logits, labels, step_frac, indices=indices)

        def state_dict(self):
            return self.inner.state_dict()

        def load_state_dict(self, state):
            self.inner.load_state_dict(state)

    reference_model = fresh()
    reference = train_model(reference_model, toy_examples(), toy_collate(), elr(), cfg, lr=1e-3, seed=5, desc="ref")
    with pytest.raises(Crash):
        train_model(fresh(), toy_examples(), toy_collate(), CrashingAt(elr()), cfg, lr=1e-3, seed=5, desc="a",
                    checkpoint_dir=tmp_path, checkpoint_every=3)
    resumed_model = fresh()
    resumed = train_model(resumed_model, toy_examples(), toy_collate(), elr(), cfg, lr=1e-3, seed=5, desc="b",
                          checkpoint_dir=tmp_path, checkpoint_every=3)
    assert [r["loss"] for r in resumed.log] == [r["loss"] for r in reference.log]
    for a, b in zip(reference_model.parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(a, b)


class EvilPickle:
    """Unpickling it writes a file: what a crafted ``custom_checkpoint_0.pkl`` could do on resume."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def crashed_elr_training(folder):
    """An ELR training killed in step 7 of 12, after its checkpoint of step 6 (memory included) in ``folder``."""
    from w2slab.losses import TrainingContext

    cfg = TrainConfig(epochs=3, batch_size=16, precision="fp32")
    inner = make_loss({"name": "elr", "lam": 3.0}).for_training(TrainingContext())

    class CrashingAt:
        needs = frozenset({"indices"})

        def __call__(self, logits, labels, step_frac, indices=None):
            if step_frac >= 7 / 12:
                raise Crash()
            return inner(logits, labels, step_frac, indices=indices)

        def state_dict(self):
            return inner.state_dict()

        def load_state_dict(self, state):
            inner.load_state_dict(state)

    torch.manual_seed(0)
    with pytest.raises(Crash):
        train_model(apply_training_mode(tiny_bert(), "full", FAMILIES["bert"]), toy_examples(), toy_collate(),
                    CrashingAt(), cfg, lr=1e-3, seed=5, desc="a", checkpoint_dir=folder, checkpoint_every=3)
    return cfg


def resume_elr(folder, cfg):
    from w2slab.losses import TrainingContext

    torch.manual_seed(0)
    return train_model(apply_training_mode(tiny_bert(), "full", FAMILIES["bert"]), toy_examples(), toy_collate(),
                       make_loss({"name": "elr", "lam": 3.0}).for_training(TrainingContext()), cfg, lr=1e-3, seed=5,
                       desc="b", checkpoint_dir=folder, checkpoint_every=3)


def test_a_loss_memory_is_checkpointed_as_tensors_and_a_pickle_in_a_checkpoint_never_runs(tmp_path):
    cfg = crashed_elr_training(tmp_path)
    checkpoint = tmp_path / json.loads((tmp_path / "checkpoint-latest.json").read_text())["dir"]
    assert (checkpoint / "loss_state.safetensors").is_file() and not list(checkpoint.glob("custom_checkpoint_*"))
    marker = tmp_path / "pwned"
    torch.save({"memory": EvilPickle(marker)}, checkpoint / "custom_checkpoint_0.pkl")
    resume_elr(tmp_path, cfg)
    assert not marker.exists()


@pytest.mark.parametrize("pointed", ["../elsewhere/checkpoint-6", "/tmp/checkpoint-6", "checkpoint-6/..", "x"])
def test_a_checkpoint_pointer_outside_the_stage_folder_is_refused(tmp_path, pointed):
    from w2slab.errors import TrainingError

    folder = tmp_path / "stage.partial"
    cfg = crashed_elr_training(folder)
    (folder / "checkpoint-latest.json").write_text(json.dumps({"dir": pointed}))
    with pytest.raises(TrainingError, match="not a checkpoint-N folder beside it; delete .*checkpoint-latest.json"):
        resume_elr(folder, cfg)
