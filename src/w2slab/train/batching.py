"""Batching for training and prediction: dynamic padding of token ids, image preprocessing, stacking of features.

Token ids are padded by ``transformers``' :class:`~transformers.DataCollatorWithPadding` (the
tokenizer's pad id and padding side, an attention mask); images are decoded and preprocessed by their model's
:class:`~w2slab.models.vision.ImagePreprocess` when their batch is made (so a dataset of photos never sits in
memory as tensors); cached backbone features and vector rows (decoded) are stacked.
A preference pair's example carries ``input_ids_b`` beside ``input_ids``: the batch holds every first text, then
every second text. Every example may also carry a soft ``target`` [K], a loss ``weight`` and its ``index`` in the
split, which pass through.
"""

from __future__ import annotations

import numpy as np
import torch


class Collator:
    """``collate(list of examples) -> batch``: token batches with a ``tokenizer``, image batches with an
    ``images`` preprocessing, feature-only (probe) batches with neither."""

    def __init__(self, tokenizer=None, pad_to_multiple_of: int | None = None, images=None):
        self.tokenizer = tokenizer
        self.images = images
        self._pad = None
        if tokenizer is not None:
            from transformers import DataCollatorWithPadding

            self._pad = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_to_multiple_of, return_tensors="pt")

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        batch: dict[str, torch.Tensor] = {}
        if "features" in items[0]:
            batch["features"] = torch.stack([torch.as_tensor(i["features"]) for i in items])
        elif "vector" in items[0]:
            from w2slab.data.vectors import decode_vector

            batch["vectors"] = torch.from_numpy(np.stack([decode_vector(i["vector"]) for i in items]))
        elif "image" in items[0]:
            if self.images is None:
                raise ValueError("image batches need a preprocessing: Collator(images=ImagePreprocess(...))")
            batch["pixel_values"] = self.images([i["image"] for i in items])
        else:
            if self._pad is None:
                raise ValueError("token batches need a tokenizer: Collator(tokenizer)")
            # preference pairs: every first text, then every second text (PairwiseScorer splits them again)
            sequences = [i["input_ids"] for i in items] + [i["input_ids_b"] for i in items if "input_ids_b" in i]
            padded = self._pad([{"input_ids": ids} for ids in sequences])
            batch["input_ids"], batch["attention_mask"] = padded["input_ids"], padded["attention_mask"]
        if "target" in items[0]:
            batch["target"] = torch.tensor(np.stack([i["target"] for i in items]), dtype=torch.float32)
        if "weight" in items[0]:
            batch["weight"] = torch.tensor([float(i["weight"]) for i in items], dtype=torch.float32)
        batch["index"] = torch.tensor([i["index"] for i in items])
        return batch
