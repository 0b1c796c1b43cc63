"""The Python API: ``w2slab.run`` (one experiment) and ``w2slab.sweep`` (many), with typed results.

    import w2slab
    result = w2slab.run(w2slab.ExperimentConfig(dataset="sst2", weak="minilm-l6", strong="mpnet-base"))
    result.summary.results["xent"].pgr

An experiment is a sweep of one: both go through the same plan (validate every config and name,
build the stage graphs, deduplicate), the same executor and the same published results
(``RUN_ROOT/experiments/<id>/result.json``). ``run`` then also assembles the experiment's folder.
The CLI is a thin layer over these two functions.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from w2slab.config import ExperimentConfig, RuntimeConfig
from w2slab.distributed import is_main_process
from w2slab.errors import ConfigError
from w2slab.results import ExperimentResult, ExperimentSummary


@dataclass
class SweepResult:
    """What :func:`sweep` returns: where it ran, its plan (stages new and cached, the experiments' graphs), one
    :class:`~w2slab.results.ExperimentResult` per (experiment, student), and its wall time."""

    run_root: Path
    plan: Any  # w2slab.pipeline.sweep.SweepPlan
    results: list[ExperimentResult]  # one per (experiment, loss); empty on non-main ranks of accelerate launch
    seconds: float


@dataclass
class RunResult:
    """What :func:`run` returns: the experiment folder, its :class:`~w2slab.results.ExperimentSummary` (every
    student's result, stability reports, notes; what ``metrics.json`` holds), and the sweep of one behind it."""

    folder: Path | None  # None on non-main ranks of accelerate launch
    summary: ExperimentSummary | None
    sweep: SweepResult

    @property
    def results(self) -> list[ExperimentResult]:
        return self.sweep.results


def sweep(configs: Iterable[ExperimentConfig | dict], runtime: RuntimeConfig | None = None, *,
          plan_only: bool = False, **executor_options: Any) -> SweepResult:
    """Run experiments as one deduplicated stage graph under ``runtime.run_root``.

    ``configs`` may be ExperimentConfig objects or plain mappings (validated). Everything is validated
    and planned before the first stage runs. ``executor_options`` go to the executor (Ray:
    ``ray_address``, ``ray_cpus``, ``gpus_per_training``).
    """
    from w2slab.pipeline.store import StageStore
    from w2slab.pipeline.sweep import plan

    runtime = _ready(runtime or RuntimeConfig())
    configs = [c if isinstance(c, ExperimentConfig) else ExperimentConfig.from_dict(c) for c in configs]
    if not configs:
        raise ConfigError("a sweep needs at least one experiment")
    store = StageStore(runtime.run_root, create=not plan_only)
    sweep_plan = plan(configs, store, runtime.data_root, runtime.recompute, runtime.callbacks)
    return _carry_out(sweep_plan, store, runtime, configs, plan_only=plan_only, executor_options=executor_options)


def _ready(runtime: RuntimeConfig) -> RuntimeConfig:
    """What a run and a sweep check first: plugins loaded (their components validate), the executor known."""
    from w2slab.pipeline.executors import EXECUTORS
    from w2slab.registry import load_plugins

    load_plugins()
    if runtime.executor not in EXECUTORS:
        raise ConfigError(f"executor: unknown {runtime.executor!r}; choose from {', '.join(EXECUTORS)}")
    return runtime


def _carry_out(sweep_plan, store, runtime: RuntimeConfig, configs: list[ExperimentConfig], *, plan_only: bool = False,
               executor_options: dict[str, Any] | None = None) -> SweepResult:
    """Run a planned sweep: its new stages, then the results published (and tracked)."""
    from w2slab.pipeline.executors import EXECUTORS

    runtime.echo(sweep_plan.summary())
    _warn_cpu_fp16(configs, runtime)
    started = time.time()
    if plan_only:
        return SweepResult(store.root, sweep_plan, [], 0.0)
    if runtime.trackers:  # each stage's tracker run joins the group of the first experiment that needs it
        groups: dict[str, str] = {}
        for graph in sweep_plan.graphs:
            for stage in graph.stages():
                groups.setdefault(stage.id, graph.config.identity())
        runtime = dataclasses.replace(runtime, tracking_groups=groups)
    execute = EXECUTORS[runtime.executor]
    execute(sweep_plan.todo() if runtime.executor == "local" else sweep_plan.stages, store, runtime,
            **(executor_options or {}))
    results = publish_results(sweep_plan.graphs, store) if is_main_process() else []
    if runtime.trackers and is_main_process():
        track_experiments(sweep_plan, store, runtime)
    return SweepResult(store.root, sweep_plan, results, time.time() - started)


def _warn_cpu_fp16(configs: list[ExperimentConfig], runtime: RuntimeConfig) -> None:
    """fp16 on a CPU runs, but CPUs have no fp16 matmul units: say so before a crawl, not after."""
    from w2slab.distributed import device

    if device().type != "cpu":
        return
    if any(c.train_config(role).precision == "fp16" for c in configs for role in ("weak", "strong")):
        runtime.echo("note: precision fp16 on a CPU: CPUs have no native fp16 matmul (measured 0.4 GFLOP/s against "
                     "~400 in bf16 on a 2-core EPYC), so each step of a transformer can take minutes; use "
                     "--precision bf16 or auto on a CPU, and keep fp16 for GPUs")


def run(config: ExperimentConfig | dict | None = None, runtime: RuntimeConfig | None = None) -> RunResult:
    """One experiment (a sweep of one), plus its folder ``RUN_ROOT/<name>`` with config, metrics, predictions."""
    from w2slab.pipeline.artifacts import StageFolder
    from w2slab.pipeline.folder import experiment_folder, summarize, write_experiment_folder
    from w2slab.pipeline.store import StageStore

    started = time.time()
    config = config if isinstance(config, ExperimentConfig) else ExperimentConfig.from_dict(config or {})
    runtime = _ready(runtime or RuntimeConfig())
    from w2slab.pipeline.sweep import plan

    # one plan: the sources checked, the graph built and the store asked once, for the run and its folder name
    sweep_plan = plan([config], StageStore(runtime.run_root, create=False), runtime.data_root, runtime.recompute,
                      runtime.callbacks)
    graph = sweep_plan.graphs[0]
    experiment_folder(graph, runtime)  # a name that would replace anything but an experiment is refused now
    store = StageStore(runtime.run_root)  # only once the input is accepted: a refused run creates nothing
    cached = [s for s in graph.stages() if s.id in sweep_plan.cached]
    if cached:
        runtime.echo(f"reusing {len(cached)} finished stage(s) from {store.root / 'stages'}")
    if graph.split in cached:
        for note in StageFolder(store.final_dir(graph.split.kind, graph.split.id)).splits()["notes"]:
            runtime.echo(f"note: {note}")
    swept = _carry_out(sweep_plan, store, runtime, [config])
    if not is_main_process():
        return RunResult(None, None, swept)
    summary = summarize(swept.plan.graphs[0], store)
    summary.wall_seconds = round(time.time() - started, 1)
    folder = write_experiment_folder(swept.plan.graphs[0], store, runtime, summary)
    return RunResult(folder, summary, swept)


def track_experiments(sweep_plan, store, runtime: RuntimeConfig) -> None:
    """One tracker run per experiment whose evaluation ran now (a cached one was logged when it ran)."""
    from w2slab.pipeline.artifacts import StageFolder
    from w2slab.tracking import log_experiment

    for graph in sweep_plan.graphs:
        if all(stage.id in sweep_plan.cached for stage in graph.evaluations.values()):
            continue
        results = {label: ExperimentResult.read(store.final_dir(stage.kind, stage.id) / StageFolder.RESULT)
                   for label, stage in graph.evaluations.items()}
        first = next(iter(results.values()))
        log_experiment(runtime.trackers, runtime.run_root, name=graph.config.default_name(),
                       group=graph.config.identity(), config={**graph.config.to_dict(), "resolved": first.resolved},
                       results=results)


def publish_results(graphs: list, store) -> list[ExperimentResult]:
    """Copy each evaluation's result to ``RUN_ROOT/experiments/<id>/result.json`` (what reports read)."""
    from w2slab.pipeline.artifacts import StageFolder

    results = []
    for graph in graphs:
        for evaluation in graph.evaluations.values():
            result = ExperimentResult.read(store.final_dir(evaluation.kind, evaluation.id) / StageFolder.RESULT)
            result.write(store.root / "experiments" / evaluation.id / "result.json")
            results.append(result)
    return results
