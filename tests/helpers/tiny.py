"""Tiny models, a tiny tokenizer and a toy data set built in code: no downloads, no data root.

The toy task is learnable by any model: label 1 iff the word ``w7`` occurs in the text.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from transformers import BertConfig, BertModel, LlamaConfig, LlamaModel, PreTrainedTokenizerFast

from w2slab.models.loading import SequenceClassifier
from w2slab.train.batching import Collator

VOCAB = 50  # ids 0..4 special, 5..49 words w5..w49


def tiny_tokenizer(model_max_length: int = 64, pad_token: str = "[PAD]") -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4, **{f"w{i}": i for i in range(5, VOCAB)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[
        ("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token=pad_token, unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=model_max_length)


def toy_collate() -> Collator:
    return Collator(tiny_tokenizer())


def tiny_bert() -> SequenceClassifier:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    return SequenceClassifier(BertModel(config), 32, "mean")


def tiny_llama() -> SequenceClassifier:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64)
    return SequenceClassifier(LlamaModel(config), 32, "last")


def toy_examples(n: int = 64, seed: int = 0) -> list[dict]:
    """Encoded examples: label 1 iff token 7 occurs."""
    rng = np.random.default_rng(seed)
    examples = []
    for i in range(n):
        ids = rng.integers(10, 50, size=rng.integers(4, 12)).tolist()
        label = i % 2
        if label:
            ids[rng.integers(len(ids))] = 7
        examples.append({"input_ids": ids, "index": i, "target": np.eye(2, dtype=np.float32)[label]})
    return examples


def write_tiny_model(folder: Path, *, layers: int = 2, hidden: int = 32, seed: int = 0) -> Path:
    """A randomly initialised BERT with the tiny tokenizer, saved as an HF folder (a local model name)."""
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=2 * hidden, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def write_toy_dataset(path: Path, n: int = 200, seed: int = 0, words: tuple[int, int] = (3, 14)) -> Path:
    """A JSONL file of ``{text, label}`` rows: label 1 iff the word w7 occurs (balanced, distinct texts)."""
    rng = np.random.default_rng(seed)
    rows, seen = [], set()
    while len(rows) < n:
        label = len(rows) % 2
        ids = rng.integers(10, VOCAB, size=rng.integers(*words)).tolist()
        if label:
            ids[rng.integers(len(ids))] = 7
        text = " ".join(f"w{i}" for i in ids)
        if text not in seen:
            seen.add(text)
            rows.append({"text": text, "label": label})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_toy_preferences(path: Path, n: int = 200, seed: int = 0, words: tuple[int, int] = (3, 10)) -> Path:
    """A JSONL file of ``{chosen, rejected}`` preference rows: the chosen text holds the word w7, the rejected one
    does not (a reward model that scores w7 up learns the preference)."""
    rng = np.random.default_rng(seed)
    rows, seen = [], set()
    while len(rows) < n:
        rejected = rng.integers(10, VOCAB, size=rng.integers(*words)).tolist()
        chosen = rng.integers(10, VOCAB, size=rng.integers(*words)).tolist()
        chosen[rng.integers(len(chosen))] = 7
        pair = (" ".join(f"w{i}" for i in chosen), " ".join(f"w{i}" for i in rejected))
        if pair not in seen:
            seen.add(pair)
            rows.append({"chosen": pair[0], "rejected": pair[1]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
