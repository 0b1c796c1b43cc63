"""Configuration files as researchers write them: JSON, YAML or TOML, read by one function.

:func:`read_config_file` reads a ``--config`` file, a sweep file or a ``w2s bench`` candidate into a mapping, by its
suffix (``.json``, ``.yaml``/``.yml``, ``.toml``); every way it can fail (missing, a folder, not UTF-8, bad syntax,
not a mapping) is one :class:`~w2slab.errors.ConfigError` line naming the file and the fix.

YAML numbers: PyYAML follows YAML 1.1, whose float pattern needs a dot (``1.0e-5``), so ``lr: 1e-5`` would read as
the *string* "1e-5". :func:`safe_load` is PyYAML's safe loader with the YAML 1.2 float pattern added, as JSON, TOML
and Python read numbers, so every spelling of a number in a sweep file, a ``--config`` file or a ``--loss-param``
value reads as a number.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

from w2slab.errors import ConfigError

#: YAML 1.2 core schema floats (plus 1.1's ``.inf``/``.nan`` spellings that PyYAML already reads).
_FLOAT = re.compile(r"""^(?:[-+]?(?:\d[\d_]*)?\.?\d[\d_]*[eE][-+]?\d+
                        |[-+]?(?:\d[\d_]*)?\.\d[\d_]*
                        |[-+]?\d[\d_]*\.
                        |[-+]?\.(?:inf|Inf|INF)
                        |\.(?:nan|NaN|NAN))$""", re.X)


class NumberLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that reads ``1e-5`` and ``3E+2`` as floats."""


NumberLoader.yaml_implicit_resolvers = {key: list(resolvers)
                                       for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _first in "-+0123456789.":
    NumberLoader.yaml_implicit_resolvers[_first] = [
        (tag, regexp) for tag, regexp in NumberLoader.yaml_implicit_resolvers.get(_first, [])
        if tag != "tag:yaml.org,2002:float"]
NumberLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` with YAML 1.2 numbers."""
    return yaml.load(text, Loader=NumberLoader)  # noqa: S506 - NumberLoader is a SafeLoader


YAMLError = yaml.YAMLError

#: suffix -> format; a file with another suffix is read in the caller's ``default`` format
FORMATS = {".json": "JSON", ".yaml": "YAML", ".yml": "YAML", ".toml": "TOML"}
#: what each format calls a mapping
_MAPPING = {"JSON": "object", "YAML": "mapping", "TOML": "table"}
_PARSERS = {"JSON": json.loads, "YAML": safe_load, "TOML": tomllib.loads}


def file_format(path: str | Path, default: str = "JSON") -> str:
    """``JSON``, ``YAML`` or ``TOML``: the format of ``path`` by its suffix, ``default`` for any other suffix."""
    return FORMATS.get(Path(path).suffix.lower(), default)


def read_config_file(path: str | Path, *, label: str, holds: str, default: str = "JSON") -> dict[str, Any]:
    """The mapping at the top of a JSON, YAML or TOML file (by its suffix, else ``default``).

    ``label`` starts every error line (``--config run.json``, ``sweep file s.yaml``); ``holds`` says what the file
    is a mapping of, for the line that refuses anything else.
    """
    path = Path(path)
    kind = file_format(path, default)
    if path.is_dir():
        raise ConfigError(f"{label}: is a directory; pass the path of a {kind} file of {holds}")
    try:
        data = _PARSERS[kind](path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{label}: file not found; pass the path of a {kind} file of {holds}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{label}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    except (OSError, ValueError, yaml.YAMLError) as exc:  # JSON and TOML syntax errors are ValueErrors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{label}: not valid {kind} ({first})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected a {kind} {_MAPPING[kind]} of {holds}, got a {type(data).__name__}")
    return data
