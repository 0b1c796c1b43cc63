"""Read a class from a causal LM's own next-token logits of one label word per class, under a prompt.

The other way the field reads a class from a decoder (Anthropic's W2S sandbox, most LM work), beside a linear head
on the last token's hidden state (:class:`~w2slab.models.heads.SequenceClassifier`): each row's text is followed by
a question that ends right before the answer (``<text>\\nQuestion: Is this answer correct?\\nAnswer:``; sentiment:
``<text>\\nSentiment:``) and the K logits are the LM's logits, at the prompt's last token, of the first token of each
class's label word (`` Yes``/`` No``, `` positive``/`` negative``, a class name).
A small LM's head already knows those words, so the reading often starts far above chance before any training.

A prompt (:class:`LabelPrompt`) is registered per dataset (:data:`LABEL_PROMPTS`); any other dataset gets a generic
one from its class names (or ``No``/``Yes`` for a binary task without names).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from w2slab.errors import ConfigError, ModelError
from w2slab.models.heads import Fp32Head, pool
from w2slab.registry import Registry

if TYPE_CHECKING:
    from w2slab.models.resolved import ResolvedModel


@dataclass(frozen=True)
class LabelPrompt:
    """What follows a row's text (``suffix``, ending right before the answer) and the answer word of each class, in
    class order (without the leading space: one is added, as the LM writes it after ``Answer:``)."""

    suffix: str
    words: tuple[str, ...]

    def to_value(self) -> dict[str, Any]:
        return {"suffix": self.suffix, "words": list(self.words)}


LABEL_PROMPTS: Registry[LabelPrompt] = Registry("label prompt")


def register_prompt(dataset: str, prompt: LabelPrompt, *, replace: bool = False) -> LabelPrompt:
    """The prompt and label words of ``dataset`` (its registered name) under ``head: label_tokens``."""
    return LABEL_PROMPTS.register(dataset, prompt, replace=replace)


_NO_YES = ("No", "Yes")
# chosen on 200 train-pool rows of sst2_sentences among 7 wordings: AUROC .87 (smollm2-135m) and .95 (gemma3-270m),
# against .66 and .79 for "\nQuestion: Is the sentiment of this text positive or negative?\nAnswer:"
_SENTIMENT = LabelPrompt("\nSentiment:", ("negative", "positive"))
_CORRECT = LabelPrompt("\nQuestion: Is this answer correct?\nAnswer:", _NO_YES)
_PROMPTS = {
    **dict.fromkeys(("sst2", "sst2_sentences", "imdb", "amazon_polarity", "amazon_multidomain"), _SENTIMENT),
    "amazon_fine_foods": LabelPrompt("\nQuestion: Did the reviewer give it five stars?\nAnswer:", _NO_YES),
    # "Passage: ...\nQuestion: <a yes/no question without its question mark>"
    "boolq": LabelPrompt("?\nAnswer:", _NO_YES),
    # "Q: ... A: <an answer>" and "Context: ...\nQuestion: ...\nAnswer: <an answer>": is the shown answer right
    "sciq": _CORRECT,
    **dict.fromkeys(("cosmos_qa", "social_i_qa", "quail", "dream"), _CORRECT),
    # "Goal: ...\nSolution: <one of two>"
    "piqa": LabelPrompt("\nQuestion: Does this solution achieve the goal?\nAnswer:", _NO_YES),
}
for _name, _prompt in _PROMPTS.items():
    register_prompt(_name, _prompt)


def label_prompt(dataset: str, num_classes: int, class_names: Sequence[str] | None = None) -> LabelPrompt:
    """The dataset's registered prompt; else a generic question over its class names; else ``No``/``Yes`` for a
    binary task without names; else the class ids as words."""
    if dataset and (prompt := LABEL_PROMPTS.find(dataset)) is not None:
        if len(prompt.words) != num_classes:
            raise ConfigError(f"the label prompt of {dataset!r} has {len(prompt.words)} label words for "
                              f"{num_classes} classes; register_prompt({dataset!r}, ...) with one word per class")
        return prompt
    names = [str(n).strip() for n in class_names or ()]
    if len(names) == num_classes and all(names):
        return LabelPrompt(f"\nQuestion: Which is it: {', '.join(names[:-1])} or {names[-1]}?\nAnswer:", tuple(names))
    if num_classes == 2:
        return LabelPrompt("\nQuestion: Yes or no?\nAnswer:", _NO_YES)
    return LabelPrompt(f"\nQuestion: Which class is it, 0 to {num_classes - 1}?\nAnswer:",
                       tuple(str(k) for k in range(num_classes)))


def label_token_ids(tokenizer, words: Sequence[str]) -> list[int]:
    """The first token of each label word as the LM writes it after ``Answer:`` (with a leading space); where that
    token is a bare space (`` 0`` is ``▁`` + ``0`` in Gemma's and SmolLM's vocabularies), the word's own first token.
    Two classes that share a first token cannot be told apart: a one-line :class:`ModelError`."""
    ids = []
    for word in words:
        spaced = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        if spaced and not tokenizer.decode(spaced[:1]).strip():
            spaced = tokenizer(word.strip(), add_special_tokens=False)["input_ids"]
        if not spaced:
            raise ModelError(f"label word {word!r} is no token of this tokenizer; register a prompt with other words")
        ids.append(int(spaced[0]))
    seen: dict[int, str] = {}
    for word, token in zip(words, ids, strict=True):
        if token in seen:
            raise ModelError(f"label words {seen[token]!r} and {word!r} share their first token "
                             f"{tokenizer.decode([token])!r}; register a prompt whose label words start differently "
                             "(w2slab.models.label_tokens.register_prompt) or use --strong.head linear")
        seen[token] = word
    return ids


def prompt_token_ids(tokenizer, texts: Sequence[str], prompt: LabelPrompt, max_ctx: int
                     ) -> tuple[list[list[int]], list[int]]:
    """Per text: ``[BOS] + text ids + suffix ids`` within ``max_ctx`` (the text is cut on the tokenizer's truncation
    side, the question never), and each one's untruncated length. The text and the suffix are tokenised apart
    (the suffix starts with a newline or ``?``, a boundary every BPE vocabulary here splits at), and a tokenizer's
    trailing special tokens (an EOS) are left out: the LM must read the prompt as unfinished."""
    suffix = tokenizer(prompt.suffix, add_special_tokens=False)["input_ids"]
    specials = tokenizer("", add_special_tokens=True)["input_ids"]
    bos = specials[:1] if specials and specials[0] == tokenizer.bos_token_id else []
    budget = max_ctx - len(bos) - len(suffix)
    if budget < 1:
        raise ConfigError(f"max_ctx={max_ctx} leaves no room for the text beside the label prompt's {len(suffix)} "
                          "tokens; raise --max-ctx")
    full = tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]
    cut = tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=budget)["input_ids"]
    return [bos + ids + suffix for ids in cut], [len(bos) + len(ids) + len(suffix) for ids in full]


class LabelTokenHead(Fp32Head):
    """The K rows of an LM head (and its bias, or zeros) as an fp32 linear layer, with the LM's final logit
    soft-capping where it has one (Gemma 2): ``cap * tanh(z / cap)``, as the full LM computes its logits."""

    def __init__(self, rows: torch.Tensor, bias: torch.Tensor | None = None, softcap: float | None = None):
        super().__init__(rows.shape[1], rows.shape[0], dtype=torch.float32)
        with torch.no_grad():
            self.weight.copy_(rows.float())
            self.bias.copy_(bias.float() if bias is not None else torch.zeros(rows.shape[0]))
        self.softcap = float(softcap) if softcap else None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits = super().forward(features)
        if self.softcap:
            with torch.autocast(device_type=logits.device.type, enabled=False):
                logits = self.softcap * torch.tanh(logits / self.softcap)
        return logits


class LabelTokenClassifier(nn.Module):
    """A causal LM's base (``backbone``) and the K rows of its LM head for the label tokens (``head``): K logits,
    the LM's logits at the last real token (from the attention mask: left or right padding) for those tokens.

    Only K rows are applied, in fp32 (:class:`~w2slab.models.heads.Fp32Head`: bf16 logits tie), to the final
    hidden state: the same numbers as the full LM's logits at those ids without its vocabulary-wide product (262k
    rows for Gemma 3). Position ids follow the mask, so a left-padded row reads as it would unpadded.

    The rows are a trainable copy, the model's ``head`` (LoRA and full fine-tuning train it beside the backbone;
    its state is saved with the adapters): fine-tuning an LM classifier trains its head in the field's full
    fine-tunes (the head is tied to the embeddings there), a copy moves the class reading without moving the input
    embeddings of the same words, and two rows of H weights cost nothing. The copy starts at the LM's own rows, not
    at zero, so it trains at the backbone's learning rate by default, not at the probe rate a zero head needs
    (:attr:`~w2slab.pipeline.role_model.RoleModel.head_lr`); its bias starts at zero (the LM's, where it has one).
    """

    pooling = "last"

    def __init__(self, backbone: nn.Module, rows: torch.Tensor, token_ids: Sequence[int],
                 bias: torch.Tensor | None = None, softcap: float | None = None):
        super().__init__()
        self.backbone = backbone
        self.token_ids = [int(t) for t in token_ids]
        self.head = LabelTokenHead(rows, bias, softcap)

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The final hidden state (after the LM's final norm) at each row's last real token, [B, H]."""
        positions = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions)
        return pool(out.last_hidden_state, attention_mask, "last")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: object) -> torch.Tensor:
        return self.head(self.features(input_ids, attention_mask).to(self.head.weight.dtype))


