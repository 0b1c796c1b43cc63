"""YAML as researchers write it: ``1e-5`` is a number.

PyYAML follows YAML 1.1, whose float pattern needs a dot (``1.0e-5``): ``lr: 1e-5`` read as the *string* "1e-5"
and a sweep failed with ``expected float, got str '1e-5'``. YAML 1.2 (and JSON, TOML, Python) read it as a float.
This loader is PyYAML's safe loader with the YAML 1.2 float pattern added, so every spelling of a number in a
sweep file, a ``--config`` file or a ``--loss-param`` value reads as a number.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

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
