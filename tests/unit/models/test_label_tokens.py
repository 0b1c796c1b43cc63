"""A decoder read through its own next-token logits of one label word per class (``head: label_tokens``).

Tiny causal LMs built from configs with a tiny word-level tokenizer that knows the label words: the K logits are
the full LM's at the last real token (left and right padding, tied and untied heads, Gemma 2's soft-capping),
gradients reach LoRA adapters and the label rows, a tiny LoRA training runs through :class:`RoleModel`, and the
head is resolved, recorded, identified and refused where it cannot apply.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import transformers

from tests.helpers.tiny import write_tiny_model
from w2slab.config import ExperimentConfig, TrainConfig
from w2slab.errors import ConfigError, ModelError
from w2slab.losses import make_loss
from w2slab.models.label_tokens import (
    LabelPrompt,
    LabelTokenClassifier,
    label_prompt,
    label_token_classifier,
    label_token_ids,
    prompt_token_ids,
    register_prompt,
)
from w2slab.models.loading import apply_training_mode, resolve_model
from w2slab.models.registry import FAMILIES, FamilyDefaults, register_family
from w2slab.pipeline.role_model import RoleModel, trainable_state

WORDS = ["[PAD]", "[UNK]", "[BOS]", "Yes", "No", "Question:", "Answer:", "or", "no?", "negative", "positive",
         *(f"w{i}" for i in range(5, 40))]
VOCAB = len(dict.fromkeys(WORDS))


def label_tokenizer() -> transformers.PreTrainedTokenizerFast:
    """Whitespace-split words (label words included), a BOS before every text and a pad token, like a decoder's."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {word: i for i, word in enumerate(dict.fromkeys(WORDS))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(single="[BOS] $A", special_tokens=[("[BOS]", 2)])
    return transformers.PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]",
                                                bos_token="[BOS]", model_max_length=64)


SMALL = {"vocab_size": VOCAB, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
         "intermediate_size": 64, "max_position_embeddings": 64}
CAUSAL = {
    "llama": lambda: transformers.LlamaConfig(**SMALL, num_key_value_heads=2),  # untied LM head
    "gemma2": lambda: transformers.Gemma2Config(**SMALL, num_key_value_heads=2, head_dim=16,  # tied, soft-capped
                                                final_logit_softcapping=0.5, attn_implementation="eager"),
    "gpt2": lambda: transformers.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2, n_positions=64),
}


def tiny_causal(kind: str, seed: int = 0) -> transformers.PreTrainedModel:
    torch.manual_seed(seed)
    return transformers.AutoModelForCausalLM.from_config(CAUSAL[kind]()).eval()


def padded(rows: list[list[int]], side: str) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(0, len(row)) if side == "right" else slice(width - len(row), width)
        ids[i, span], mask[i, span] = torch.tensor(row), 1
    return ids, mask


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory):
    """A tiny Llama causal LM with the label tokenizer, saved as an HF folder (a local model name)."""
    folder = tmp_path_factory.mktemp("tiny_llama")
    tiny_causal("llama").save_pretrained(folder)
    label_tokenizer().save_pretrained(folder)
    return str(folder)


