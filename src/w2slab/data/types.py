"""Plain containers passed between the data layer and the training pipeline.

Rows are plain ``{"id": str, "text": str, "label": int}`` dicts rather than objects so that they
serialise to JSON unchanged and any model/tokenizer code can consume them without importing us.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Row = dict  # {"id": str, "text": str, "label": int in {0, 1}}


@dataclass
class TaskData:
    """Formatted pools before splitting: ``train`` feeds weak_train + transfer, ``test`` feeds test.

    ``notes`` records every deviation from the reference recipe (stand-in data, carved splits,
    dropped rows) so that reports can state them instead of hiding them.
    """

    name: str
    train: list[dict]
    test: list[dict]
    notes: list[str] = field(default_factory=list)


@dataclass
class Splits:
    """The three disjoint, class-balanced splits one weak-to-strong experiment uses."""

    weak_train: list[dict]
    transfer: list[dict]
    test: list[dict]
    notes: list[str] = field(default_factory=list)
