"""Stability guards and the precision policy, on tiny models built from configs."""

import math

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel

from tests.helpers.tiny import tiny_bert, toy_collate, toy_examples
from w2slab.config import TrainConfig
from w2slab.errors import TrainingError
from w2slab.losses import make_loss
from w2slab.models.loading import ResolvedModel, apply_training_mode, load_classifier
from w2slab.models.registry import FAMILIES
from w2slab.train.precision import PrecisionPolicy, resolve_precision, run_modules_in_fp32
from w2slab.train.trainer import (
    BAD_STEPS_BEFORE_LR_CUT,
    SUSPECT_GRAD_SPIKE_RATIO,
    StabilityReport,
    TrainerState,
    train_model,
)


def test_auto_precision_on_cpu_is_bf16_only_with_native_bf16(monkeypatch):
    import w2slab.train.precision as precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", torch.device("cpu")) == "bf16"
    assert resolve_precision("fp16", torch.device("cpu")) == "fp16"
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"


def inf_grad_hook(bad_calls: set[int]):
    calls = {"n": 0}

    def hook(grad):
        calls["n"] += 1
        return torch.full_like(grad, float("inf")) if calls["n"] in bad_calls else grad

    return hook


@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_injected_inf_gradient_is_skipped_and_training_recovers(precision):
    model = apply_training_mode(tiny_bert(), "full", FAMILIES["bert"])
    model.head.weight.register_hook(inf_grad_hook({3, 4}))  # inf gradients at steps 2 and 3 (0-based)
    cfg = TrainConfig(epochs=6, batch_size=16, precision=precision)
    result = train_model(model, toy_examples(), toy_collate(), make_loss("xent"), cfg, lr=3e-3, seed=0, desc="t")
    steps = [row for row in result.log if "loss" in row]
    if precision == "fp16":  # the scaler finds the inf gradients, skips and backs off: counted, not a bad step
        assert [row["scaler_backoff"] for row in steps[:5]] == [False, False, True, True, False]
        assert not any(row["skipped"] for row in steps)
        assert result.stability.skipped_steps == 0 and result.stability.scaler_backoffs == 2
    else:
        assert [row["skipped"] for row in steps[:5]] == [False, False, True, True, False]
        assert "scaler_backoff" not in steps[0]
        assert result.stability.skipped_steps == 2 and result.stability.scaler_backoffs == 0
    assert result.stability.precision == precision
    assert len(result.state.grad_norms) == len(steps) - 2  # only applied steps have a gradient norm
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert np.mean([r["loss"] for r in steps[-4:]]) < np.mean([r["loss"] for r in steps[:2]]) - 0.1


def test_repeated_bad_steps_cut_the_learning_rate():
    model = apply_training_mode(tiny_bert(), "full", FAMILIES["bert"])
    model.head.weight.register_hook(inf_grad_hook(set(range(2, 2 + BAD_STEPS_BEFORE_LR_CUT))))
    cfg = TrainConfig(epochs=2, batch_size=16, warmup_frac=0.0, scheduler="constant_with_warmup", precision="fp32")
    result = train_model(model, toy_examples(), toy_collate(), make_loss("xent"), cfg, lr=1e-3, seed=0, desc="t")
    assert result.stability.lr_cuts == 1
    assert [row for row in result.log if row.get("event") == "lr_cut"]
    lrs = [row["lr"] for row in result.log if "lr" in row]
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(5e-4)


def test_scaler_backoffs_are_counted_but_never_cut_the_learning_rate():
    model = apply_training_mode(tiny_bert(), "full", FAMILIES["bert"])
    n_bad = BAD_STEPS_BEFORE_LR_CUT + 1
    model.head.weight.register_hook(inf_grad_hook(set(range(2, 2 + n_bad))))
    cfg = TrainConfig(epochs=2, batch_size=16, warmup_frac=0.0, scheduler="constant_with_warmup", precision="fp16")
    result = train_model(model, toy_examples(), toy_collate(), make_loss("xent"), cfg, lr=1e-3, seed=0, desc="t")
    assert result.stability.scaler_backoffs == n_bad and result.state.scaler_backoffs == n_bad
    assert result.stability.skipped_steps == 0 and result.stability.lr_cuts == 0
    assert not [row for row in result.log if row.get("event") == "lr_cut"]
    assert [row["lr"] for row in result.log if "lr" in row] == pytest.approx([1e-3] * result.stability.steps)
    assert "scaler_backoffs=4" in result.stability.line()


