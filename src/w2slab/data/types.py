"""Plain containers passed between the data layer and the training pipeline.

Rows are plain dicts rather than objects so that they serialise to JSON unchanged and any model code can
consume them without importing us. A row holds one *content* field, which says its modality:

- text: ``{"id": str, "text": str, "label": int}``
- image: ``{"id": str, "image": str, "label": int}``, the image as a string (:mod:`w2slab.data.images`: small
  images inline as their pixels, files by path), so that rows of both modalities deduplicate, split, cache and
  serialise by the same code.
- vector: ``{"id": str, "vector": str, "label": int}``, the vector as the base64 of its float32 bytes
  (:mod:`w2slab.data.vectors`), read by linear models of some of its coordinates (synthetic tasks with a known
  answer).
- a preference pair: ``{"id": str, "text": str, "text_b": str, "label": int}``, label 1 when ``text`` is the
  preferred (chosen) one. Models score each text alone with one scalar (a Bradley-Terry reward model,
  :class:`~w2slab.models.loading.PairwiseScorer`) and the pair's two logits are ``(score(b), score(a))``, so a
  pair is a K=2 example every loss, method and metric already handles, and accuracy is
  P(score(chosen) > score(rejected)).

Labels are class ids ``0..K-1``; binary tasks are K=2.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Row = dict  # {"id": str, "text" | "image" | "vector": str, "label": int in 0..K-1}

#: The content field of each modality, in the order they are looked for.
CONTENT_FIELDS = ("text", "image", "vector")
#: The second text of a preference pair.
PAIR_FIELD = "text_b"
#: Between a pair's two texts in its content (a character no tokenizer sees: the texts are encoded apart).
_PAIR_SEPARATOR = "\x1e"


def content_field(row: dict) -> str:
    """The row's content field: ``text``, ``image`` or ``vector``."""
    if "text" in row:
        return "text"
    return next((field for field in CONTENT_FIELDS if field in row), "text")


def content(row: dict) -> str:
    """What identifies an example (deduplication, leakage checks): a pair is both its texts, in order."""
    if PAIR_FIELD in row:
        return f"{row['text']}{_PAIR_SEPARATOR}{row[PAIR_FIELD]}"
    return row[content_field(row)]


def is_pair(row: dict) -> bool:
    """A preference pair (two texts, label 1 when the first is preferred)."""
    return PAIR_FIELD in row


def modality_of(rows: list[dict]) -> str:
    """``text``, ``image`` or ``vector``: the modality of a list of rows (that of its first row; empty: text)."""
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

    @property
    def pairwise(self) -> bool:
        rows = self.train or self.test
        return bool(rows) and is_pair(rows[0])


@dataclass
class Splits:
    """The four disjoint, class-balanced splits one weak-to-strong experiment uses: weak_train and transfer (the
    pool, partitioned by the seed), validation (ground truth for every tuning choice, never trained on) and test
    (read once, by evaluation)."""

    weak_train: list[dict]
    transfer: list[dict]
    test: list[dict]
    notes: list[str] = field(default_factory=list)
    num_classes: int = 2
    class_names: tuple[str, ...] | None = None
    validation: list[dict] = field(default_factory=list)
