"""Seed-independent train/test carving for data that ships as a single labelled split.

Membership depends only on a hash of each record's content, never on the experiment seed or file order,
so the test pool is the same in every run and identical records always land on the same side.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def content_key(record: dict) -> str:
    """A canonical string for a raw record (sorted-key JSON)."""
    return json.dumps(record, sort_keys=True, ensure_ascii=False)


def hash_fraction(key: str) -> float:
    """Map a string to a uniform-looking float in [0, 1) (stable across processes, unlike hash())."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def carve(items: list[T], key: Callable[[T], str], train_fraction: float) -> tuple[list[T], list[T]]:
    """Split items into (train, test) by hashed key; order within each side is preserved."""
    train: list[T] = []
    test: list[T] = []
    for item in items:
        (train if hash_fraction(key(item)) < train_fraction else test).append(item)
    return train, test