def test_non_finite_loss_under_fp16_is_still_a_bad_step():
    model = apply_training_mode(tiny_bert(), "full", FAMILIES["bert"])
    xent, calls = make_loss("xent"), {"n": 0}

    def nan_at_first_steps(logits, labels, step_frac):
        calls["n"] += 1
        loss = xent(logits, labels, step_frac)
        return loss * float("nan") if calls["n"] in range(2, 2 + BAD_STEPS_BEFORE_LR_CUT) else loss

    cfg = TrainConfig(epochs=2, batch_size=16, warmup_frac=0.0, scheduler="constant_with_warmup", precision="fp16")
    result = train_model(model, toy_examples(), toy_collate(), nan_at_first_steps, cfg, lr=1e-3, seed=0, desc="t")
    assert result.stability.skipped_steps == BAD_STEPS_BEFORE_LR_CUT and result.stability.lr_cuts == 1
    assert result.stability.scaler_backoffs == 0


def test_a_step_another_rank_finds_bad_is_skipped_on_every_rank(monkeypatch):
    """Under DDP the bad flag is reduced (max) across ranks before deciding; simulated here in one process."""
    from w2slab.train.trainer import Trainer

    model = apply_training_mode(tiny_bert(), "full", FAMILIES["bert"])
    cfg = TrainConfig(epochs=1, batch_size=16, precision="fp32")
    trainer = Trainer(model, toy_examples(), toy_collate(), make_loss("xent"), cfg, lr=1e-3, seed=0, name="t")
    calls: list[tuple[float, str]] = []

    def reduce(tensor: torch.Tensor, reduction: str) -> torch.Tensor:
        calls.append((float(tensor), reduction))
        # two reductions per step (loss, then gradient norm): the other rank's loss is bad at step 2 (call 5),
        # its gradient norm at step 3 (call 7: step 2 stopped after its first reduction)
        return torch.tensor(1.0) if len(calls) in (5, 7) else tensor

    trainer.world_size = 2  # only the agreement: batches stay those of one process
    monkeypatch.setattr(trainer.accelerator, "reduce", reduce)
    result = trainer.train()
    assert [row["skipped"] for row in result.log] == [False, False, True, True]
    assert result.stability.skipped_steps == 2 and len(result.state.grad_norms) == 2
    assert {reduction for _, reduction in calls} == {"max"} and all(flag == 0.0 for flag, _ in calls)
    assert math.isfinite(result.log[3]["grad_norm"])  # this rank's own norm was fine: it skipped to agree


def log_of(losses: list[float]) -> list[dict]:
    return [{"step": i, "loss": loss, "grad_norm": 1.0, "lr": 1e-3, "skipped": False} for i, loss in enumerate(losses)]


def test_stability_report_flags_a_rising_loss():
    rising = TrainerState(step=30, log=log_of([0.6] * 10 + [0.7] * 10 + [0.9, float("nan")] * 5),
                          grad_norms=[1.0] * 30)
    report = StabilityReport.of(rising, "fp32")
    # the last 10 *finite* losses: five of 0.7, five of 0.9 (the NaN steps are left out)
    assert report.initial_loss == pytest.approx(0.6) and report.final_loss == pytest.approx(0.8)
    (reason,) = report.suspect
    assert reason.startswith("loss rose from 0.6000") and "0.8000" in reason
    falling = StabilityReport.of(TrainerState(step=20, log=log_of([0.7] * 10 + [0.3] * 10), grad_norms=[1.0] * 20),
                                 "fp32")
    assert falling.suspect == [] and falling.suspect_reasons() == []
    assert StabilityReport.of(TrainerState(), "fp32").suspect == []  # no steps: nothing to judge


def test_stability_report_flags_a_gradient_norm_spike():
    norms = [1.0] * 20
    calm = StabilityReport.of(TrainerState(step=21, log=log_of([0.5] * 21), grad_norms=[*norms, 40.0]), "fp32")
    assert calm.suspect == []
    spike = SUSPECT_GRAD_SPIKE_RATIO * 2
    report = StabilityReport.of(TrainerState(step=21, log=log_of([0.5] * 21), grad_norms=[*norms, spike]), "fp32")
    (reason,) = report.suspect
    assert reason.startswith("gradient norm spiked to 100, 100x the median 1")
    assert "SUSPECT" in report.line()


def test_huge_learning_rate_never_finishes_with_nan_weights():
    model = apply_training_mode(tiny_bert(), "full", FAMILIES["bert"])
    cfg = TrainConfig(epochs=4, batch_size=16, warmup_frac=0.0, weight_decay=0.1, precision="fp32")
    try:
        result = train_model(model, toy_examples(), toy_collate(), make_loss("xent"), cfg, lr=1e6, seed=0,
                             desc="huge")
    except TrainingError as exc:
        assert "non-finite weights" in str(exc) and "skipped=" in str(exc)
        return
    # finished: then its weights are finite, and the guards visibly did their job
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert result.stability.skipped_steps > 0 and result.stability.lr_cuts > 0