def toy_rows(n: int = 48, seed: int = 0) -> list[dict]:
    """Label 1 iff the word w7 occurs (tests/helpers/tiny.py's toy task)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        ids = rng.integers(10, 40, size=rng.integers(3, 9)).tolist()
        if i % 2:
            ids[rng.integers(len(ids))] = 7
        rows.append({"id": str(i), "text": " ".join(f"w{k}" for k in ids), "label": i % 2})
    return rows


# --- the K logits --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(CAUSAL))
@pytest.mark.parametrize("side", ["right", "left"])
def test_the_k_logits_are_the_full_lms_at_the_last_real_token(kind, side):
    causal = tiny_causal(kind)
    token_ids = label_token_ids(label_tokenizer(), ["No", "Yes"])
    model = label_token_classifier(causal, token_ids)
    rows = [[2, 12, 13, 7, 5, 6], [2, 20], [2, 30, 31, 32, 33, 34, 35, 6], [2, 9, 9, 6]]
    ids, mask = padded(rows, side)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask)
        # each row alone, unpadded: what the LM writes next after its prompt
        expected = torch.stack([causal(input_ids=torch.tensor([row])).logits[0, -1, token_ids] for row in rows])
    assert logits.shape == (len(rows), 2) and logits.dtype == torch.float32
    torch.testing.assert_close(logits, expected.float(), atol=1e-5, rtol=1e-5)


def test_the_rows_are_a_trainable_fp32_copy_and_the_softcap_is_the_lms():
    causal = tiny_causal("gemma2")
    model = label_token_classifier(causal, [3, 4])
    assert isinstance(model, LabelTokenClassifier) and model.head.softcap == 0.5
    assert model.head.weight.data_ptr() != causal.get_output_embeddings().weight.data_ptr()  # not the tied embedding
    torch.testing.assert_close(model.head.weight, causal.get_output_embeddings().weight[[3, 4]].float())
    assert model.head.weight.shape == (2, 32) and not model.head.bias.any()


def test_under_bf16_autocast_the_label_logits_are_still_fp32():
    model = label_token_classifier(tiny_causal("llama"), [3, 4])
    ids, mask = padded([[2, 12, 13], [2, 14]], "right")
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(input_ids=ids, attention_mask=mask)
    assert logits.dtype == torch.float32


def test_lora_gradients_reach_the_adapters_and_the_label_rows_not_the_frozen_base():
    model = apply_training_mode(label_token_classifier(tiny_causal("llama"), [3, 4]), "lora", FAMILIES["llama"])
    ids, mask = padded([[2, 12, 13, 7], [2, 14, 15]], "right")
    loss = torch.nn.functional.cross_entropy(model(input_ids=ids, attention_mask=mask), torch.tensor([1, 0]))
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_B" in n and g is not None and g.abs().sum() > 0 for n, g in grads.items())
    assert grads["head.weight"].abs().sum() > 0
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all("lora_" not in n and not n.startswith("head.") for n in frozen)


# --- label words and prompts -----------------------------------------------------------------------------------------


def test_label_words_that_share_a_first_token_are_one_line_naming_the_fix():
    with pytest.raises(ModelError) as info:
        label_token_ids(label_tokenizer(), ["maybe", "perhaps"])  # both unknown words: the same [UNK] token
    assert "share their first token" in str(info.value) and "register_prompt" in str(info.value)
    assert "\n" not in str(info.value)


def test_prompts_registered_per_dataset_else_from_class_names_else_no_yes():
    assert label_prompt("sst2_sentences", 2).words == ("negative", "positive")
    assert label_prompt("boolq", 2).words == ("No", "Yes") and label_prompt("boolq", 2).suffix.endswith("Answer:")
    named = label_prompt("mine.jsonl", 3, ["cat", "dog", "fish"])
    assert named.words == ("cat", "dog", "fish") and "cat, dog or fish" in named.suffix
    assert label_prompt("mine.jsonl", 2).words == ("No", "Yes")
    with pytest.raises(ConfigError, match="2 label words for 3 classes"):
        label_prompt("sst2_sentences", 3)


def test_the_prompt_keeps_the_bos_and_the_whole_question_and_cuts_the_text():
    tokenizer = label_tokenizer()
    prompt = LabelPrompt("\nQuestion: Yes or no?\nAnswer:", ("No", "Yes"))
    suffix = tokenizer(prompt.suffix, add_special_tokens=False)["input_ids"]
    text = " ".join(f"w{k}" for k in range(10, 30))  # 20 words
    (short, cut), lengths = prompt_token_ids(tokenizer, ["w7 w8", text], prompt, max_ctx=12)
    assert short == [2, *tokenizer("w7 w8", add_special_tokens=False)["input_ids"], *suffix]
    assert len(cut) == 12 and cut[0] == 2 and cut[-len(suffix):] == suffix
    assert lengths == [1 + 2 + len(suffix), 1 + 20 + len(suffix)]
    tokenizer.truncation_side = "left"  # the end of the text is kept
    (_, cut), _ = prompt_token_ids(tokenizer, ["w7 w8", text], prompt, max_ctx=12)
    assert tokenizer.convert_ids_to_tokens(cut[1:1 + 12 - 1 - len(suffix)])[-1] == "w29"
    with pytest.raises(ConfigError, match="raise --max-ctx"):
        prompt_token_ids(tokenizer, ["w7"], prompt, max_ctx=len(suffix) + 1)


# --- through the role model -------------------------------------------------------------------------------------------


def role(folder: str, **train) -> RoleModel:
    cfg = TrainConfig(**{"mode": "lora", "precision": "fp32", "batch_size": 16, **train})
    return RoleModel("strong", resolve_model(folder), cfg, max_ctx=32, truncation="left", dataset="toy.jsonl")


def test_a_tiny_lora_training_reads_label_tokens_and_its_kept_state_reloads(llama_folder):
    model = role(llama_folder, head="label_tokens", epochs=3, lr=1e-2)
    rows = toy_rows()
    encoded = model.encode("weak_train", rows)
    suffix = model.tokenizer(model.prompt.suffix, add_special_tokens=False)["input_ids"]
    assert all(ex["input_ids"][0] == 2 and ex["input_ids"][-len(suffix):] == suffix for ex in encoded.examples)
    targets = np.eye(2, dtype=np.float32)[[r["label"] for r in rows]]
    trained, result = model.fit("weak_train", targets, make_loss("xent"), seed=0, desc="label tokens")
    assert isinstance(trained, LabelTokenClassifier) and result.stability.skipped_steps == 0
    losses = [entry["loss"] for entry in result.log if "loss" in entry]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    state = trainable_state(trained)
    assert "head.weight" in state and any("lora_" in name for name in state)
    assert model.head_lr == model.lr == 1e-2  # the rows start informative: the backbone's rate, not the probe's
    logits = model.predict(trained, "weak_train")
    fresh = model.new_model()
    missing, unexpected = fresh.load_state_dict(state, strict=False)
    assert not unexpected and not any(p.requires_grad for n, p in fresh.named_parameters() if n in missing)
    np.testing.assert_allclose(model.predict(fresh, "weak_train"), logits, atol=1e-5)


def test_the_resolved_head_is_recorded_with_its_prompt(llama_folder):
    settings = role(llama_folder).resolved_settings()
    assert settings["head"] == "linear" and "prompt" not in settings  # auto: the llama family's head (linear)
    settings = role(llama_folder, head="label_tokens").resolved_settings()
    assert settings["head"] == "label_tokens"
    assert settings["prompt"] == {"suffix": "\nQuestion: Yes or no?\nAnswer:", "words": ["No", "Yes"]}
    assert settings["head_lr"] == settings["lr"]


def test_auto_follows_the_family_head_where_label_tokens_apply(llama_folder):
    original = FAMILIES["llama"]
    try:
        register_family("llama", dataclasses.replace(original, head="label_tokens"), replace=True)
        assert role(llama_folder).head == "label_tokens"
        assert role(llama_folder, mode="probe").head == "linear"  # cached features: no LM in the loop
        assert role(llama_folder, head_init="probe").head == "linear"
        assert role(llama_folder, head="linear").head == "linear"
    finally:
        register_family("llama", original, replace=True)


@pytest.mark.parametrize(("train", "message"), [
    ({"mode": "probe"}, "--strong.mode lora or full"),
    ({"head_init": "probe"}, "--strong.head_init zero"),
])
def test_label_tokens_where_they_cannot_apply_are_one_line_naming_the_fix(llama_folder, train, message):
    with pytest.raises(ConfigError) as info:
        role(llama_folder, head="label_tokens", **train)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_label_tokens_on_an_encoder_or_preference_pairs_are_refused(tmp_path, llama_folder):
    encoder = str(write_tiny_model(tmp_path / "bert"))
    with pytest.raises(ConfigError, match="this is an encoder model; use --strong.head linear"):
        role(encoder, head="label_tokens")
    with pytest.raises(ConfigError, match="preference pairs"):
        RoleModel("strong", resolve_model(llama_folder), TrainConfig(mode="lora", head="label_tokens"), 32, "left",
                  pairwise=True)
    with pytest.raises(ModelError, match="label_tokens for a decoder"):
        FamilyDefaults("encoder", "cls", lr_full=1e-5, lr_lora=1e-4, head="label_tokens")


# --- configuration and identity ---------------------------------------------------------------------------------------


def test_head_round_trips_and_auto_keeps_the_old_spelling():
    assert "head" not in TrainConfig().to_dict() and "head" not in TrainConfig().identity()
    for head in ("linear", "label_tokens"):
        cfg = TrainConfig(mode="lora", head=head)
        assert cfg.to_dict()["head"] == head and TrainConfig.from_dict(cfg.to_dict()) == cfg
    default = ExperimentConfig()
    assert "head" not in default.to_dict()["strong_train"]
    chosen = ExperimentConfig.from_dict({"strong_train": {"mode": "lora", "head": "label_tokens"}})
    assert ExperimentConfig.from_dict(json.loads(json.dumps(chosen.to_dict()))) == chosen
    assert chosen.identity() != ExperimentConfig.from_dict({"strong_train": {"mode": "lora"}}).identity()
    with pytest.raises(ConfigError, match="head"):
        TrainConfig(head="softmax")


def test_the_head_is_in_the_ceiling_identity_by_config_and_by_family(llama_folder, fresh_tiny):
    from w2slab.pipeline.graph import build_experiment, model_defaults

    base = {"dataset": fresh_tiny.data, "weak": fresh_tiny.weak, "strong": llama_folder, "losses": ["xent"],
            "n_train": 64, "n_test": 32, "n_val": 0}
    auto = build_experiment(ExperimentConfig.from_dict({**base, "strong_train": {"mode": "lora"}}))
    chosen = build_experiment(ExperimentConfig.from_dict({**base, "strong_train": {"mode": "lora",
                                                                                   "head": "label_tokens"}}))
    assert auto.weak_train.id == chosen.weak_train.id and auto.ceiling.id != chosen.ceiling.id
    before, original = model_defaults(llama_folder), FAMILIES["llama"]
    try:
        register_family("llama", dataclasses.replace(original, head="label_tokens"), replace=True)
        assert model_defaults(llama_folder) != before  # flipping a family's default head is another ceiling
    finally:
        register_family("llama", original, replace=True)
    assert '"head": "linear"' in before


def test_a_registered_prompt_is_used_by_its_dataset_name(llama_folder):
    prompt = LabelPrompt("\nQuestion: w7?\nAnswer:", ("no?", "positive"))
    register_prompt("toy_label_dataset", prompt)
    model = RoleModel("strong", resolve_model(llama_folder), TrainConfig(mode="lora", head="label_tokens"), 32,
                      "left", dataset="toy_label_dataset")
    assert model.prompt == prompt and model.resolved_settings()["prompt"]["words"] == ["no?", "positive"]


def test_co_teaching_twins_keep_the_label_rows_and_start_apart_only_under_lora(llama_folder):
    rows = toy_rows(32)
    targets = np.eye(2, dtype=np.float32)[[r["label"] for r in rows]]
    model = role(llama_folder, head="label_tokens", epochs=1)
    model.encode("transfer", rows)
    twins, _ = model.fit("transfer", targets, make_loss("coteach"), seed=0, desc="twins")
    torch.testing.assert_close(twins.first.head.weight, twins.second.head.weight, atol=0.05, rtol=0)  # the LM's rows
    assert not torch.equal(twins.first.head.weight, twins.second.head.weight)  # trained apart
    full = role(llama_folder, head="label_tokens", mode="full", epochs=1)
    full.encode("transfer", rows)
    with pytest.raises(ConfigError, match="--strong.mode lora"):
        full.fit("transfer", targets, make_loss("coteach"), seed=0, desc="twins")
