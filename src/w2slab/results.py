"""The result schema, defined once: what an experiment measured, on disk, on screen and in reports.

- :class:`ExperimentResult`: one (experiment, loss): the accuracies of weak, ceiling and student,
  PGR with its bootstrap CI, agreement, pair marks, the experiment's config (restricted to that
  loss) and what the stages resolved at run time. The ``evaluate`` stage writes it as
  ``result.json``; sweeps publish it to ``RUN_ROOT/experiments/<id>/result.json``; reports read it back
  with :func:`load_results`, which validates every file.
- :class:`ExperimentSummary`: one experiment with all its losses (``metrics.json`` of ``w2s run``),
  built from its results and the stages' stability reports, and printed by :func:`summary_table`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from w2slab.errors import W2SError
from w2slab.metrics import accuracy, agreement, auroc, bootstrap_pgr_ci, pgr

NAN = math.nan


@dataclass
class ExperimentResult:
    """One (dataset, weak, strong, loss, seed). Undefined numbers (e.g. PGR when ceiling <= weak) are NaN."""

    dataset: str
    weak: str
    strong: str
    loss: str  # the loss label: its name plus any non-default parameters
    seed: int
    weak_accuracy: float
    ceiling_accuracy: float
    student_accuracy: float
    pgr: float
    weak_auroc: float = NAN
    ceiling_auroc: float = NAN
    student_auroc: float = NAN
    pgr_auroc: float = NAN
    pgr_ci95: tuple[float, float] = (NAN, NAN)
    weak_transfer_accuracy: float = NAN
    agreement_with_weak_transfer: float = NAN
    agreement_with_weak_test: float = NAN
    self_pair: bool = False
    weak_not_smaller: bool = False
    weak_params: int | None = None
    strong_params: int | None = None
    experiment_id: str = ""
    config: dict[str, Any] = field(default_factory=dict)  # ExperimentConfig.to_dict() with this loss only
    resolved: dict[str, Any] = field(default_factory=dict)  # per role: lr, precision, device, pooling, location

    KEYS = ("dataset", "weak", "strong", "loss")  # what names a configuration in tables and plots

    # --- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return _nan_to_none(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, raw: Any, source: str = "result") -> ExperimentResult:
        """Validate a parsed ``result.json``; every problem names ``source`` so it can be fixed or deleted."""
        fix = "delete it and re-run `w2s sweep`"
        if not isinstance(raw, dict):
            raise W2SError(f"malformed experiment record {source}: expected one JSON object, got "
                           f"{type(raw).__name__}; {fix}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        required = [name for name, f in fields.items()
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [key for key in required if key not in raw]
        if missing:
            raise W2SError(f"malformed experiment record {source}: missing {', '.join(missing)}; {fix}")
        values: dict[str, Any] = {}
        for name, f in fields.items():
            if name not in raw:
                continue
            value = raw[name]
            if f.type in ("float",):
                values[name] = _as_float(value, name, source, fix)
            elif name == "pgr_ci95":
                if not isinstance(value, list | tuple) or len(value) != 2:
                    raise W2SError(f"malformed experiment record {source}: pgr_ci95 must be [low, high]; {fix}")
                values[name] = tuple(_as_float(v, name, source, fix) for v in value)
            elif name in cls.KEYS or name == "experiment_id":
                values[name] = str(value)
            elif name == "seed":
                values[name] = int(value)
            elif f.type == "bool":
                values[name] = bool(value)
            else:
                values[name] = value
        # Older records may lack the flags; a self pair is recognisable from the names alone.
        values.setdefault("self_pair", values["weak"] == values["strong"])
        values.setdefault("weak_not_smaller", values["self_pair"])
        return cls(**values)

    def write(self, path: Path) -> Path:
        from w2slab import atomic

        return atomic.write_json(path, self.to_dict())

    @classmethod
    def read(cls, path: Path) -> ExperimentResult:
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise W2SError(f"malformed experiment record {path}: {exc}; delete it and re-run `w2s sweep`") from exc
        return cls.from_dict(raw, str(path))

    # --- computing one -------------------------------------------------------------------------
    @classmethod
    def compute(cls, *, labels: dict[str, np.ndarray], weak: dict[str, np.ndarray], ceiling: np.ndarray,
                student: dict[str, np.ndarray], config: dict[str, Any], loss: str, experiment_id: str,
                resolved: dict[str, Any], seed: int, warn=print) -> ExperimentResult:
        """Metrics from probabilities: ``weak`` and ``student`` on transfer and test, ``ceiling`` on test."""
        test = labels["test"]
        result = cls(
            dataset=config["dataset"], weak=config["weak"], strong=config["strong"], loss=loss, seed=seed,
            weak_accuracy=accuracy(weak["test"], test), ceiling_accuracy=accuracy(ceiling, test),
            student_accuracy=accuracy(student["test"], test), pgr=NAN,
            weak_auroc=auroc(weak["test"], test), ceiling_auroc=auroc(ceiling, test),
            student_auroc=auroc(student["test"], test),
            weak_transfer_accuracy=accuracy(weak["transfer"], labels["transfer"]),
            agreement_with_weak_transfer=agreement(student["transfer"], weak["transfer"]),
            agreement_with_weak_test=agreement(student["test"], weak["test"]),
            experiment_id=experiment_id, config=config, resolved=resolved)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result.pgr = pgr(result.weak_accuracy, result.student_accuracy, result.ceiling_accuracy)
            result.pgr_auroc = pgr(result.weak_auroc, result.student_auroc, result.ceiling_auroc)
        for warning in caught:
            warn(f"warning: {loss}: {warning.message}")
        result.pgr_ci95 = bootstrap_pgr_ci(weak["test"].argmax(-1) == test, student["test"].argmax(-1) == test,
                                           ceiling.argmax(-1) == test, seed=seed)
        result.mark_pair()
        return result

    def mark_pair(self) -> None:
        """Self-pairs and weak >= strong pairs are allowed (as in the paper) and marked."""
        from w2slab.models.registry import parameter_count

        self.weak_params, self.strong_params = parameter_count(self.weak), parameter_count(self.strong)
        self.self_pair = self.weak == self.strong
        self.weak_not_smaller = bool(self.weak_params and self.strong_params and self.weak_params >= self.strong_params)

    def one_line(self) -> str:
        return (f"{self.dataset:10s} {self.weak:>14s} -> {self.strong:14s} {self.loss:8s} s{self.seed}  "
                f"weak {fmt(self.weak_accuracy)}  student {fmt(self.student_accuracy)}  "
                f"ceiling {fmt(self.ceiling_accuracy)}  PGR {fmt(self.pgr)}")


def load_results(run_root: Path) -> list[ExperimentResult]:
    """Every ``experiments/*/result.json`` under ``run_root``, sorted by path, validated.

    A malformed file stops the caller with a message naming it, rather than being skipped (a silently
    missing seed would shift every mean and CI).
    """
    run_root = Path(run_root)
    paths = sorted(run_root.glob("experiments/*/result.json"))
    if not paths:
        raise W2SError(f"no finished experiments under {run_root}; run `w2s sweep` first")
    return [ExperimentResult.read(path) for path in paths]


