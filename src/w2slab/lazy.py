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


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Any, Any]:
    """A package's ``__getattr__`` and ``__dir__`` for names imported on first use (``exports``: name -> module), so
    importing the package loads none of them and ``dir`` and tab completion still list them."""

    def module_getattr(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def module_dir() -> list[str]:
        return sorted({*vars(importlib.import_module(package)), *exports})

    return module_getattr, module_dir
