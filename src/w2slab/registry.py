"""Extension by registration: one small, generic registry for every pluggable kind of thing.

Losses, datasets, model families and registered models each live in a :class:`Registry`. Adding one
is a single registered object (usually a dataclass whose fields are its typed configuration), never
an edit to an if-chain: the CLI's choices and help, config validation and sweep-file validation all
read the registries.

Users register their own objects from their code (``@register_loss("mine")``) or from an installed
package that declares an entry point in the ``w2slab.plugins`` group::

    [project.entry-points."w2slab.plugins"]
    my_losses = "my_package.w2s_plugins"     # a module (imported) or a callable (called once)

:func:`load_plugins` imports them once, before any registry is read by the CLI or the Python API.
"""

from __future__ import annotations

import difflib
import importlib.metadata
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from w2slab.errors import W2SError

T = TypeVar("T")

PLUGIN_GROUP = "w2slab.plugins"


class Registry(Generic[T]):
    """Name -> object, with a decorator to register and one-line errors that list the choices."""

    def __init__(self, kind: str):
        self.kind = kind  # "loss", "dataset", ... : used in messages
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T | None = None, *, replace: bool = False) -> Callable[[T], T] | T:
        """``registry.register("name", obj)`` or ``@registry.register("name")`` on a class or function."""

        def add(obj: T) -> T:
            if not name or not isinstance(name, str):
                raise W2SError(f"a {self.kind} needs a non-empty string name, got {name!r}")
            if name in self._items and not replace and self._items[name] is not obj:
                raise W2SError(f"{self.kind} {name!r} is already registered; pick another name or pass replace=True")
            self._items[name] = obj
            return obj

        return add(item) if item is not None else add

    def unregister(self, name: str) -> None:
        self._items.pop(name, None)

    def get(self, name: str) -> T:
        load_plugins()
        if name not in self._items:
            raise W2SError(self.unknown_message(name))
        return self._items[name]

    def find(self, name: str) -> T | None:
        """The registered object, or None (``dict.get``)."""
        load_plugins()
        return self._items.get(name)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def unknown_message(self, name: object) -> str:
        close = difflib.get_close_matches(str(name), self._items, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown {self.kind} {name!r}{hint}; choose from {', '.join(self._items)}"

    def names(self) -> list[str]:
        load_plugins()
        return list(self._items)

    def items(self) -> list[tuple[str, T]]:
        load_plugins()
        return list(self._items.items())

    def values(self) -> list[T]:
        load_plugins()
        return list(self._items.values())

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


_plugins_loaded = False


def load_plugins() -> list[str]:
    """Import every ``w2slab.plugins`` entry point once (a module is imported, a callable is called).

    Returns the names loaded by this call. A plugin that fails to import is a user-fixable problem
    and is reported as one line naming the entry point.
    """
    global _plugins_loaded
    if _plugins_loaded:
        return []
    _plugins_loaded = True
    loaded = []
    for entry in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        try:
            obj = entry.load()
        except Exception as exc:  # noqa: BLE001 - any import failure of third-party code is the user's to fix
            raise W2SError(f"w2slab plugin {entry.name!r} ({entry.value}) failed to load: {type(exc).__name__}: "
                           f"{exc}; fix or uninstall the package that declares it") from exc
        if callable(obj) and not isinstance(obj, type):
            obj()
        loaded.append(entry.name)
    return loaded


def first_match(registry: Registry, name: str):
    """The first item of ``registry``, in ascending ``order``, whose ``matches(name)`` is true (None if none is):
    how a model or dataset name finds its source."""
    return next((item for item in sorted(registry.values(), key=lambda item: item.order) if item.matches(name)),
                None)
