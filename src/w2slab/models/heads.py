"""The heads and wrappers every network ends in: masked pooling, the fp32 linear head, the probe head, the pairwise
scorer and the co-teaching twin.

A leaf of :mod:`w2slab.models` (it imports torch only): the text, image and vector networks
(:mod:`~w2slab.models.text`, :mod:`~w2slab.models.vision`, :mod:`~w2slab.models.vectors`), the label-token reader and
the pipeline's role models all put these on top of a backbone, so none of them depends on where the others load.

Text models use ``AutoModel`` plus the pooling and linear head here instead of
``AutoModelForSequenceClassification`` because the HF decoder heads find the last token from the *pad token id*,
which is wrong when pad == eos (GPT-2, Llama, Gemma set it so) and eos occurs in the text. Pooling here always comes
from the attention mask, so left and right padding both work.
"""

from __future__ import annotations

import torch
from torch import nn


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool token states [B, T, H] into [B, H] using only the attention mask."""
    if pooling == "cls":
        # first real token (position 0 under right padding, first unmasked under left padding)
        first = attention_mask.float().argmax(dim=1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), first]
    if pooling == "mean":
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)
    if pooling == "last":
        positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
        last = (positions * attention_mask).argmax(dim=1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise ValueError(f"unknown pooling {pooling!r}")


class Fp32Head(nn.Linear):
    """A linear head that computes in fp32 outside any autocast region.

    Why: under CPU bf16 autocast ``nn.Linear`` returns bf16 even when its weights are fp32, so the logits keep 8
    bits of mantissa: a fine-tuned mpnet-base gave 65 distinct predictions on 800 test examples, and logconf's
    quantile hardening, fed tied probabilities, sent whole tied groups to class 0. The head is a few thousand
    multiply-adds: fp32 costs nothing measurable.
    """

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=features.device.type, enabled=False):
            return super().forward(features.to(self.weight.dtype))


def zero_head(hidden_size: int, num_labels: int) -> nn.Linear:
    """An fp32 linear head (:class:`Fp32Head`) initialised to zero: every example starts at the uniform
    prediction, so early steps are gentle and the same seed gives the same start whatever the backbone. A zero
    head moves by about its learning rate per AdamW step, which is why a fine-tune trains it at the probe's
    learning rate (``TrainConfig.head_lr``), not the backbone's."""
    head = Fp32Head(hidden_size, num_labels, dtype=torch.float32)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return head


class SequenceClassifier(nn.Module):
    """Backbone -> masked pooling -> fp32 linear head (K logits)."""

    def __init__(self, backbone: nn.Module, hidden_size: int, pooling: str, num_labels: int = 2):
        super().__init__()
        self.backbone = backbone
        self.pooling = pooling
        self.head = zero_head(hidden_size, num_labels)

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
        return pool(out.last_hidden_state, attention_mask, self.pooling)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: object) -> torch.Tensor:
        # the head is fp32 (trainable) under every precision policy: pooled features go up to its dtype
        return self.head(self.features(input_ids, attention_mask).to(self.head.weight.dtype))


class ProbeHead(nn.Module):
    """The linear head of a frozen-backbone classifier, trained on cached pooled features."""

    def __init__(self, hidden_size: int, num_labels: int):
        super().__init__()
        self.head = zero_head(hidden_size, num_labels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features.float())


class PairwiseScorer(nn.Module):
    """A Bradley-Terry reward model over preference pairs: one scalar score per text from ``scorer`` (a classifier
    or probe head with one output), and a pair's logits ``(score(b), score(a))``, so softmax gives
    P(a preferred) = sigmoid(score(a) - score(b)) and cross-entropy on it is the Bradley-Terry loss.

    Token batches hold the pairs' first texts, then their second texts (:class:`~w2slab.train.batching.Collator`);
    feature batches hold ``[B, 2, H]``. Both texts go through the same weights: the model never sees the two
    together, so it learns a score, not a comparison of two positions.
    """

    def __init__(self, scorer: nn.Module):
        super().__init__()
        self.scorer = scorer

    @property
    def head(self) -> nn.Module:
        """The scorer's head (its learning rate, LP-FT's probe fit)."""
        return self.scorer.head

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        if "features" in inputs:
            scores = self.scorer(inputs["features"]).squeeze(-1)  # [B, 2]
        else:
            flat = self.scorer(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).squeeze(-1)
            scores = flat.view(2, -1).T  # first texts, then second texts -> [B, 2]
        return scores.flip(-1)


class TwinModel(nn.Module):
    """Two students trained together (co-teaching): with gradients on (a training step), both models' logits side
    by side ``[B, 2K]`` for a loss that couples them (:class:`~w2slab.losses.CoTeaching`); without (every
    prediction runs under ``no_grad``), the log of their averaged probabilities ``[B, K]``, so every prediction
    path sees one K-class model. Not ``self.training``: the trainer keeps models in eval mode to switch dropout
    off."""

    def __init__(self, first: nn.Module, second: nn.Module):
        super().__init__()
        self.first, self.second = first, second

    @property
    def head(self) -> nn.Module:
        """Both heads (their learning rate)."""
        return nn.ModuleList([self.first.head, self.second.head])

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        a, b = self.first(**inputs), self.second(**inputs)
        if torch.is_grad_enabled():
            return torch.cat([a, b], dim=-1)
        mixture = (torch.softmax(a.float(), -1) + torch.softmax(b.float(), -1)) / 2
        return torch.log(mixture.clamp_min(1e-12))
