"""Stability guards and the precision policy, on tiny models built from configs."""

import math

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel

from tests.tiny import tiny_bert, toy_collate, toy_examples
from w2slab.config import TrainConfig
from w2slab.errors import TrainingError
from w2slab.losses import make_loss
from w2slab.models.loading import ResolvedModel, apply_training_mode, load_classifier
from w2slab.models.registry import FAMILIES
from w2slab.train.precision import PrecisionPolicy, resolve_precision, run_modules_in_fp32
from w2slab.train.trainer import BAD_STEPS_BEFORE_LR_CUT, train_model


def test_auto_precision_is_fp32_on_cpu():
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("fp16", torch.device("cpu")) == "fp16"


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
    assert [row["skipped"] for row in steps[:5]] == [False, False, True, True, False]
    assert result.stability.skipped_steps == 2 and result.stability.precision == precision
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
