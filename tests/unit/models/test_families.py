"""Every model family starts from a sane setting without flags: pooling, LoRA targets, learning rates.

Tiny models of each Hub family are built from configs (no downloads) and trained one step with
their family's LoRA targets, so a target list that matches no module fails here, not on a GPU.
"""

import pytest
import torch
import transformers

from tests.helpers.tiny import toy_collate, toy_examples
from w2slab.config import TrainConfig
from w2slab.losses import make_loss
from w2slab.models.loading import SequenceClassifier, apply_training_mode
from w2slab.models.registry import BUILTIN_CONFIGS, FAMILIES, MODELS, family_defaults
from w2slab.train.trainer import train_model

SMALL = {"vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
         "intermediate_size": 64, "max_position_embeddings": 64}
TINY_CONFIGS = {
    "bert": lambda: transformers.BertConfig(**SMALL),
    "mpnet": lambda: transformers.MPNetConfig(**SMALL),
    "gpt2": lambda: transformers.GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=2, n_positions=64),
    "llama": lambda: transformers.LlamaConfig(**SMALL, num_key_value_heads=2),
    "qwen2": lambda: transformers.Qwen2Config(**SMALL, num_key_value_heads=2),
    "gemma3_text": lambda: transformers.Gemma3TextConfig(**SMALL, num_key_value_heads=2, head_dim=16),
}


@pytest.mark.parametrize("model_type", sorted(TINY_CONFIGS))
def test_family_defaults_train_a_tiny_model_with_lora(model_type):
    config = TINY_CONFIGS[model_type]()
    defaults = family_defaults(config.model_type)
    assert defaults is FAMILIES[model_type]
    torch.manual_seed(0)
    backbone = transformers.AutoModel.from_config(config)
    hidden = getattr(config, "hidden_size", None) or config.n_embd
    model = apply_training_mode(SequenceClassifier(backbone, hidden, defaults.pooling), "lora", defaults)
    adapters = [n for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]
    assert adapters, f"{model_type}: LoRA targets {defaults.lora_targets} matched no module"
    cfg = TrainConfig(mode="lora", epochs=1, batch_size=32, precision="fp32")
    result = train_model(model, toy_examples(), toy_collate(), make_loss("xent"), cfg, lr=defaults.lr_lora, seed=0,
                         desc=model_type)
    assert result.stability.skipped_steps == 0 and result.stability.steps == 2


def test_decoders_pool_the_last_token_and_encoders_do_not():
    for family in ("gpt2", "llama", "qwen2", "gemma", "gemma3_text"):
        assert FAMILIES[family].kind == "decoder" and FAMILIES[family].pooling == "last"
    for family in ("bert", "mpnet", "roberta"):
        assert FAMILIES[family].kind == "encoder" and FAMILIES[family].pooling in ("cls", "mean")
    assert family_defaults("some_new_decoder", ["SomeNewForCausalLM"]).pooling == "last"
    assert family_defaults("some_new_encoder", ["SomeNewModel"]).pooling == "cls"


@pytest.mark.parametrize("name", sorted(set(MODELS) - set(BUILTIN_CONFIGS)))
def test_every_pretrained_model_has_sane_learning_rates(name):
    defaults = MODELS[name].defaults()
    assert 1e-6 <= defaults.lr_full <= 3e-4
    assert defaults.lr_full < defaults.lr_lora <= 1e-3
    assert 1e-4 <= defaults.lr_probe <= 1e-2
    assert TrainConfig().max_grad_norm == 1.0 and 0 < TrainConfig().warmup_frac < 0.5


def test_models_trained_from_scratch_get_a_from_scratch_learning_rate():
    for name in BUILTIN_CONFIGS:  # no pretrained weights to preserve: a rate a fine-tune would never use
        assert 1e-3 <= MODELS[name].defaults().lr_full <= 3e-2
