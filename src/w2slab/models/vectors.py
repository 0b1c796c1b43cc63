"""Linear models of vector rows: ``coords:FIRST-LAST`` reads those coordinates and trains a linear head on them.

There is no backbone to fine-tune: the coordinates are the features (so every training mode trains the head
alone, and a probe and a "full" fine-tune are the same model). Used by the planted Gaussian task
(:mod:`w2slab.data.vectors`), where theory says what PGR a linear weak and strong model reach. The
``coords:`` source (:class:`~w2slab.models.sources.CoordinatesSource`) parses the name and builds the classifier.
"""

from __future__ import annotations

import torch
from torch import nn

from w2slab.models.heads import zero_head


class CoordinateSlice(nn.Module):
    """The fixed "backbone": coordinates ``first..last`` of each vector (nothing to train)."""

    def __init__(self, first: int, last: int):
        super().__init__()
        self.first, self.last = first, last

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        if vectors.shape[-1] <= self.last:
            raise ValueError(f"coords:{self.first}-{self.last} reads coordinate {self.last} but the vectors have "
                             f"{vectors.shape[-1]}; choose coordinates below {vectors.shape[-1]}")
        return vectors[..., self.first:self.last + 1]


class CoordinateClassifier(nn.Module):
    """Coordinates -> fp32 linear head (K logits)."""

    def __init__(self, first: int, last: int, num_labels: int = 2):
        super().__init__()
        self.backbone = CoordinateSlice(first, last)
        self.head = zero_head(last - first + 1, num_labels)

    def features(self, vectors: torch.Tensor) -> torch.Tensor:
        return self.backbone(vectors.float())

    def forward(self, vectors: torch.Tensor, **_: object) -> torch.Tensor:
        return self.head(self.features(vectors))
