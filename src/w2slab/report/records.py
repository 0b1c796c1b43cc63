"""The report's input (validated :class:`~w2slab.results.ExperimentResult` files) and the model orderings every
report view shares.

A sweep writes one ``RUN_ROOT/experiments/<experiment_id>/result.json`` per finished experiment; the
schema and its validation live in :mod:`w2slab.results`, so a malformed file stops the report with a
message that names it.

Seeds are averaged only within one *configuration*: a (dataset, weak, strong, student) plus its
``config_id`` (the full experiment config without the seed, the code revision and the data and weight
revisions). Runs of the same pair under another ``n_train``, ``epochs``, data or code revision are other
configurations; the most common one of each
(dataset, weak, strong, student) is its *main* configuration, which plots show and others are described against.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from w2slab.results import NO_CONFIG_ID, ExperimentResult, identity, read_results

#: Keys that name an experiment; they group results into table rows and plot series.
KEY_FIELDS = ExperimentResult.KEYS
#: The paper's losses in its own order; other losses follow alphabetically.
KNOWN_LOSS_ORDER = ("xent", "logconf", "product")


def load_records(path: Path) -> list[ExperimentResult]:
    """Every finished experiment under ``path`` (a run root or an experiment folder), validated
    (:func:`w2slab.results.read_results`)."""
    return read_results(path)


def key_of(result: ExperimentResult) -> tuple[str, ...]:
    """(dataset, weak, strong, student) of a result."""
    return tuple(getattr(result, key) for key in KEY_FIELDS)


def identity_of(result: ExperimentResult) -> dict[str, Any]:
    """What a result's config id hashes: its config without the seed, the code and the revisions it ran with."""
    return identity(result.config, result.resolved)


def main_configs(results: list[ExperimentResult]) -> dict[tuple[str, ...], str]:
    """The main config id of each (dataset, weak, strong, student): the one with most results.

    Ties go to a recorded config over ``no-config``, then to the id that sorts first, so the choice
    does not depend on the order files were read in.
    """
    counts: dict[tuple[str, ...], Counter] = defaultdict(Counter)
    for result in results:
        counts[key_of(result)][result.config_id()] += 1
    return {key: min(ids.items(), key=lambda item: (-item[1], item[0] == NO_CONFIG_ID, item[0]))[0]
            for key, ids in counts.items()}


def main_config_records(results: list[ExperimentResult]) -> list[ExperimentResult]:
    """Only the results of their (dataset, weak, strong, student)'s main configuration (what plots show)."""
    main = main_configs(results)
    return [r for r in results if r.config_id() == main[key_of(r)]]


def config_difference(config: dict[str, Any], main: dict[str, Any]) -> str:
    """The fields where ``config`` differs from the ``main`` config, as ``n_train=4000 (main 2000)``.

    Nested configs (``weak_train``, ``strong_train``) are compared field by field; the seed is ignored. Given
    identities (:func:`identity_of`), code and revisions are compared too: ``(versions).w2slab_source=...``.
    """
    if not config:
        return "no config recorded (older result file)"
    if not main:
        return "the main configuration has no config recorded (older result files)"
    mine, theirs = _flatten(config), _flatten(main)
    missing = object()
    parts = []
    for key in sorted((set(mine) | set(theirs)) - {"seed"}):
        value, reference = mine.get(key, missing), theirs.get(key, missing)
        if value != reference:
            parts.append(f"{key}={_show(value, missing)} (main {_show(reference, missing)})")
    return ", ".join(parts)


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _show(value: Any, missing: object) -> str:
    if value is missing:
        return "unset"
    return value if isinstance(value, str) else json.dumps(value, default=str, separators=(",", ":"))


def nanmean(values: Iterable[float | None]) -> float:
    """Mean over the finite values, NaN when there are none (without numpy's empty-slice warning); ``None`` (a
    JSON null inside a record's nested fields, such as its trace) counts as undefined."""
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def order_models(results: list[ExperimentResult], role: str) -> list[str]:
    """Weak models by mean weak accuracy, strong models by mean ceiling accuracy (ascending, name breaks ties).

    Ordering by measured capability rather than by name makes tables and plots read from weakest to
    strongest, as in the paper's figures.
    """
    metric = {"weak": "weak_accuracy", "strong": "ceiling_accuracy"}[role]
    names = sorted({getattr(r, role) for r in results})
    score = {name: nanmean(getattr(r, metric) for r in results if getattr(r, role) == name) for name in names}
    def key(name: str) -> tuple[bool, float, str]:
        unknown = math.isnan(score[name])  # models without a finite score go last, by name
        return (unknown, 0.0 if unknown else score[name], name)

    return sorted(names, key=key)


def order_losses(losses: Iterable[str]) -> list[str]:
    """The paper's losses first, in its order, then any others alphabetically."""
    unique = set(losses)
    known = [loss for loss in KNOWN_LOSS_ORDER if loss in unique]
    return known + sorted(unique - set(KNOWN_LOSS_ORDER))
