"""User-facing errors.

Every problem a user can fix (a bad name, a missing file, malformed input) raises a
:class:`W2SError` whose message names the problem *and* the fix. The CLI prints such
errors as one line and exits with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class W2SError(Exception):
    """A problem with the user's input or environment, with a message that says how to fix it."""


class DataError(W2SError):
    """Bad or missing data: unknown dataset, missing data root, malformed rows, too few examples."""


class ModelError(W2SError):
    """Unknown model, missing weight package, or a failed conversion."""


class TrainingError(W2SError):
    """A training stage that cannot finish with usable (finite) weights."""


class ConfigError(W2SError):
    """A configuration value of the wrong type, out of range, or an unknown key (named by its path)."""
