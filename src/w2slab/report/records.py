"""Loading the per-experiment records a sweep writes, and the model orderings every report view shares.

A sweep writes one ``RUN_ROOT/experiments/<experiment_id>/result.json`` per finished experiment. The
report is only as trustworthy as these files, so a malformed one stops the report with a message that
names it, rather than being skipped (a silently missing seed would shift every mean and CI).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

from w2slab.errors import W2SError

#: Keys that name an experiment; they group records into table rows and plot series.
KEY_FIELDS = ("dataset", "weak", "strong", "loss")
#: Numeric fields every record must carry (``pgr`` may be null: undefined when ceiling <= weak).
REQUIRED_NUMBERS = ("weak_accuracy", "ceiling_accuracy", "student_accuracy", "pgr")
#: Numeric fields a record may carry; missing or null ones become NaN.
OPTIONAL_NUMBERS = ("weak_auroc", "ceiling_auroc", "student_auroc")
#: The paper's losses in its own order; other losses follow alphabetically.
KNOWN_LOSS_ORDER = ("xent", "logconf", "product")


def load_records(run_root: Path) -> list[dict]:
    """Read every ``experiments/*/result.json`` under ``run_root``, sorted by path.

    Numbers are normalised to floats (null -> NaN) and the flags to bools, so that downstream code
    never has to special-case JSON nulls.
    """
    run_root = Path(run_root)
    paths = sorted(run_root.glob("experiments/*/result.json"))
    if not paths:
        raise W2SError(f"no finished experiments under {run_root}; run `w2s sweep` first")
    return [_read_record(path) for path in paths]


def _read_record(path: Path) -> dict:
    """Parse and validate one result file; every problem names the file so it can be fixed or deleted."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise W2SError(f"malformed experiment record {path}: {exc}; delete it and re-run `w2s sweep`") from exc
    if not isinstance(raw, dict):
        raise W2SError(f"malformed experiment record {path}: expected one JSON object, got {type(raw).__name__}; "
                       "delete it and re-run `w2s sweep`")
    missing = [key for key in (*KEY_FIELDS, "seed", *REQUIRED_NUMBERS) if key not in raw]
    if missing:
        raise W2SError(f"malformed experiment record {path}: missing {', '.join(missing)}; "
                       "delete it and re-run `w2s sweep`")
    record = dict(raw)
    for key in KEY_FIELDS:
        record[key] = str(raw[key])
    for key in (*REQUIRED_NUMBERS, *OPTIONAL_NUMBERS):
        record[key] = _as_float(raw.get(key), key, path)
    # Older records may lack the flags; a self pair is recognisable from the names alone.
    record["self_pair"] = bool(raw.get("self_pair", record["weak"] == record["strong"]))
    record["weak_not_smaller"] = bool(raw.get("weak_not_smaller", record["self_pair"]))
    return record


def _as_float(value, key: str, path: Path) -> float:
    """JSON null -> NaN; anything that is not a number is a malformed record."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise W2SError(f"malformed experiment record {path}: {key} must be a number or null, got {value!r}; "
                       "delete it and re-run `w2s sweep`")
    return float(value)


def nanmean(values: Iterable[float]) -> float:
    """Mean over the finite values, NaN when there are none (without numpy's empty-slice warning)."""
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def order_models(records: list[dict], role: str) -> list[str]:
    """Weak models by mean weak accuracy, strong models by mean ceiling accuracy (ascending, name breaks ties).

    Ordering by measured capability rather than by name makes tables and plots read from weakest to
    strongest, as in the paper's figures.
    """
    metric = {"weak": "weak_accuracy", "strong": "ceiling_accuracy"}[role]
    names = sorted({r[role] for r in records})
    score = {name: nanmean(r[metric] for r in records if r[role] == name) for name in names}
    def key(name: str) -> tuple[bool, float, str]:
        unknown = math.isnan(score[name])  # models without a finite score go last, by name
        return (unknown, 0.0 if unknown else score[name], name)

    return sorted(names, key=key)


def order_losses(losses: Iterable[str]) -> list[str]:
    """The paper's losses first, in its order, then any others alphabetically."""
    unique = set(losses)
    known = [loss for loss in KNOWN_LOSS_ORDER if loss in unique]
    return known + sorted(unique - set(KNOWN_LOSS_ORDER))
