"""Where the offline raw files live.

The raw files are large and read-only and must never be copied into the repo, so their location is
always passed in (argument) or configured (env var) rather than assumed.
"""

from __future__ import annotations

import os
from pathlib import Path

from w2slab.errors import DataError

ENV_VAR = "W2SLAB_DATA_ROOT"


def resolve_data_root(data_root: str | Path | None) -> Path:
    """Return the data root: the argument if given, else ``$W2SLAB_DATA_ROOT``; raise if missing."""
    candidate = data_root if data_root not in (None, "") else os.environ.get(ENV_VAR) or None
    if candidate is None:
        raise DataError(
            f"data root not set; set {ENV_VAR} or --data-root to the folder holding sciq/, boolq/, ... "
            "(e.g. ../shared/datasets)"
        )
    path = Path(candidate).expanduser()
    if not path.is_dir():
        raise DataError(
            f"data root {str(path)!r} not found; set {ENV_VAR} or --data-root to the folder holding "
            "sciq/, boolq/, ... (e.g. ../shared/datasets)"
        )
    return path


def try_data_root(data_root: str | Path | None) -> Path | None:
    """For ``source="auto"``: None when no root is configured (use the Hub); a configured root must exist."""
    if data_root in (None, "") and not os.environ.get(ENV_VAR):
        return None
    return resolve_data_root(data_root)