@dataclass
class ExperimentSummary:
    """One experiment with every loss: the content of ``metrics.json`` and of the printed table."""

    config: dict[str, Any]
    results: dict[str, ExperimentResult]  # by loss label
    stability: dict[str, dict]  # weak, ceiling, student_<loss>
    notes: list[str]
    stages: dict[str, str]  # stage label -> id
    resolved: dict[str, Any]
    wall_seconds: float = 0.0
    folder: str = ""

    @property
    def first(self) -> ExperimentResult:
        return next(iter(self.results.values()))

    def to_dict(self) -> dict[str, Any]:
        first = self.first
        return _nan_to_none({
            "weak": {"accuracy": first.weak_accuracy, "auroc": first.weak_auroc},
            "weak_transfer_accuracy": first.weak_transfer_accuracy,
            "ceiling": {"accuracy": first.ceiling_accuracy, "auroc": first.ceiling_auroc},
            "students": {loss: {"accuracy": r.student_accuracy, "auroc": r.student_auroc, "pgr": r.pgr,
                                "pgr_ci95": list(r.pgr_ci95), "pgr_auroc": r.pgr_auroc,
                                "agreement_with_weak_transfer": r.agreement_with_weak_transfer,
                                "agreement_with_weak_test": r.agreement_with_weak_test}
                         for loss, r in self.results.items()},
            "stability": self.stability,
            "notes": self.notes,
            "pair": {"self_pair": first.self_pair, "weak_not_smaller": first.weak_not_smaller,
                     "weak_params": first.weak_params, "strong_params": first.strong_params},
            "resolved": self.resolved,
            "stages": self.stages,
            "wall_seconds": self.wall_seconds,
        })


def summary_table(summary: ExperimentSummary):
    """The printed result of ``w2s run`` as a rich table."""
    from rich.table import Table

    first = summary.first
    table = Table(title=f"{first.dataset}: {first.weak} -> {first.strong} (seed {first.seed}, n_test "
                        f"{summary.config['n_test']})")
    for column in ("model", "accuracy", "AUROC", "PGR", "PGR 95% CI"):
        table.add_column(column, justify="right" if column != "model" else "left")
    table.add_row(f"weak ({first.weak})", fmt(first.weak_accuracy), fmt(first.weak_auroc), "", "")
    for loss, result in summary.results.items():
        low, high = result.pgr_ci95
        table.add_row(f"w2s student ({loss})", fmt(result.student_accuracy), fmt(result.student_auroc),
                      fmt(result.pgr), f"[{fmt(low)}, {fmt(high)}]")
    table.add_row(f"ceiling ({first.strong})", fmt(first.ceiling_accuracy), fmt(first.ceiling_auroc), "", "")
    return table


def fmt(value: float | None) -> str:
    return "  nan" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _as_float(value: Any, key: str, source: str, fix: str) -> float:
    """JSON null -> NaN; anything that is not a number is a malformed record."""
    if value is None:
        return NAN
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise W2SError(f"malformed experiment record {source}: {key} must be a number or null, got {value!r}; {fix}")
    return float(value)


def _nan_to_none(value: Any) -> Any:
    """Strict JSON: NaN is written as null (and read back as NaN by :meth:`ExperimentResult.from_dict`)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_none(v) for v in value]
    return value
