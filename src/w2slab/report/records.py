"""The report's input (validated :class:`~w2slab.results.ExperimentResult` files as flat records) and the
model orderings every report view shares.

A sweep writes one ``RUN_ROOT/experiments/<experiment_id>/result.json`` per finished experiment; the
schema and its validation live in :mod:`w2slab.results`, so a malformed file stops the report with a
message that names it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from pathlib import Path

from w2slab.results import ExperimentResult, load_results

#: Keys that name an experiment; they group records into table rows and plot series.
KEY_FIELDS = ExperimentResult.KEYS
#: The paper's losses in its own order; other losses follow alphabetically.
KNOWN_LOSS_ORDER = ("xent", "logconf", "product")


def load_records(run_root: Path) -> list[dict]:
    """Every finished experiment under ``run_root`` as a flat dict (null numbers are NaN)."""
    return [dataclasses.asdict(result) for result in load_results(run_root)]


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
