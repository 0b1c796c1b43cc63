"""Executors run a deduplicated list of stages in dependency order: in process, or as Ray tasks.

Both go through :meth:`StageStore.get_or_compute`, so a finished stage is never recomputed whichever executor
(or how many at once) runs it. With Ray each stage is a task declaring its CPU/GPU needs; a stage's
inputs are passed as the object refs of the tasks that produce them, so Ray itself orders the work
and runs independent stages (different seeds, models) in parallel across the cluster. The run root
must then be on a filesystem every node sees.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from w2slab.config import RuntimeConfig
from w2slab.errors import W2SError
from w2slab.pipeline.graph import Stage, result_versions
from w2slab.pipeline.kinds import stage_kind
from w2slab.pipeline.store import StageStore
from w2slab.progress import echo


def execute_stage(stage: Stage, store: StageStore, runtime: RuntimeConfig, position: str = "") -> Path:
    """Compute (or reuse) one stage whose inputs are finished; ``position`` (stage k of N, ETA) goes on its line."""
    inputs = {role: store.final_dir(dep.kind, dep.id) for role, dep in stage.inputs.items()}
    for role, folder in inputs.items():
        if not (folder / "DONE").exists():
            raise RuntimeError(f"stage {stage.label} started before its input {role} finished")
    if stage.force or not store.is_done(stage.kind, stage.id):
        runtime.echo(f"[{stage.kind}] {stage.label}" + (" (recompute)" if stage.force else "")
                     + (f"  ({position})" if position else ""))
    return store.get_or_compute(stage.kind, stage.id, stage.describe(),
                                lambda work: compute(stage, inputs, work, runtime), force=stage.force)


def compute(stage: Stage, inputs: dict[str, Path], work: Path, runtime: RuntimeConfig) -> None:
    """The kind's compute function, in the form it takes; a stage that records no ground-truth reading of its own
    passes its inputs' on (a plugin kind need not know the leakage guard's bookkeeping for the counts to stay
    whole)."""
    from w2slab.pipeline.artifacts import StageFolder
    from w2slab.pipeline.compute import FolderContext, record_ground_truth

    stage_kind(stage.kind).run(FolderContext(stage, inputs, work, runtime))
    if not StageFolder(work).file(StageFolder.GROUND_TRUTH).exists():
        record_ground_truth(work, stage, inputs)


def execute_local(stages: list[Stage], store: StageStore, runtime: RuntimeConfig, **_options) -> None:
    """In this process, one stage after the other (``stages`` are in dependency order)."""
    from w2slab.progress import StageClock

    clock = StageClock([stage.kind for stage in stages])
    for index, stage in enumerate(stages):
        began = time.monotonic()
        execute_stage(stage, store, runtime, position=clock.line(index) if len(stages) > 1 else "")
        clock.record(stage.kind, time.monotonic() - began)


def stage_resources(stage: Stage, gpus_per_training: float) -> dict:
    """One CPU each; the kinds that train or run a model (the registry says which) also get the GPUs."""
    kind = stage_kind(stage.kind)
    if kind.trains or kind.uses_device:
        return {"num_cpus": 1, "num_gpus": gpus_per_training}
    return {"num_cpus": 1, "num_gpus": 0}


def _ray_stage_task(stage: Stage, planned: dict, root: str, runtime: RuntimeConfig, *_upstream: str) -> str:
    """The body of one Ray task: ``planned`` is the stage as the driver described it; ``_upstream`` are the ids
    of finished inputs (Ray resolved their refs)."""
    import ray

    from w2slab.progress import configure_logging, quiet_libraries

    configure_logging()  # a worker's messages reach its stdout, which Ray forwards to the driver
    quiet_libraries()
    check_worker(stage, planned, root)
    store = StageStore(root)
    # which node took the stage (a cluster's events show where each stage ran; the node id, not the host name,
    # since several nodes may share a host)
    store.log_event("placed", stage.kind, stage.id, node=ray.get_runtime_context().get_node_id())
    execute_stage(stage, store, runtime)
    return stage.id


def check_worker(stage: Stage, planned: dict, root: str) -> None:
    """Refuse, in one line, a worker that cannot see the run root or would compute another stage than planned.

    Identities are resolved where the sweep is planned (the driver): precision ``auto``, the device, w2slab's
    source and the library versions. A worker that resolves them otherwise (a GPU worker under a CPU driver:
    bf16/cuda where the id says fp32/cpu; another torch) would store its result under an id that does not
    describe it, and a later run would reuse it as if it did.
    """
    import socket

    if not Path(root).is_dir():
        raise W2SError(f"the run root {root} does not exist on node {socket.gethostname()}: with --executor ray it "
                       "must be on storage every node mounts at the same path (NFS, a shared disk)")
    here = stage.identity_here()
    if here != stage.id:
        local = {"config": stage.config(), "versions": result_versions()}
        differ = [key for key in ("config", "versions") if planned.get(key) != local[key]]
        raise W2SError(f"stage {stage.label} ({stage.kind}) would compute another result on node "
                       f"{socket.gethostname()} than the driver planned (its {' and '.join(differ) or 'inputs'} "
                       "resolve differently there: precision, device or library versions); run the driver on a "
                       "machine like the workers (the same packages, the same kind of device)")


def execute_ray(stages: list[Stage], store: StageStore, runtime: RuntimeConfig, *, ray_address: str | None = None,
                ray_cpus: int | None = None, gpus_per_training: float = 0.0) -> None:
    """Submit every stage as a Ray task chained on its inputs' refs, then wait for all of them.

    ``ray_address=None`` starts a local Ray instance (``ray_cpus`` of them); otherwise connects to a
    cluster (``"auto"`` or ``ray://host:port``).
    """
    if ray_address is None:
        check_local_gpus(stages, gpus_per_training)
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        env = {"env_vars": forwarded_environment()}
        if ray_address:
            check_reachable(ray_address)
            ray.init(address=ray_address, runtime_env=env, log_to_driver=True)
        else:
            # address="local": a new instance of our own, even where a cluster already runs on this machine (without
            # it Ray joins that cluster and refuses num_cpus); --ray-address auto joins one on purpose
            ray.init(address="local", num_cpus=ray_cpus, include_dashboard=False, runtime_env=env,
                     log_to_driver=True)
    remote = ray.remote(_ray_stage_task)
    refs: dict[str, object] = {}
    # a driver-side callback cannot travel to the workers, and a relative path means another folder on another node
    task_runtime = dataclasses.replace(runtime.absolute(), echo=echo)
    try:
        for stage in stages:
            upstream = [refs[dep.id] for dep in stage.inputs.values()]
            refs[stage.id] = remote.options(**stage_resources(stage, gpus_per_training), max_retries=0).remote(
                stage, stage.describe(), str(store.root.resolve()), task_runtime, *upstream)
        ray.get(list(refs.values()))
    finally:
        if started_here:
            ray.shutdown()


def local_gpus() -> int:
    """The GPUs a local Ray instance started here gets: those this process sees (``CUDA_VISIBLE_DEVICES``)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_local_gpus(stages: list[Stage], gpus_per_training: float) -> None:
    """Refuse, before any work, ``--gpus-per-training`` above what a local Ray instance has: Ray queues a task whose
    resources no node can offer and waits for one to join, forever."""
    if gpus_per_training <= 0 or not any(stage.trains for stage in stages):
        return
    available = local_gpus()
    if gpus_per_training > available:
        raise W2SError(f"--gpus-per-training {gpus_per_training:g}: the local Ray instance has {available} GPU(s), "
                       "so every training would wait forever; ask for at most "
                       f"{available}{' (or 0 on a CPU machine)' if not available else ''}, or join a cluster with "
                       "--ray-address")


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """A one-line error when nothing listens at a ``host:port`` (or ``ray://host:port``) Ray address: ``ray.init``
    otherwise retries for minutes, logging each attempt. ``auto`` (a cluster started on this machine) is left to
    Ray."""
    import socket

    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise W2SError(f"--ray-address {address!r}: expected HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise W2SError(f"--ray-address {address}: nothing answers there ({exc.strerror or exc}); start the cluster "
                       "(`ray start --head`) or fix the address") from None


#: Prefixes of the settings a Ray job hands its workers: w2slab's, the Hugging Face libraries', and the trackers'
#: (``MLFLOW_TRACKING_URI``, ``WANDB_MODE``, ``WANDB_PROJECT``...: without them a remote worker logged elsewhere or
#: nowhere while the driver's runs looked configured).
FORWARDED_PREFIXES = ("W2SLAB_", "HF_", "MLFLOW_", "WANDB_")


def forwarded_environment() -> dict[str, str]:
    """The ``W2SLAB_*``, ``HF_*``, ``MLFLOW_*`` and ``WANDB_*`` settings a Ray job hands its workers, without
    secrets: a ``runtime_env`` is visible to anyone who can read the cluster's dashboard, so tokens, passwords and
    API keys stay in each node's own environment."""
    secret = ("TOKEN", "SECRET", "PASSWORD", "KEY")
    return {k: v for k, v in os.environ.items()
            if k.startswith(FORWARDED_PREFIXES) and not any(word in k.upper() for word in secret)}


#: Executors by name (``w2s sweep --executor``): ``execute(todo or all stages, store, runtime, **options)``.
EXECUTORS = {"local": execute_local, "ray": execute_ray}