def label_token_classifier(causal_lm: nn.Module, token_ids: Sequence[int]) -> LabelTokenClassifier:
    """A :class:`LabelTokenClassifier` from a loaded causal LM (``*ForCausalLM``): its base model and the rows of its
    output embeddings (tied or not) for ``token_ids``; the rest of the LM head is dropped."""
    output = causal_lm.get_output_embeddings()
    if output is None or not hasattr(output, "weight"):
        raise ModelError(f"{type(causal_lm).__name__} has no LM head to read label words from; use --strong.head "
                         "linear")
    index = torch.tensor(list(token_ids), dtype=torch.long)
    rows = output.weight.detach()[index].clone().float()
    bias = output.bias.detach()[index].clone().float() if getattr(output, "bias", None) is not None else None
    softcap = getattr(causal_lm.config, "final_logit_softcapping", None)
    return LabelTokenClassifier(causal_lm.base_model, rows, token_ids, bias, softcap)


def load_label_token_classifier(resolved: ResolvedModel, words: Sequence[str], tokenizer, *,
                                dtype: torch.dtype = torch.float32) -> LabelTokenClassifier:
    """Load ``resolved`` as a causal LM (``AutoModelForCausalLM``) and keep its base and the label words' rows."""
    from transformers import AutoModelForCausalLM

    token_ids = label_token_ids(tokenizer, words)
    try:
        causal = AutoModelForCausalLM.from_pretrained(resolved.location, **resolved.pretrained_kwargs(dtype))
    except (OSError, ValueError) as exc:
        raise ModelError(f"could not load {resolved.name!r} as a causal LM from {resolved.location} "
                         f"({type(exc).__name__}: {str(exc)[:200]}); head label_tokens needs a decoder with its LM "
                         "head: use --strong.head linear") from exc
    return label_token_classifier(causal, token_ids)
