"""Registered components: a frozen dataclass whose fields are its typed parameters.

Losses and methods are both *components*: one class registered by name, whose instance is at once its
configuration (serialised into results and stage identities, parsed back from sweep files and the
CLI) and the object that does the work. This module holds what they share: parsing from a name or a
``{name: ..., param: ...}`` mapping, a short label naming the parameters that differ from their
defaults, and the registering decorator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from w2slab.errors import ConfigError
from w2slab.registry import Registry
from w2slab.typed import build, check_types, init_fields, to_plain

C = TypeVar("C", bound="type[Component]")


@dataclass(frozen=True)
class Component:
    """Base of registered components; subclasses set ``registry`` (and get ``name`` when registered)."""

    name: ClassVar[str] = ""
    registry: ClassVar[Registry]
    #: where the component comes from (a paper, a codebase), printed by ``w2s losses`` / ``w2s methods``
    source: ClassVar[str] = ""

    def __post_init__(self) -> None:
        check_types(self)  # parameters typed as declared, however the component was built

    def params(self) -> dict[str, Any]:
        return {key: to_plain(getattr(self, key)) for key in init_fields(type(self))}

    def to_value(self) -> dict[str, Any]:
        return {"name": self.name, **self.params()}

    @classmethod
    def code_digest(cls) -> str | None:
        """Digest of the source that defines this component when it is the user's (None for w2slab's own).

        Stages that run the component put it in their identity, so editing a plugin's loss or method reruns
        exactly the stages that used it (w2slab's own code is in every identity through its source digest).
        """
        from w2slab.fingerprint import code_digest

        return code_digest(cls)

    @property
    def label(self) -> str:
        """Short, unique, file-name-safe tag: the name, plus the parameters that differ from their defaults."""
        defaults = {f.name: f.default for f in dataclasses.fields(self) if f.init}
        changed = [f"{k}={v}" for k, v in self.params().items() if defaults.get(k) != getattr(self, k)]
        return self.name + (f"[{','.join(changed)}]" if changed else "")

    @classmethod
    def summary(cls) -> str:
        """The first line of the docstring (what ``w2s losses`` / ``w2s methods`` print)."""
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""

    @classmethod
    def from_value(cls, value: Any, path: str = "") -> Component:
        """From a name (``"logconf"``), a mapping (``{name: logconf, aux_weight: 0.3}``) or an instance."""
        kind = cls.registry.kind
        path = path or kind
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            value = {"name": value}
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            raise ConfigError(f"{path}: expected a {kind} name or a mapping with a 'name' key, got {value!r}")
        params = {k: v for k, v in value.items() if k != "name"}
        if value["name"] not in cls.registry:
            raise ConfigError(f"{path}: {cls.registry.unknown_message(value['name'])}")
        return build(cls.registry.get(value["name"]), params, f"{path}[{value['name']}]")


def registrar(base: type[Component]) -> Callable[..., Callable[[C], C]]:
    """The ``@register_<kind>(name)`` decorator of a component base: checks the class, makes it a frozen
    dataclass if it is not one, names it and adds it to ``base.registry``."""
    kind = base.registry.kind

    def register(name: str, *, replace: bool = False) -> Callable[[C], C]:
        def add(cls: C) -> C:
            if not (isinstance(cls, type) and issubclass(cls, base)):
                raise ConfigError(f"register_{kind}({name!r}) needs a subclass of w2slab.{base.__name__}, got {cls!r}")
            if "__dataclass_fields__" not in cls.__dict__:
                cls = dataclass(frozen=True)(cls)
            cls.name = name
            base.registry.register(name, cls, replace=replace)
            return cls

        return add

    register.__name__ = register.__qualname__ = f"register_{kind}"
    register.__doc__ = (
        f"Class decorator: ``@register_{kind}(\"name\")`` adds a subclass of ``w2slab.{base.__name__}`` to the {kind} "
        f"registry under ``name``.\n\nThe class becomes a frozen dataclass if it is not one; its fields are its typed "
        f"parameters (validated, recorded in results and stage identities, sweepable as lists). ``replace=True`` "
        f"overrides an existing {kind} of that name (a name registered twice is otherwise an error). Registered "
        f"{kind}s are then chosen by name on the command line, in a sweep file or in an ExperimentConfig.")
    return register