def test_nan_weights_fail_loudly_with_the_report():
    model = apply_training_mode(tiny_bert(), "full", FAMILIES["bert"])

    def poison(_module, _args, output):  # a forward that leaves the weights NaN after the step
        with torch.no_grad():
            model.head.bias.fill_(float("nan"))
        return output

    model.backbone.register_forward_hook(poison)
    cfg = TrainConfig(epochs=1, batch_size=32, precision="fp32")
    with pytest.raises(TrainingError, match=r"non-finite weights.*steps=2 skipped=2"):
        train_model(model, toy_examples(), toy_collate(), make_loss("xent"), cfg, lr=1e-3, seed=0, desc="poisoned")


@pytest.fixture(scope="module")
def tiny_bert_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("mode", ["lora", "probe", "full"])
def test_trainable_params_stay_fp32_under_half_storage(tiny_bert_folder, precision, mode):
    policy = PrecisionPolicy.resolve(precision, torch.device("cpu"))
    storage = policy.frozen_storage_dtype(mode)
    resolved = ResolvedModel("tiny", str(tiny_bert_folder), FAMILIES["bert"], "local")
    model = apply_training_mode(load_classifier(resolved, dtype=storage), mode, FAMILIES["bert"],
                                lora_targets="all-linear")
    trainable = [p for p in model.parameters() if p.requires_grad]
    frozen = [p for p in model.parameters() if not p.requires_grad]
    assert trainable and all(p.dtype == torch.float32 for p in trainable)
    if mode == "full":
        assert storage == torch.float32 and not frozen
    else:
        assert {p.dtype for p in frozen} == {policy.compute_dtype}
    cfg = TrainConfig(mode=mode, epochs=1, batch_size=32, precision=precision)
    result = train_model(model, toy_examples(), toy_collate(), make_loss("xent"), cfg, lr=1e-3, seed=0, desc="t")
    assert all(math.isfinite(r["loss"]) for r in result.log)
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)


def test_gemma_family_keeps_fp16_base_in_fp32_and_norms_out_of_autocast():
    gemma = FAMILIES["gemma3_text"]
    policy = PrecisionPolicy("fp16", "cpu")
    assert policy.frozen_storage_dtype("lora", half_storage_ok=gemma.fp16_half_storage) == torch.float32
    assert gemma.attn_implementation == "eager"
    model = torch.nn.Sequential()
    model.add_module("input_layernorm", torch.nn.LayerNorm(4).half())
    model.add_module("proj", torch.nn.Linear(4, 4))
    assert run_modules_in_fp32(model, gemma.fp16_fp32_modules) == 1
    with policy.autocast():
        out = model.input_layernorm(torch.randn(2, 4, dtype=torch.float16))
        projected = model.proj(torch.randn(2, 4))
    assert out.dtype == torch.float32 and projected.dtype == torch.float16


def test_a_training_that_skipped_many_steps_is_suspect_and_a_few_skips_are_not():
    from w2slab.train.trainer import StabilityReport

    many = StabilityReport(steps=100, skipped_steps=60, initial_loss=0.69, final_loss=0.5)
    assert any("60 of 100 steps skipped" in reason for reason in many.suspect_reasons())
    few = StabilityReport(steps=100, skipped_steps=2, initial_loss=0.69, final_loss=0.5)
    assert few.suspect_reasons() == []


def test_a_loss_that_rises_when_its_warm_up_ends_is_compared_from_there():
    """RAVEN trains on the examples every teacher agrees on first: its loss jumps when the rest join. Compared
    from where its schedule settles, a loss that then falls is not "rose"; one that rises after it still is."""
    from w2slab.losses import make_loss
    from w2slab.train.trainer import StabilityReport, TrainerState

    warm_then_falling = [0.3] * 50 + list(np.linspace(0.7, 0.6, 50))
    state = TrainerState(step=100, log=[{"loss": v} for v in warm_then_falling])
    assert any("loss rose" in r for r in StabilityReport.of(state, "fp32").suspect)
    settled = make_loss({"name": "raven", "warmup": 0.5}).settled
    assert settled == 0.5 and not StabilityReport.of(state, "fp32", settled).suspect
    rising = TrainerState(step=100, log=[{"loss": v} for v in [0.3] * 50 + list(np.linspace(0.6, 0.7, 50))])
    assert any("loss rose" in r for r in StabilityReport.of(rising, "fp32", settled).suspect)
    assert make_loss("xent").settled == 0.0


def test_a_flat_loss_that_ends_one_percent_higher_is_noise_not_a_rise():
    from w2slab.train.trainer import SUSPECT_LOSS_RISE, StabilityReport, TrainerState

    flat = TrainerState(step=40, log=[{"loss": 1.26}] * 30 + [{"loss": 1.27}] * 10)
    assert SUSPECT_LOSS_RISE == 0.02 and not StabilityReport.of(flat, "fp32").suspect
    rising = TrainerState(step=40, log=[{"loss": 1.26}] * 30 + [{"loss": 1.32}] * 10)
    assert any("loss rose" in r for r in StabilityReport.of(rising, "fp32").suspect)
