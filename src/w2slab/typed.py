"""Building typed dataclasses from plain mappings (JSON, YAML, TOML, flags), with one-line errors.

Every configuration object in w2slab is a dataclass; this module turns a user's mapping into one,
checking unknown keys and the type of every value against the dataclass's annotations *before*
anything runs. An error names the key by its path (``strong_train.epochs``) and says what was
expected, so a typo in a sweep file stops the sweep in one line instead of after an hour of training.

Supported annotations: ``bool``, ``int``, ``float`` (ints accepted), ``str``, ``Literal[...]``,
``X | None``, ``tuple[X, ...]``, ``list[X]``, ``dict[K, V]``, nested dataclasses, and any class with a
``from_value(value, path)`` classmethod (how registered objects such as losses parse themselves).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, Literal, TypeVar, Union

from w2slab.errors import ConfigError

T = TypeVar("T")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def init_fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def build(cls: type[T], data: Any, path: str = "") -> T:
    """``cls(**data)`` with every key and value checked against ``cls``'s annotations."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{path or cls.__name__}: expected a mapping of {cls.__name__} fields, got "
                          f"{_show(data)}")
    fields = init_fields(cls)
    unknown = [key for key in data if key not in fields]
    if unknown:
        raise ConfigError(f"{_join(path, str(unknown[0]))}: unknown key; {cls.__name__} takes "
                          f"{', '.join(fields)}")
    hints = _hints(cls)
    values = {key: coerce(value, hints[key], _join(path, key)) for key, value in data.items()}
    try:
        return cls(**values)
    except ConfigError as exc:
        if path and not str(exc).startswith(path):
            raise ConfigError(f"{path}.{exc}") from None
        raise


def coerce(value: Any, annotation: Any, path: str) -> Any:
    """Check (and where lossless, convert) ``value`` to ``annotation``; raise ConfigError naming ``path``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return coerce(value, option, path)
            except ConfigError as exc:
                errors.append(exc)
        if len(options) == 1:
            raise errors[0]
        raise ConfigError(f"{path}: expected {' or '.join(_name(a) for a in args)}, got {_show(value)}")
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(f"{path}: expected one of {', '.join(map(str, args))}, got {_show(value)}")
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {_show(value)}")
        key_type, value_type = args if args else (Any, Any)
        return {coerce(k, key_type, f"{path} key"): coerce(v, value_type, f"{path}.{k}") for k, v in value.items()}
    if origin in (tuple, list):
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {_show(value)}")
        item_type = args[0] if args else Any
        items = [coerce(v, item_type, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if isinstance(annotation, type):
        if hasattr(annotation, "from_value"):
            return annotation.from_value(value, path)
        if dataclasses.is_dataclass(annotation):
            return build(annotation, value, path)
        if annotation is bool:
            if isinstance(value, bool):
                return value
        elif annotation is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
        elif annotation is float:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
        elif annotation is str:
            if isinstance(value, str):
                return value
        elif isinstance(value, annotation):
            return value
        raise ConfigError(f"{path}: expected {_name(annotation)}, got {_show(value)}")
    return value


def check_types(obj: Any) -> None:
    """In a frozen dataclass's ``__post_init__``: check (and losslessly convert) every field in place.

    So a config built directly in Python (``TrainConfig(epochs="two")``) fails as one built from a file does.
    """
    hints = _hints(type(obj))
    for name in init_fields(type(obj)):
        object.__setattr__(obj, name, coerce(getattr(obj, name), hints[name], name))


def to_plain(obj: Any) -> Any:
    """A dataclass tree as JSON-ready plain data (objects with ``to_value()`` serialise themselves)."""
    if hasattr(obj, "to_value"):
        return obj.to_value()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj


def flatten(mapping: dict[str, Any], prefix: str = "", *, scalar_lists: bool = False) -> dict[str, Any]:
    """Nested mappings as one level with dotted keys (``strong_train.lr``); lists as JSON text, or, with
    ``scalar_lists``, lists of plain values as tuples (hashable: a DataFrame column can group by them)."""
    import json

    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}.", scalar_lists=scalar_lists))
        elif isinstance(value, list | tuple):
            nested = any(isinstance(v, dict | list | tuple) for v in value)
            flat[name] = tuple(value) if scalar_lists and not nested else json.dumps(value, sort_keys=True,
                                                                                        default=str)
        else:
            flat[name] = value
    return flat


def check(condition: bool, path: str, message: str) -> None:
    """Range checks in ``__post_init__``: ``check(self.epochs > 0, "epochs", "must be > 0")``."""
    if not condition:
        raise ConfigError(f"{path}: {message}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _name(annotation: Any) -> str:
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _show(value: Any) -> str:
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{type(value).__name__} {text}"
