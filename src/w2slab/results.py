"""The result schema, defined once: what an experiment measured, on disk, on screen and in reports.

- :class:`ExperimentResult`: one (experiment, student): the accuracies of weak, ceiling and student,
  PGR with its bootstrap CI (or the mark that it is unbounded) and the gap's CI, agreement, pair marks,
  the reasons the run is *suspect*, the experiment's config (restricted to that student's loss) and what the
  stages resolved at run time. The ``evaluate`` stage writes it as
  ``result.json``; sweeps publish it to ``RUN_ROOT/experiments/<id>/result.json``; reports read it back
  with :func:`read_results`, which validates every file.
- :class:`ExperimentSummary`: one experiment with all its students (``metrics.json`` of ``w2s run``),
  built from its results and the stages' stability reports (printed by :func:`w2slab.report.console.summary_table`).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from w2slab import stats
from w2slab.diagnostics import (
    calibration,
    capa,
    decompose,
    max_prob_quantile,
    misfit_gain,
    misfit_gain_kl,
    pack_correct,
    unpack_correct,
)
from w2slab.errors import W2SError
from w2slab.formatting import console
from w2slab.metrics import accuracy, agreement, auroc, majority_fraction, pgr

NAN = math.nan
#: A model that predicts one class on at least this fraction of the test set makes its run suspect: it has
#: collapsed to a constant (or the test set is that unbalanced, which the reason then says too).
SUSPECT_ONE_CLASS_FRACTION = 0.95
#: A student whose test AUROC is at most this, while its teacher's is at least 0.1 higher, has lost the signal it
#: was taught (a collapse that need not show as one predicted class): its run is suspect.
SUSPECT_CHANCE_AUROC = 0.55
#: A model at least this far above chance in accuracy whose 90th-percentile max probability on validation stays
#: below SUSPECT_UNCONFIDENT_P90 "did not converge": it ranks examples but cannot say so (a head stuck near zero).
SUSPECT_ABOVE_CHANCE = 0.10
SUSPECT_UNCONFIDENT_P90 = 0.6
#: A student is judged by that confidence bar only where the 90th percentile of its training labels' max
#: probability reaches the bar itself: a student that fits labels less sure than that stays as unsure as they are,
#: and no longer training can make it surer (``length: auto`` and the results share this gate). On sst2_sentences,
#: minilm-l3 -> minilm-l6 fully fine-tuned on 200 rows, labels at p90 .61 taught a student that stayed below .6 over
#: 1, 2 and 4 epochs; in probe mode on 300 rows the same kind of labels gained the student .15 of test accuracy at 4
#: epochs and 3x lr: a higher gate, .7, would have excused the first and missed the second.
STUDENT_LABELS_P90 = SUSPECT_UNCONFIDENT_P90
#: A model trained on ground truth (weak, ceiling) whose final training loss is within this fraction of ln K (the
#: loss of the uniform prediction) learned little from it: "did not converge" too, unless its test accuracy is so
#: low that a calibrated model that accurate has such a loss as well (a hard task: reward models on human
#: preferences end near ln 2 because the preferences are noisy, not because the model stopped early).
SUSPECT_LOSS_NEAR_CHANCE = 0.10
#: The roles a suspect reason starts with ("student predicts class 1 on 97% of test").
ROLES = ("weak", "ceiling", "student")
#: :meth:`ExperimentResult.config_id` of a record written before results carried their config.
NO_CONFIG_ID = "no-config"
#: The keys result files wrote before a field was renamed, and the field each is read into.
OLD_KEYS = {"loss": "student"}


@dataclass
class ExperimentResult:
    """One (dataset, weak, strong, student, seed). Undefined numbers (e.g. PGR when ceiling <= weak) are NaN.

    ``pgr_ci95`` is Fieller's 95% CI of PGR over the test examples (:func:`w2slab.stats.pgr_estimate`). Where the
    gap itself is not significant, PGR is unbounded within the interval: ``pgr_ci_unbounded`` is true and
    ``pgr_ci95`` is ``[null, null]`` in JSON (NaN in Python). ``gap_ci95`` is the t-interval of ceiling - weak
    accuracy over the same examples. ``suspect`` lists why
    the run's numbers need a look before use, each reason starting with its role (``weak``, ``ceiling``,
    ``student``): a training whose loss rose or whose gradient norm spiked, or a model predicting one
    class on >= 95% of the test set; empty when none applies.
    """

    dataset: str
    weak: str
    strong: str
    # the student's label: its loss's name and non-default parameters, and its method's where it has one
    # (``xent``, ``logconf[buffer=128]``, ``xent+conf_filter[drop=0.2]``, ``xent+oracle_select(oracle)``)
    student: str
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
    pgr_ci_unbounded: bool = False
    gap_ci95: tuple[float, float] = (NAN, NAN)
    # ceiling accuracy - chance (the test set's most frequent class), and its CI from the same resamples
    ceiling_over_chance: float = NAN
    ceiling_over_chance_ci95: tuple[float, float] = (NAN, NAN)
    weak_transfer_accuracy: float = NAN
    agreement_with_weak_transfer: float = NAN
    agreement_with_weak_test: float = NAN
    self_pair: bool = False
    weak_not_smaller: bool = False
    weak_params: int | None = None
    strong_params: int | None = None
    experiment_id: str = ""
    config: dict[str, Any] = field(default_factory=dict)  # ExperimentConfig.to_dict() with this student's loss only
    resolved: dict[str, Any] = field(default_factory=dict)  # per role: lr, precision, device, pooling, location
    suspect: list[str] = field(default_factory=list)
    method: str = "none"  # the method's label (its part of ``student``: conf_filter of xent+conf_filter)
    oracle: bool = False  # the student read ground truth on purpose (a named oracle method): not a W2S result
    ground_truth_labels: dict[str, int] = field(default_factory=dict)  # by role: weak, ceiling, supervisor, student
    # misfit/gain (Charikar et al. 2024), the test-set decomposition and calibration (w2slab.diagnostics)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    test_correct: dict[str, str] = field(default_factory=dict)  # per role, packed per-example correctness on test
    test_size: int = 0  # examples in the test set (what test_correct unpacks to)
    num_classes: int = 0  # K, the chance rate's 1/K (0: a record written before results carried it)
    selection: list[dict] = field(default_factory=list)  # checkpoint-selection evaluations of the student
    trace: list[dict] = field(default_factory=list)  # per traced step: step_frac, accuracy, PGR, agreement
    # the same models on the validation split (ground truth beside the pool, never trained on): accuracies, PGR,
    # its size and the per-example correctness; every tuning choice reads these, never the test numbers
    validation: dict[str, Any] = field(default_factory=dict)

    KEYS = ("dataset", "weak", "strong", "student")  # what names a configuration in tables and plots

    # --- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return _nan_to_none(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, raw: Any, source: str = "result") -> ExperimentResult:
        """Validate a parsed ``result.json``; every problem names ``source`` so it can be fixed or deleted. Files
        written before a field was renamed (:data:`OLD_KEYS`: ``loss`` for ``student``) read the same."""
        fix = "delete it and re-run `w2s sweep`"
        if not isinstance(raw, dict):
            raise W2SError(f"malformed experiment record {source}: expected one JSON object, got "
                           f"{type(raw).__name__}; {fix}")
        raw = _renamed(raw)
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
            elif name in ("pgr_ci95", "gap_ci95", "ceiling_over_chance_ci95"):
                if not isinstance(value, list | tuple) or len(value) != 2:
                    raise W2SError(f"malformed experiment record {source}: {name} must be [low, high]; {fix}")
                values[name] = tuple(_as_float(v, name, source, fix) for v in value)
            elif name == "suspect":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise W2SError(f"malformed experiment record {source}: suspect must be a list of strings; {fix}")
                values[name] = list(value)
            elif name in cls.KEYS or name == "experiment_id":
                values[name] = str(value)
            elif name in ("seed", "test_size", "num_classes"):
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise W2SError(f"malformed experiment record {source}: {name} must be an integer >= 0, got "
                                   f"{json.dumps(value)[:40]}; {fix}")
                values[name] = value
            elif f.type == "bool":
                values[name] = bool(value)
            else:
                values[name] = _check_structure(name, value, source, fix)
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
                student: dict[str, np.ndarray], config: dict[str, Any], label: str, experiment_id: str,
                resolved: dict[str, Any], seed: int, warn=print,
                stability: dict[str, dict] | None = None, method: str = "none", oracle: bool = False,
                ground_truth_labels: dict[str, int] | None = None, selection: list[dict] | None = None,
                trace: dict[str, np.ndarray] | None = None,
                validation: SplitPredictions | None = None) -> ExperimentResult:
        """Metrics from probabilities: ``weak`` and ``student`` on transfer and test, ``ceiling`` on test; ``label``
        names the student (the result's :attr:`student`).

        ``stability``: the trainings' stability reports by role (``weak``, ``ceiling``, ``student``; each a
        parsed ``stability.json``), whose ``suspect`` reasons the result carries next to its own. ``weak`` is
        the supervisor the student learned from (the weak model, or a method's synthetic supervisor or ensemble).
        ``validation``: every role's validation probabilities and ground truth, where all three predicted it (older
        stages and some method stages did not): whether each model converged is judged there, not on test.
        """
        test = labels["test"]
        result = cls(
            dataset=config["dataset"], weak=config["weak"], strong=config["strong"], student=label, seed=seed,
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
            warn(f"warning: {label}: {warning.message}")
        chance = float(np.bincount(test).max() / len(test))
        outcomes = {role: (probs.argmax(-1) == test).astype(float) for role, probs in
                    (("weak", weak["test"]), ("ceiling", ceiling), ("student", student["test"]))}
        interval = stats.pgr_estimate([outcomes])  # one seed: over its test examples (Fieller)
        result.pgr_ci95, result.pgr_ci_unbounded, result.gap_ci95 = (interval.ci95, interval.unbounded,
                                                                      interval.gap.ci95)
        result.ceiling_over_chance = result.ceiling_accuracy - chance
        result.ceiling_over_chance_ci95 = stats.mean_estimate([outcomes["ceiling"] - chance]).ci95
        result.suspect = suspect_reasons({"weak": weak["test"], "ceiling": ceiling, "student": student["test"]},
                                         test, stability or {}, validation=validation,
                                         student_labels=weak["transfer"])
        result.method, result.oracle = method, oracle
        result.ground_truth_labels = dict(ground_truth_labels or {})
        result.selection = list(selection or [])
        result.diagnostics = diagnose(weak, ceiling, student, labels)
        result.trace = trace_rows(trace, weak, result, labels) if trace is not None else []
        result.test_size = len(test)
        result.num_classes = int(np.asarray(ceiling).shape[1])
        result.test_correct = {role: pack_correct(probs.argmax(-1) == test) for role, probs in
                               (("weak", weak["test"]), ("ceiling", ceiling), ("student", student["test"]))}
        result.validation = validation_summary(validation.correct()) if validation is not None else {}
        result.mark_pair()
        return result

    def correct(self, role: str) -> np.ndarray:
        """Per-example correctness of ``role`` on the test set (for paired comparisons between results)."""
        if role not in self.test_correct:
            raise W2SError(f"result {self.experiment_id} has no per-example record of {role}; re-run its evaluation")
        return unpack_correct(self.test_correct[role], self.test_size)

    def validation_correct(self, role: str) -> np.ndarray:
        """Per-example correctness of ``role`` on the validation split (what a tuning choice pools, never the test
        set's)."""
        packed = (self.validation.get("correct") or {}).get(role)
        if packed is None:
            raise W2SError(f"result {self.experiment_id} has no per-example validation record of {role}; re-run its "
                           "evaluation")
        return unpack_correct(packed, int(self.validation["size"]))

    def has_outcomes(self) -> bool:
        """Whether the result recorded its per-example test outcomes (results written before they did have none,
        and pool into no interval over examples)."""
        return bool(self.test_correct) and self.test_size > 0

    def has_gap(self) -> bool:
        """Whether this seed counts as one with a gap in every table's gap rule: its own gap interval (ceiling - weak
        over its test examples) excludes 0 (not where it is unknown) and it is a W2S experiment at all
        (:meth:`no_experiment`)."""
        return bool(self.gap_ci95[0] > 0) and not self.no_experiment()

    def test_set(self) -> str:
        """What two results must share to be paired example by example (:func:`test_set_identity`)."""
        return test_set_identity(self.dataset, self.test_size, self.config, self.resolved)

    def config_id(self) -> str:
        """Short hash of what made the result except its seed: records that share it are seeds of one setting.

        The configuration, and (recorded since results carry them) the code that ran (w2slab's source digest, the
        result-relevant libraries) and the revisions of the data and weights. Reports average over seeds only
        within one config id, so runs before and after a change of ``n_train``, of a model's weights or of the
        code (a fix) are never mixed. Records without a config (older files) get ``no-config``.
        """
        return config_id(self.config, self.resolved)

    def suspect_roles(self) -> set[str]:
        """The roles (``weak``, ``ceiling``, ``student``) some suspect reason is about."""
        return {reason.split(" ", 1)[0] for reason in self.suspect}

    def mark_pair(self) -> None:
        """Self-pairs and weak >= strong pairs are allowed (as in the paper) and marked."""
        from w2slab.models.sources import parameter_count

        self.weak_params, self.strong_params = parameter_count(self.weak), parameter_count(self.strong)
        self.self_pair = self.weak == self.strong
        self.weak_not_smaller = bool(self.weak_params and self.strong_params and self.weak_params >= self.strong_params)

    def no_experiment(self) -> str:
        """Why this run is no W2S experiment (:func:`no_experiment_reason`); empty where it is one."""
        return no_experiment_reason(self)

    def one_line(self) -> str:
        pgr = "n/a (no W2S experiment)" if self.no_experiment() else console(self.pgr)
        return (f"{self.dataset:10s} {self.weak:>14s} -> {self.strong:14s} {self.student:8s} s{self.seed}  "
                f"weak {console(self.weak_accuracy)}  student {console(self.student_accuracy)}  "
                f"ceiling {console(self.ceiling_accuracy)}  PGR {pgr}"
                + ("  SUSPECT" if self.suspect else ""))


#: The fields read back as mappings or lists (reports index into them), and the parts of the test-set decomposition.
_MAPPINGS = ("config", "resolved", "diagnostics", "validation", "ground_truth_labels", "test_correct")
_LISTS = ("selection", "trace")
_DECOMPOSITION_KEYS = ("both_right", "corrected", "imitated", "changed", "new_errors")


def _check_structure(name: str, value: Any, source: str, fix: str) -> Any:
    """A nested field of a ``result.json`` checked for the shape readers rely on: a list where a mapping belongs, a
    diagnostics block without its decomposition, or bad hex in ``test_correct`` is one line naming the file and the
    field (``w2s report`` and ``w2s compare`` ended in tracebacks)."""

    def bad(field: str, what: str, got: Any) -> W2SError:
        shown = json.dumps(got, default=str)[:40]
        return W2SError(f"malformed experiment record {source}: {field} {what}, got {shown}; {fix}")

    if name in _MAPPINGS and not isinstance(value, dict):
        raise bad(name, "must be a mapping", value)
    if name in _LISTS and (not isinstance(value, list) or not all(isinstance(v, dict) for v in value)):
        raise bad(name, "must be a list of mappings", value)
    if name in ("weak_params", "strong_params") and value is not None and not _is_int(value):
        raise bad(name, "must be an integer or null", value)
    if name == "ground_truth_labels" and not all(_is_int(v) for v in value.values()):
        raise bad(name, "must map roles to label counts", value)
    if name == "test_correct":
        for role, packed in value.items():
            try:
                bytes.fromhex(packed)
            except (TypeError, ValueError):
                raise bad(f"test_correct.{role}", "must be a hex string", packed) from None
    if name == "diagnostics" and value:
        parts = value.get("decomposition")
        if not isinstance(parts, dict) or not all(
                key in parts and (parts[key] is None or _is_number(parts[key])) for key in _DECOMPOSITION_KEYS):
            raise bad("diagnostics.decomposition", f"must map {', '.join(_DECOMPOSITION_KEYS)} to numbers", parts)
        calibration = value.get("calibration", {})
        if not isinstance(calibration, dict) or not all(isinstance(v, dict) for v in calibration.values()):
            raise bad("diagnostics.calibration", "must map roles to mappings", calibration)
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def trace_rows(trace: dict[str, np.ndarray], weak: dict[str, np.ndarray], result: ExperimentResult,
               labels: dict[str, np.ndarray]) -> list[dict]:
    """The student over training: test accuracy, PGR against the final weak and ceiling accuracies, agreement
    with the weak labels on transfer (what it fitted) and test, and ``imitation_test``: on the test examples the
    weak model gets wrong, the share where the student makes the weak model's error (the paper's claim that longer
    training imitates the teacher's *errors* is about this share, not about agreement overall), at each step."""
    rows = []
    total = max(1, int(trace["total_steps"]))
    weak_test = weak["test"].argmax(-1)
    weak_wrong = weak_test != labels["test"]
    for i, step in enumerate(trace["steps"]):
        predicted = trace["test"][i].argmax(-1)
        test_acc = float((predicted == labels["test"]).mean())
        imitation = float((predicted[weak_wrong] == weak_test[weak_wrong]).mean()) if weak_wrong.any() else NAN
        gap = result.ceiling_accuracy - result.weak_accuracy
        rows.append({"step": int(step), "step_frac": int(step) / total, "accuracy": test_acc,
                     "pgr": (test_acc - result.weak_accuracy) / gap if gap > 0 else NAN,
                     "agreement_transfer": float((trace["transfer"][i].argmax(-1)
                                                  == weak["transfer"].argmax(-1)).mean()),
                     "agreement_test": float((predicted == weak_test).mean()), "imitation_test": imitation})
    return rows


def diagnose(weak: dict[str, np.ndarray], ceiling: np.ndarray, student: dict[str, np.ndarray],
             labels: dict[str, np.ndarray]) -> dict[str, Any]:
    """Misfit and gain (test), misfit on transfer (where the student fit the weak labels), the test-set
    decomposition, error overlap (CAPA), and calibration of the three models (:mod:`w2slab.diagnostics`)."""
    test = labels["test"]
    transfer = misfit_gain(weak["transfer"], student["transfer"], labels["transfer"])
    return {**misfit_gain(weak["test"], student["test"], test),
            **misfit_gain_kl(weak, student, labels),
            "misfit_transfer": transfer["misfit"],
            "decomposition": decompose(weak["test"], student["test"], test).to_dict(),
            # error overlap (Goel et al. 2025): weak teacher against the strong model's own skill (the ceiling), a
            # predictor of how much the student can gain; and against the student it taught
            "capa_weak_ceiling": capa(weak["test"], ceiling, test),
            "capa_weak_student": capa(weak["test"], student["test"], test),
            "calibration": {"weak": calibration(weak["test"], test), "ceiling": calibration(ceiling, test),
                            "student": calibration(student["test"], test)}}


#: The config fields that decide which rows form the test set and how each is read.
TEST_SET_FIELDS = ("data_seed", "n_test", "max_ctx", "truncation", "data_source", "text_field", "label_field",
                   "label_map")


def test_set_identity(dataset: str, test_size: int, config: dict[str, Any] | None,
                      resolved: dict[str, Any] | None) -> str:
    """The test set a result was measured on: the dataset and its recorded revision (a file's content digest),
    the test-set fields of its config and the test set's size, as canonical JSON."""
    config = config or {}
    revisions = (resolved or {}).get("revisions") or {}
    return json.dumps({"dataset": dataset, "revision": revisions.get(f"dataset:{dataset}"), "test_size": test_size,
                       **{name: config.get(name) for name in TEST_SET_FIELDS}}, sort_keys=True, default=str)


def test_set_difference(a: str, b: str) -> str:
    """The fields where two :func:`test_set_identity` values differ, as ``n_test=500 (other 400)``."""
    left, right = json.loads(a), json.loads(b)
    return ", ".join(f"{k}={left[k]} (other {right.get(k)})" for k in left if left[k] != right.get(k))


def validation_summary(correct: dict[str, np.ndarray]) -> dict[str, Any]:
    """Validation accuracies, PGR and gap with their intervals (one seed, over the validation examples), and the
    packed per-example correctness, so choices over seeds pool them with :mod:`w2slab.stats` as tables do."""
    outcomes = {role: np.asarray(values, dtype=float) for role, values in correct.items()}
    estimate = stats.pgr_estimate([outcomes])
    accuracies = {f"{role}_accuracy": float(values.mean()) for role, values in outcomes.items()}
    return {**accuracies, "size": len(outcomes["weak"]), "pgr": estimate.pgr if estimate.gap.value > 0 else NAN,
            "pgr_ci95": list(estimate.ci95), "gap_ci95": list(estimate.gap.ci95),
            "correct": {role: pack_correct(values.astype(bool)) for role, values in outcomes.items()}}


def identity(config: dict[str, Any], resolved: dict[str, Any] | None = None) -> dict[str, Any]:
    """The config without ``seed``, plus the code and the data and weight revisions ``resolved`` recorded.

    Older results recorded neither; they keep the identity of their config alone (and so their config id).
    """
    if not config:
        return {}
    out = {key: value for key, value in config.items() if key != "seed"}
    for key in ("versions", "revisions"):
        if (resolved or {}).get(key):
            out[f"({key})"] = resolved[key]  # parenthesised: no config field can have that name
    return out


def config_id(config: dict[str, Any], resolved: dict[str, Any] | None = None) -> str:
    """See :meth:`ExperimentResult.config_id`: 10 hex digits of :func:`identity`, or ``no-config``."""
    if not config:
        return NO_CONFIG_ID
    return hashlib.sha256(json.dumps(identity(config, resolved), sort_keys=True, default=str).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class SplitPredictions:
    """Every role's probabilities on one split and that split's ground truth, and the split's name (validation,
    where the results judge convergence; test for stages that predicted no validation rows)."""

    probs: dict[str, np.ndarray]
    labels: np.ndarray
    split: str = "validation"

    def correct(self) -> dict[str, np.ndarray]:
        """Per-example correctness by role."""
        return {role: np.asarray(probs).argmax(-1) == self.labels for role, probs in self.probs.items()}


def suspect_reasons(test_probs: dict[str, np.ndarray], test_labels: np.ndarray,
                    stability: dict[str, dict], validation: SplitPredictions | None = None,
                    student_labels: np.ndarray | None = None) -> list[str]:
    """Why a run needs a look, by role: its trainings' own reasons, then a collapse to one predicted class.

    A model predicting one class on >= :data:`SUSPECT_ONE_CLASS_FRACTION` of the test set usually learned
    nothing (or diverged); its accuracy is then the class balance, and PGR built on it means little. A student
    ranking the test set at chance (AUROC <= :data:`SUSPECT_CHANCE_AUROC`) below a teacher that did not has
    collapsed too, even while it still predicts both classes. Whether a model converged is judged on
    ``validation`` (:func:`convergence_reasons`), where every role predicted it; ``student_labels``: the
    probabilities the student was trained on (for the gate of :data:`STUDENT_LABELS_P90`).
    """
    reasons: list[str] = []
    for role in ROLES:
        reasons += [f"{role} training: {reason}" for reason in (stability.get(role) or {}).get("suspect", [])]
        if role not in test_probs:
            continue
        broken = int((~np.isfinite(test_probs[role])).any(axis=-1).sum())
        if broken:
            reasons.append(f"{role} predictions are not finite (NaN or inf) on {broken} test examples: the model "
                           "diverged; try --precision fp32 or a lower learning rate")
        top, share = majority_fraction(test_probs[role])
        if share >= SUSPECT_ONE_CLASS_FRACTION:
            base = float(np.mean(test_labels == top)) if len(test_labels) else NAN
            reasons.append(f"{role} predicts class {top} on {share:.0%} of test (labels: {base:.0%} class {top})")
    judged = (validation if validation is not None and len(validation.labels)
              and set(test_probs) <= set(validation.probs) else SplitPredictions(test_probs, test_labels, "test"))
    reasons += convergence_reasons(judged, stability, student_labels=student_labels)
    if "student" in test_probs and "weak" in test_probs:
        student, weak = auroc(test_probs["student"], test_labels), auroc(test_probs["weak"], test_labels)
        if student <= SUSPECT_CHANCE_AUROC and weak >= SUSPECT_CHANCE_AUROC + 0.1:  # False when either is NaN
            reasons.append(f"student ranks test examples at chance (AUROC {student:.3f}) where its teacher did not "
                           f"(AUROC {weak:.3f}): it collapsed during training")
    return reasons


def calibrated_loss(acc: float, num_classes: int) -> float:
    """The cross-entropy of a model right on ``acc`` of the examples that says so: probability ``acc`` on its
    prediction and the rest spread over the other classes (ln K at chance, 0 when always right)."""
    acc = min(max(acc, 1.0 / num_classes), 1.0)
    wrong = 1.0 - acc
    return -(acc * math.log(acc) + (wrong * math.log(wrong / (num_classes - 1)) if wrong > 0 else 0.0))


def convergence_reasons(judged: SplitPredictions, stability: dict[str, dict], *,
                        student_labels: np.ndarray | None = None) -> list[str]:
    """"did not converge" (:func:`convergence_problems`) for each role on the ``judged`` split (validation: the
    verdict decides whether a run's PGR is shown, a choice the test set may not make, and it is the split
    ``length: auto`` judged the same trainings on), with the final training loss of the ground-truth trainings
    (weak, ceiling); where ``length: auto`` retried a training, the reason says how long it was tried
    (:func:`length_tried`). A student is judged only where :func:`student_judgeable`. Such a model's accuracy
    rests on a ranking it cannot express: its calibration, its confidence-based losses and any PGR built on it
    measure the optimiser's cap, not the data."""
    reasons = []
    for role, probs in judged.probs.items():
        if role == "student" and not student_judgeable(stability.get(role), student_labels):
            continue
        final = (stability.get(role) or {}).get("final_loss", NAN) if role in ("weak", "ceiling") else NAN
        tried = length_tried((stability.get(role) or {}).get("length"))
        for reason in convergence_problems(probs, judged.labels, final_loss=final, role=role, split=judged.split):
            reasons.append(reason.replace(" did not converge:", f" did not converge {tried}:", 1) if tried
                           else reason)
    return reasons


def student_judgeable(stability: dict | None, labels: np.ndarray | None) -> bool:
    """Whether a student may be judged "did not converge" by the confidence bar: as ``length: auto`` decided for
    its kept attempt where it judged one, else by the gate of :data:`STUDENT_LABELS_P90` on the probabilities it
    was trained on (``labels``; without them, judged)."""
    length = (stability or {}).get("length") or {}
    attempts = length.get("attempts") or []
    if attempts:
        kept = attempts[int(length.get("kept", len(attempts) - 1))]
        if "judged" in kept:
            return bool(kept["judged"])
    return labels is None or not len(labels) or labels_sure_enough(labels)


def labels_sure_enough(labels: np.ndarray) -> bool:
    """The gate of :data:`STUDENT_LABELS_P90` on a student's training labels (probabilities), the one test of it
    for ``length: auto`` and the results."""
    return max_prob_quantile(np.asarray(labels, dtype=np.float64), 0.9) >= STUDENT_LABELS_P90


def convergence_problems(probs: np.ndarray, labels: np.ndarray, *, final_loss: float = NAN, role: str = "model",
                         split: str = "test", confidence: np.ndarray | None = None) -> list[str]:
    """The one "did not converge" rule, for the results and for ``length: auto`` (both on validation, or a
    student's own training labels): a model well above chance (:data:`SUSPECT_ABOVE_CHANCE`) whose predictions
    never leave the middle (90th percentile of its max probability < :data:`SUSPECT_UNCONFIDENT_P90`), or, given
    the ``final_loss`` of a ground-truth training, one whose loss ended within :data:`SUSPECT_LOSS_NEAR_CHANCE` of
    ln K while above :func:`calibrated_loss` at its accuracy on ``labels``. ``confidence``: the predictions whose
    90th percentile is judged, where they are other rows than ``probs`` (a student's unlabelled validation rows,
    ``split`` naming them; default ``probs``). Empty: converged. No rows: empty (not judged)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or not len(probs):
        return []
    k = probs.shape[1]
    p90 = max_prob_quantile(probs if confidence is None or not len(confidence) else confidence, 0.9)
    acc = accuracy(probs, labels)
    reasons = []
    if acc >= 1.0 / k + SUSPECT_ABOVE_CHANCE and p90 < SUSPECT_UNCONFIDENT_P90:
        reasons.append(f"{role} did not converge: accuracy {acc:.3f} but 90% of its {split} predictions have max "
                       f"probability below {p90:.3f}")
    if math.isfinite(final_loss) and final_loss >= (1.0 - SUSPECT_LOSS_NEAR_CHANCE) * math.log(k) \
            and final_loss > calibrated_loss(acc, k) - 0.002:  # at chance: ln K, flagged
        reasons.append(f"{role} did not converge: its training loss ended at {final_loss:.4f}, within "
                       f"{SUSPECT_LOSS_NEAR_CHANCE:.0%} of ln {k} = {math.log(k):.4f}")
    return reasons


def length_tried(record: dict | None) -> str:
    """``within 4 epochs (3 attempts, the last at 3x lr)`` for a training that ``length: auto`` retried; empty
    where it ran once (or its record predates the rule)."""
    attempts = (record or {}).get("attempts") or []
    if len(attempts) < 2:
        return ""
    longest = max(float(a["epochs"]) for a in attempts)
    boosted = [a for a in attempts if float(a.get("lr_factor", 1.0)) != 1.0]
    lr = f", the last at {float(boosted[-1]['lr_factor']):g}x lr" if boosted else ""
    return f"within {epochs_text(longest)} ({len(attempts)} attempts{lr})"


def epochs_text(epochs: float) -> str:
    """``1 epoch``, ``2 epochs``, ``0.5 epochs``."""
    return f"{epochs:g} epoch" + ("" if epochs == 1 else "s")


def length_note(role: str, record: dict | None) -> str:
    """One line on what ``length: auto`` did to a training that it retried (empty where it ran once):
    ``ceiling retried at 2 epochs: converged (validation accuracy 0.874)`` or ``ceiling did not converge within 4
    epochs (4 attempts, the last at 3x lr): kept 4 epochs (validation accuracy 0.612)``."""
    record = record or {}
    attempts = record.get("attempts") or []
    if len(attempts) < 2:
        return ""
    kept = attempts[int(record.get("kept", len(attempts) - 1))]
    what = epochs_text(float(kept["epochs"])) + (f" at {float(kept['lr_factor']):g}x lr"
                                                  if float(kept.get("lr_factor", 1.0)) != 1.0 else "")
    score = kept.get("score")
    scored = (f" ({record.get('score_name', 'validation score')} {score:.3f})"
              if isinstance(score, int | float) and math.isfinite(score) else "")
    if kept.get("converged"):
        return f"{role} retried at {what}: converged{scored}"
    return f"{role} did not converge {length_tried(record)}: kept {what}{scored}"


def unconverged_ceiling(suspect: list[str]) -> list[str]:
    """The SUSPECT reasons that say the ceiling did not converge (which makes a run no W2S experiment)."""
    return [reason for reason in suspect if reason.startswith("ceiling did not converge")]


def chance_accuracy(result: ExperimentResult) -> float:
    """The accuracy of always predicting the test set's most frequent class: the chance a weak model and a ceiling
    must beat (what ``ceiling_over_chance`` is measured against; 1/K on a balanced test set). 1/K for a record that
    lacks the margin, NaN for one that lacks K too."""
    if math.isfinite(result.ceiling_over_chance) and math.isfinite(result.ceiling_accuracy):
        return result.ceiling_accuracy - result.ceiling_over_chance
    return 1.0 / result.num_classes if result.num_classes >= 2 else NAN


def no_experiment_reason(result: ExperimentResult) -> str:
    """Why a run is no weak-to-strong experiment, in one line (empty where it is one): the weak model at chance
    (its test accuracy's interval, :func:`w2slab.stats.mean_estimate` over the test examples, reaches
    :func:`chance_accuracy`: its labels carry nothing to generalise from); a ceiling at chance (the strong model
    cannot learn the task at this size: whatever its training did, there is nothing to recover); or a ceiling that
    did not converge (the gap is then the optimiser's, not the strong model's). Every table's gap rule counts such
    a run as one without a gap, so no PGR of it is shown as a result (:meth:`ExperimentResult.has_gap`,
    ``report.console.summary_table``)."""
    reasons = []
    chance = chance_accuracy(result)
    if result.test_correct.get("weak") and result.test_size and result.num_classes >= 2 and math.isfinite(chance):
        weak = stats.mean_estimate([result.correct("weak")])
        low, high = weak.ci95
        if low <= chance:
            reasons.append(f"weak model at chance ({weak.value:.3f} [{low:.3f}, {high:.3f}], chance {chance:.3f}: "
                           "the most frequent class): no W2S experiment")
    ceiling_low = result.ceiling_over_chance_ci95[0]
    if math.isfinite(ceiling_low) and ceiling_low <= 0:
        low, high = (chance + bound for bound in result.ceiling_over_chance_ci95)
        reasons.append(f"ceiling at chance ({result.ceiling_accuracy:.3f} [{low:.3f}, {high:.3f}], chance "
                       f"{chance:.3f}): the strong model cannot learn this task at this size: no W2S experiment")
    elif unconverged := unconverged_ceiling(result.suspect):
        reasons.append(f"{unconverged[0]}: no W2S experiment")
    return "; ".join(reasons)


# The per-example outcomes behind a table, kept so the table (and its figures) can be rebuilt without training:
# one gzipped JSON line per result, in a fixed order and with a zero mtime, so the same records give the same bytes.

#: The kept records' file in a results folder (w2s bench's, the methods benchmark's)
RECORDS_FILE = "records.jsonl.gz"
#: What each kept record holds: enough to rebuild every table (per-example outcomes, the config that names its
#: setting and test set, what it read, its validation outcomes, the students' traces, and the number of classes
#: the gap rule's "weak model at chance" reads: results.no_experiment_reason).
KEPT_FIELDS = ("dataset", "weak", "strong", "student", "method", "seed", "oracle", "weak_accuracy", "ceiling_accuracy",
               "student_accuracy", "pgr", "gap_ci95", "ceiling_over_chance", "ground_truth_labels", "suspect",
               "test_size", "test_correct", "experiment_id", "config", "validation", "trace", "weak_params",
               "strong_params", "num_classes")


def write_records(results: list[ExperimentResult], path: Path, fields: tuple[str, ...] = KEPT_FIELDS) -> None:
    """``results`` to ``path``, byte-stable, each with ``fields`` and its data and weight revisions."""
    kept = [{key: getattr(r, key) for key in fields} | {"resolved": {"revisions": r.resolved.get("revisions", {})}}
            for r in sorted(results, key=lambda r: (r.experiment_id, r.student))]
    text = "".join(json.dumps(record, sort_keys=True, default=str) + "\n" for record in kept)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as handle:
        handle.write(text.encode())


def read_records(path: Path) -> list[ExperimentResult]:
    """The results :func:`write_records` wrote, validated (missing fields take their defaults). A file that is not
    gzipped JSON lines stops the caller with one line naming it."""
    try:
        lines = gzip.decompress(Path(path).read_bytes()).decode().splitlines()
        records = [json.loads(line) for line in lines]
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise W2SError(f"{path}: not kept records (gzipped JSON lines: {err}); restore it (git checkout) or write it "
                       "again with w2s bench") from None
    return [ExperimentResult.from_dict(record, str(path)) for record in records]


def read_results(path: Path) -> list[ExperimentResult]:
    """Every result under ``path``, sorted by file, validated: a run root (``experiments/*/result.json``), one
    ``w2s run`` experiment folder (``results/*.json``), one ``result.json``, or a results folder that holds only its
    kept records (:data:`RECORDS_FILE`, e.g. ``results/suite``).

    A malformed file stops the caller with a message naming it, rather than being skipped (a silently
    missing seed would shift every mean and CI).
    """
    path = Path(path)
    if path.is_file():
        return [ExperimentResult.read(path)]
    paths = sorted(path.glob("experiments/*/result.json")) or sorted(path.glob("results/*.json")) or \
        sorted(path.glob("result.json"))
    if not paths and (path / RECORDS_FILE).is_file():
        return read_records(path / RECORDS_FILE)
    if not paths:
        raise W2SError(f"no finished experiments under {path}; pass a run root (it holds experiments/, written by "
                       "w2s run and w2s sweep), an experiment folder of w2s run (it holds results/) or a results "
                       f"folder of w2s bench (it holds {RECORDS_FILE})")
    return [ExperimentResult.read(p) for p in paths]


@dataclass
class ExperimentSummary:
    """One experiment with every student: the content of ``metrics.json`` and of the printed table."""

    config: dict[str, Any]
    results: dict[str, ExperimentResult]  # by student label
    stability: dict[str, dict]  # weak, ceiling, student_<loss>
    notes: list[str]
    stages: dict[str, str]  # stage label -> id
    resolved: dict[str, Any]
    wall_seconds: float = 0.0
    folder: str = ""

    @property
    def first(self) -> ExperimentResult:
        return next(iter(self.results.values()))

    @property
    def suspect(self) -> list[str]:
        """Every student's suspect reasons, each once, in order (weak and ceiling reasons are shared by all)."""
        return list(dict.fromkeys(reason for result in self.results.values() for reason in result.suspect))

    def length_notes(self) -> list[str]:
        """What ``length: auto`` did to each training it retried (:func:`length_note`), by role."""
        notes = [length_note("student " + name.removeprefix("student_") if name.startswith("student_") else name,
                             (report or {}).get("length")) for name, report in self.stability.items()]
        return [note for note in notes if note]

    def to_dict(self) -> dict[str, Any]:
        """``metrics.json``. ``pgr_ci95`` is ``[null, null]`` with ``pgr_ci_unbounded: true`` when the gap is
        not established in the bootstrap (see :class:`ExperimentResult`); ``gap`` is ceiling - weak accuracy
        with its own CI (the same resamples for every loss)."""
        first = self.first
        return _nan_to_none({
            "weak": {"accuracy": first.weak_accuracy, "auroc": first.weak_auroc},
            "weak_transfer_accuracy": first.weak_transfer_accuracy,
            "ceiling": {"accuracy": first.ceiling_accuracy, "auroc": first.ceiling_auroc,
                        "over_chance": first.ceiling_over_chance,
                        "over_chance_ci95": list(first.ceiling_over_chance_ci95)},
            "gap": {"accuracy": first.ceiling_accuracy - first.weak_accuracy, "gap_ci95": list(first.gap_ci95)},
            "students": {label: {"accuracy": r.student_accuracy, "auroc": r.student_auroc, "pgr": r.pgr,
                                "pgr_ci95": list(r.pgr_ci95), "pgr_ci_unbounded": r.pgr_ci_unbounded,
                                "pgr_auroc": r.pgr_auroc,
                                "agreement_with_weak_transfer": r.agreement_with_weak_transfer,
                                "agreement_with_weak_test": r.agreement_with_weak_test, "suspect": r.suspect}
                         for label, r in self.results.items()},
            "suspect": self.suspect,
            "no_experiment": first.no_experiment(),
            "length": self.length_notes(),
            "stability": self.stability,
            "notes": self.notes,
            "pair": {"self_pair": first.self_pair, "weak_not_smaller": first.weak_not_smaller,
                     "weak_params": first.weak_params, "strong_params": first.strong_params},
            "resolved": self.resolved,
            "stages": self.stages,
            "wall_seconds": self.wall_seconds,
        })


def _renamed(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with each old key (:data:`OLD_KEYS`) read as its field's name, unless the file holds that name too."""
    return {OLD_KEYS[key] if key in OLD_KEYS and OLD_KEYS[key] not in raw else key: value for key, value in raw.items()}


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
