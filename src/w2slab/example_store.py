"""Values computed per example, kept on disk and keyed by the example's text: computed once, reused everywhere.

Token ids of a tokenizer and frozen-backbone features of a model depend on the text of an example and
on what computes them, never on which split, seed or experiment the example is in. Keying them by the
text (its sha256) rather than by a split means every seed, every split and every sweep of a dataset
reuses what any earlier stage computed; only texts never seen before cost a tokenizer call or a
forward pass.

A store is one folder per *computer* (a tokenizer at a max_ctx, a model at a precision, together
with the versions of the code that produced the values: see :func:`store_key`). It is append-only:
each :meth:`ExampleStore.add` writes one new shard atomically (a temporary file, then a rename), so
concurrent stages never corrupt each other; a text computed twice by racing stages is simply stored
twice, with the same value. Values are 1-D arrays of any length (ragged), stored flat with offsets.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from w2slab import atomic

#: how an image stored as a file is written in a row (:data:`w2slab.data.images.FILE`)
FILE_PREFIX = "file:"


def text_key(text: str) -> str:
    """The key of an example: a digest of its text (the same text is the same example to a model).

    An image stored as a file (``file:<path>``) is keyed by its path *and* the file's stat (inode, size, mtime,
    ctime): new pixels written over the same path are a new example, never the old one's cached features.
    """
    if text.startswith(FILE_PREFIX):
        from w2slab.fingerprint import stat_key

        try:
            text = "\0".join((text, stat_key(Path(text[len(FILE_PREFIX):]))))
        except OSError:
            pass  # not a readable file: the stage that reads it says so
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def store_key(what: dict[str, Any]) -> str:
    """The folder name of a store: a digest of everything that determines its values."""
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


class ExampleStore:
    """``get(texts) -> (values, missing)``, ``add(texts, values)``; see the module docstring."""

    def __init__(self, folder: str | Path, describe: dict[str, Any] | None = None):
        self.folder = Path(folder)
        self._values: dict[str, np.ndarray] = {}
        self._loaded: set[str] = set()
        self._describe = describe

    def _refresh(self) -> None:
        """Read shards written since the last look (by this process or another)."""
        if not self.folder.is_dir():
            return
        for shard in sorted(self.folder.glob("shard-*.npz")):
            if shard.name in self._loaded:
                continue
            try:
                with np.load(shard) as data:
                    keys, flat, offsets = data["keys"], data["flat"], data["offsets"]
            except (OSError, ValueError, KeyError, EOFError):
                continue  # unreadable (cut short before the rename cannot happen; a foreign file): ignore it
            for i, key in enumerate(keys.tolist()):
                self._values.setdefault(key, flat[offsets[i]:offsets[i + 1]])
            self._loaded.add(shard.name)

    def get(self, texts: Sequence[str]) -> tuple[list[np.ndarray | None], list[int]]:
        """The stored value of each text (``None`` where missing) and the positions of the missing ones."""
        self._refresh()
        values = [self._values.get(text_key(t)) for t in texts]
        return values, [i for i, v in enumerate(values) if v is None]

    def add(self, texts: Sequence[str], values: Sequence[np.ndarray]) -> None:
        """Store ``values[i]`` for ``texts[i]`` as one new shard (atomic: a reader sees all of it or none)."""
        if not texts:
            return
        keys = [text_key(t) for t in texts]
        arrays = [np.asarray(v).reshape(-1) for v in values]
        offsets = np.cumsum([0] + [a.size for a in arrays])
        flat = np.concatenate(arrays) if arrays else np.zeros(0)
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._describe is not None and not (self.folder / "about.json").exists():
            atomic.write_json(self.folder / "about.json", self._describe)
        atomic.write_with(self.folder / f"shard-{uuid.uuid4().hex}.npz",
                          lambda fh: np.savez(fh, keys=np.array(keys), flat=flat, offsets=offsets))
        for key, array in zip(keys, arrays, strict=True):
            self._values.setdefault(key, array)

    def __len__(self) -> int:
        self._refresh()
        return len(self._values)
