"""w2slab: weak-to-strong generalisation experiments with open models, on a laptop CPU or a GPU cluster.

The Python API (names are imported on first use, so ``import w2slab`` stays cheap)::

    import w2slab
    result = w2slab.run(w2slab.ExperimentConfig(dataset="sst2", weak="minilm-l6", strong="mpnet-base"))
    sweep = w2slab.sweep([...configs...], w2slab.RuntimeConfig(run_root="runs/mine"))
    df = w2slab.load_results("runs/mine")            # a pandas DataFrame, one row per student result

Extension points: :func:`register_loss` (a :class:`Loss` dataclass), :func:`register_method` (a
:class:`Method` dataclass of one of :mod:`w2slab.methods`' kinds), :func:`register_dataset`,
:func:`register_family`, :func:`register_model`, and :class:`TrainerCallback` (``RuntimeConfig.callbacks``).
"""

from __future__ import annotations

from w2slab.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "run": "w2slab.api", "sweep": "w2slab.api", "RunResult": "w2slab.api", "SweepResult": "w2slab.api",
    "ExperimentConfig": "w2slab.config", "TrainConfig": "w2slab.config", "RuntimeConfig": "w2slab.config",
    "Loss": "w2slab.losses", "register_loss": "w2slab.losses", "LOSSES": "w2slab.losses",
    "Method": "w2slab.methods", "register_method": "w2slab.methods", "METHODS": "w2slab.methods",
    "ExperimentResult": "w2slab.results", "ExperimentSummary": "w2slab.results",
    "register_dataset": "w2slab.data.registry", "DatasetSpec": "w2slab.data.registry",
    "register_family": "w2slab.models.registry", "register_model": "w2slab.models.registry",
    "FamilyDefaults": "w2slab.models.registry", "ModelSpec": "w2slab.models.registry",
    "TrainerCallback": "w2slab.train.trainer", "TrainerState": "w2slab.train.trainer",
    "W2SError": "w2slab.errors", "ConfigError": "w2slab.errors",
    "load_results": "w2slab.analysis", "compare": "w2slab.analysis",
}

__all__ = ["__version__", *_EXPORTS]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
