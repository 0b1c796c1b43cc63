"""Plain containers passed between the data layer and the training pipeline.

Rows are plain dicts rather than objects so that they serialise to JSON unchanged and any model code can
consume them without importing us. A row holds one *content* field, which says its modality:

- text: ``{"id": str, "text": str, "label": int}``
- image: ``{"id": str, "image": str, "label": int}``, the image as a string (:mod:`w2slab.data.images`: small
  images inline as their pixels, files by path), so that rows of both modalities deduplicate, split, cache and
  serialise by the same code.

Labels are class ids ``0..K-1``; binary tasks are K=2.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Row = dict  # {"id": str, "text" | "image": str, "label": int in 0..K-1}

#: The content field of each modality, in the order they are looked for.
CONTENT_FIELDS = ("text", "image")


def content_field(row: dict) -> str:
    """The row's content field: ``text`` or ``image``."""
    return "image" if "image" in row and "text" not in row else "text"


def content(row: dict) -> str:
    """What identifies an example to a model (deduplication, leakage checks, per-example caches)."""
    return row[content_field(row)]


def modality_of(rows: list[dict]) -> str:
    """``text`` or ``image``: the modality of a list of rows (that of its first row; empty: text)."""
    return content_field(rows[0]) if rows else "text"


@dataclass
class TaskData:
    """Formatted pools before splitting: ``train`` feeds weak_train + transfer, ``test`` feeds test.

    ``notes`` records every deviation from the reference recipe (stand-in data, carved splits,
    dropped rows) so that reports can state them instead of hiding them. ``num_classes`` is K (labels are
    ``0..K-1``) and ``class_names`` their names where the data gives them.
    """

    name: str
    train: list[dict]
    test: list[dict]
    notes: list[str] = field(default_factory=list)
    num_classes: int = 2
    class_names: tuple[str, ...] | None = None

    @property
    def modality(self) -> str:
        return modality_of(self.train or self.test)


@dataclass
class Splits:
    """The three disjoint, class-balanced splits one weak-to-strong experiment uses."""

    weak_train: list[dict]
    transfer: list[dict]
    test: list[dict]
    notes: list[str] = field(default_factory=list)
    num_classes: int = 2
    class_names: tuple[str, ...] | None = None
