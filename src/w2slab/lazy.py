"""A module imported on first use: ``torch = LazyModule("torch")`` costs nothing until ``torch.something``.

Why: the configuration layer imports the loss registry, and torch takes seconds to import; ``w2s --help``, ``w2s
--version``, config validation and a dry run need no tensor, so they should not pay for one.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands in for a module until an attribute is read, then imports it (once; Python caches modules)."""

    def __init__(self, name: str):
        self._name = name

    def _load(self) -> ModuleType:
        return importlib.import_module(self._name)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._load(), attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"
