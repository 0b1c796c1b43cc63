"""Executors run a deduplicated list of stages in dependency order: in process, or as Ray tasks.

Both go through :meth:`StageStore.run`, so a finished stage is never recomputed whichever executor
(or how many at once) runs it. With Ray each stage is a task declaring its CPU/GPU needs; a stage's
inputs are passed as the object refs of the tasks that produce them, so Ray itself orders the work
and runs independent stages (different seeds, models) in parallel across the cluster. The run root
must then be on a filesystem every node sees.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from w2slab.pipeline.graph import Stage
from w2slab.pipeline.stages import COMPUTE, StageContext
from w2slab.pipeline.store import StageStore


def run_stage(stage: Stage, store: StageStore, ctx: StageContext) -> Path:
    """Compute (or reuse) one stage whose inputs are finished."""
    inputs = {role: store.final_dir(dep.kind, dep.id) for role, dep in stage.inputs.items()}
    for role, folder in inputs.items():
        if not (folder / "DONE").exists():
            raise RuntimeError(f"stage {stage.label} started before its input {role} finished")
    if not store.is_done(stage.kind, stage.id):
        ctx.echo(f"[{stage.kind}] {stage.label}")
    return store.run(stage.kind, stage.id, stage.describe(),
                     lambda work: COMPUTE[stage.kind](stage, inputs, work, ctx))


def run_local(stages: list[Stage], store: StageStore, ctx: StageContext) -> None:
    for stage in stages:
        run_stage(stage, store, ctx)


def stage_resources(stage: Stage, gpus_per_training: float) -> dict:
    if stage.trains or stage.kind in ("weak_label", "features"):
        return {"num_cpus": 1, "num_gpus": gpus_per_training}
    return {"num_cpus": 1, "num_gpus": 0}


def _ray_stage_task(stage: Stage, root: str, ctx: StageContext, *_upstream: str) -> str:
    """The body of one Ray task; ``_upstream`` are the ids of finished inputs (Ray resolved their refs)."""
    from w2slab.progress import quiet_libraries

    quiet_libraries()
    run_stage(stage, StageStore(root), ctx)
    return stage.id


def run_ray(stages: list[Stage], store: StageStore, ctx: StageContext, *, address: str | None = None,
            num_cpus: int | None = None, gpus_per_training: float = 0.0) -> None:
    """Submit every stage as a Ray task chained on its inputs' refs, then wait for all of them.

    ``address=None`` starts a local Ray instance (``num_cpus`` of them); otherwise connects to a
    cluster (``"auto"`` or ``ray://host:port``).
    """
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        env = {"env_vars": {k: v for k, v in os.environ.items() if k.startswith(("W2SLAB_", "HF_"))}}
        if address:
            ray.init(address=address, runtime_env=env, log_to_driver=True)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, runtime_env=env, log_to_driver=True)
    remote = ray.remote(_ray_stage_task)
    refs: dict[str, object] = {}
    task_ctx = dataclasses.replace(ctx, echo=print)  # a driver-side callback cannot travel to the workers
    try:
        for stage in stages:
            upstream = [refs[dep.id] for dep in stage.inputs.values()]
            refs[stage.id] = remote.options(**stage_resources(stage, gpus_per_training), max_retries=0).remote(
                stage, str(store.root), task_ctx, *upstream)
        ray.get(list(refs.values()))
    finally:
        if started_here:
            ray.shutdown()
