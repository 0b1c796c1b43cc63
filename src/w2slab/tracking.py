"""Experiment tracking as the ecosystem does it: TensorBoard, W&B and MLflow, offline unless you say otherwise.

Two levels, named the same in every tracker:

- **stages as jobs**: each training stage (weak, ceiling, student) logs loss, learning rate and gradient norm per
  step through ``accelerate``'s trackers (:class:`~w2slab.train.trainer.TrackerCallback`), as a run named by the
  stage's label, of job type its kind, grouped under the config id of the experiment that first needed it (a
  stage shared by several experiments is trained, and logged, once);
- **one run per experiment**: once its evaluation is computed, a run named after the experiment folder, in the
  same group, holding the full resolved config and the final numbers of each student (accuracies, PGR and its
  interval, the gap, calibration and the misfit/gain diagnostics).

Where they go: under ``RUN_ROOT/tracking/`` (TensorBoard event files, W&B offline runs to ``wandb sync`` later, an
MLflow SQLite store ``mlflow.db``) unless your own settings say otherwise: ``WANDB_MODE=online`` and
``MLFLOW_TRACKING_URI`` are honoured, never overwritten.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
from pathlib import Path

from w2slab.errors import ConfigError
from w2slab.typed import flatten

#: name -> (module to import, what to install)
TRACKERS: dict[str, tuple[str, str]] = {
    "tensorboard": ("tensorboard", "pip install 'w2slab[logging]' (or tensorboard)"),
    "wandb": ("wandb", "pip install 'w2slab[logging]' (or wandb)"),
    "mlflow": ("mlflow", "pip install 'w2slab[logging]' (or mlflow-skinny sqlalchemy alembic)"),
}
PROJECT = "w2slab"


def check_trackers(names: tuple[str, ...]) -> None:
    """Unknown or uninstalled trackers: one line naming what to install, before any work."""
    unknown = [n for n in names if n not in TRACKERS]
    if unknown:
        raise ConfigError(f"trackers: unknown {', '.join(unknown)}; choose from {', '.join(TRACKERS)}")
    for name in names:
        module, install = TRACKERS[name]
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"trackers: --log {name} needs the {module} package, which is not installed; {install}")


def tracking_root(run_root: str | Path) -> Path:
    return Path(run_root) / "tracking"


def mlflow_uri(run_root: str | Path) -> str:
    """The user's ``MLFLOW_TRACKING_URI``, else a SQLite store in the run root (MLflow 3 refuses a file store)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(tracking_root(run_root) / 'mlflow.db').resolve()}"


def wandb_mode() -> str:
    return os.environ.get("WANDB_MODE", "offline")


def safe_key(key: str) -> str:
    """A metric or parameter name every tracker accepts (MLflow: letters, digits, ``_-. /``)."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", key)


def stage_init_kwargs(run_root: str | Path, *, name: str, group: str, kind: str) -> dict:
    """``init_kwargs`` of ``Accelerator.init_trackers`` for one training stage (a job of its experiment's group)."""
    folder = tracking_root(run_root)
    folder.mkdir(parents=True, exist_ok=True)
    return {"wandb": {"mode": wandb_mode(), "dir": str(folder), "name": name, "group": group, "job_type": kind,
                      "reinit": True},
            "mlflow": {"run_name": name, "tags": {"w2slab.group": group, "w2slab.job": kind}},
            "tensorboard": {}}


def metrics_of(results: dict) -> dict[str, float]:
    """The final numbers of an experiment: weak, ceiling and gap once, then per student ``<label>/<metric>``."""
    first = next(iter(results.values()))
    out = {"weak_accuracy": first.weak_accuracy, "ceiling_accuracy": first.ceiling_accuracy,
           "gap": first.ceiling_accuracy - first.weak_accuracy, "gap_ci_low": first.gap_ci95[0],
           "gap_ci_high": first.gap_ci95[1], "weak_auroc": first.weak_auroc, "ceiling_auroc": first.ceiling_auroc}
    for label, result in results.items():
        student = {"student_accuracy": result.student_accuracy, "student_auroc": result.student_auroc,
                   "pgr": result.pgr, "pgr_ci_low": result.pgr_ci95[0], "pgr_ci_high": result.pgr_ci95[1],
                   "agreement_with_weak_transfer": result.agreement_with_weak_transfer,
                   **{f"diagnostics.{k}": v for k, v in flatten(result.diagnostics or {}).items()}}
        out.update({f"{label}/{key}": value for key, value in student.items()})
    return {safe_key(k): float(v) for k, v in out.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))}


def log_experiment(trackers: tuple[str, ...], run_root: str | Path, *, name: str, group: str, config: dict,
                   results: dict) -> None:
    """One run per experiment in each tracker: its resolved config and its final numbers."""
    metrics, params = metrics_of(results), flatten(config)
    folder = tracking_root(run_root)
    folder.mkdir(parents=True, exist_ok=True)
    if "tensorboard" in trackers:
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(str(folder / group / name)) as writer:
            writer.add_text("config", "```\n" + json.dumps(config, indent=2, default=str) + "\n```")
            for key, value in metrics.items():
                writer.add_scalar(key, value, 0)
    if "wandb" in trackers:
        import wandb

        run = wandb.init(project=PROJECT, name=name, group=group, job_type="experiment", config=params,
                         mode=wandb_mode(), dir=str(folder), reinit=True)
        run.summary.update(metrics)
        run.finish()
    if "mlflow" in trackers:
        import mlflow

        mlflow.set_tracking_uri(mlflow_uri(run_root))
        mlflow.set_experiment(PROJECT)
        with mlflow.start_run(run_name=name, tags={"w2slab.group": group, "w2slab.job": "experiment"}):
            mlflow.log_params({safe_key(k): str(v)[:500] for k, v in params.items()})
            mlflow.log_metrics(metrics)
