"""Text networks: a transformers backbone (``AutoModel``) with masked pooling and a zero-initialised fp32 head, and
the tokenizer that feeds it.

What a registered text model, a local Hugging Face folder or a Hub id is built as (the default
:meth:`~w2slab.models.sources.ModelSource.load`); why not ``AutoModelForSequenceClassification``:
:mod:`w2slab.models.heads`.
"""

from __future__ import annotations

import torch

from w2slab.errors import ModelError
from w2slab.models.heads import SequenceClassifier
from w2slab.models.resolved import ResolvedModel


def load_tokenizer(resolved: ResolvedModel, *, truncation_side: str = "left"):
    """Tokenizer with a pad token (eos for decoders that lack one; pooling ignores pad ids anyway)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolved.location, revision=resolved.revision)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "right"
    tokenizer.truncation_side = truncation_side if truncation_side in ("left", "right") else "right"
    return tokenizer


def load_text_classifier(resolved: ResolvedModel, *, num_labels: int, dtype: torch.dtype) -> SequenceClassifier:
    """``AutoModel`` in ``dtype`` with its family's masked pooling and a zero-initialised head of ``num_labels``."""
    from transformers import AutoModel

    try:
        backbone = AutoModel.from_pretrained(resolved.location, **resolved.pretrained_kwargs(dtype))
    except (OSError, ValueError) as exc:
        raise ModelError(f"could not load the weights of {resolved.name!r} from {resolved.location} "
                         f"({type(exc).__name__}: {exc}); reconvert it with `w2s models install {resolved.name}`"
                         ) from exc
    config = backbone.config
    hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd", None) or config.d_model
    return SequenceClassifier(backbone, hidden, resolved.defaults.pooling, num_labels)
