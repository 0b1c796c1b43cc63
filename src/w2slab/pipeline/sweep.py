"""Sweeps: a YAML/TOML file of datasets x weak x strong x losses x seeds, run as one stage graph.

    datasets: [sciq]
    weak: [minilm-l3, minilm-l6]
    strong: [minilm-l6]
    losses: [xent, logconf]
    seeds: [0, 1]
    n_train: 64            # any ExperimentConfig field applies to every experiment
    n_test: 64
    weak_train: {epochs: 1, batch_size: 8}
    strong_train: {mode: full, epochs: 1}

The sweep expands to experiments, the experiments to their stages, and the union of the stages is
deduplicated by identity: each weak model, ceiling and student is trained exactly once.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from w2slab.config import ExperimentConfig, TrainConfig
from w2slab.errors import W2SError
from w2slab.pipeline.executors import run_local, run_ray
from w2slab.pipeline.graph import ExperimentGraph, Stage, build_experiment, unique_stages
from w2slab.pipeline.stages import StageContext
from w2slab.pipeline.store import StageStore, distributed_state

LIST_KEYS = {"datasets": "dataset", "weak": "weak", "strong": "strong", "seeds": "seed"}


def load_sweep_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise W2SError(f"sweep file {str(path)!r} not found")
    text = path.read_text()
    if path.suffix == ".toml":
        import tomllib

        return tomllib.loads(text)
    import yaml

    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise W2SError(f"{path}: a sweep file is a mapping with datasets, weak, strong, losses, seeds")
    return data


def expand(spec: dict) -> list[ExperimentConfig]:
    """One ExperimentConfig per (dataset, weak, strong, seed); losses share the experiment's graph."""
    spec = dict(spec)
    missing = [key for key in ("datasets", "weak", "strong") if not spec.get(key)]
    if missing:
        raise W2SError(f"sweep is missing {', '.join(missing)}; list at least one of each")
    lists = {key: spec.pop(key) if isinstance(spec.get(key), list) else [spec.pop(key)]
             for key in LIST_KEYS if key in spec}
    lists.setdefault("seeds", [0])
    losses = spec.pop("losses", ["xent"])
    fields = {f.name for f in dataclasses.fields(ExperimentConfig)}
    unknown = set(spec) - fields - {"run_root", "executor"}
    if unknown:
        raise W2SError(f"unknown sweep keys {sorted(unknown)}; allowed: {sorted(fields | set(LIST_KEYS))}")
    base = {k: v for k, v in spec.items() if k in fields}
    for role in ("weak_train", "strong_train"):
        if role in base:
            default = dataclasses.asdict(getattr(ExperimentConfig(), role))
            base[role] = TrainConfig(**{**default, **base[role]})
    configs = []
    for dataset, weak, strong, seed in itertools.product(lists["datasets"], lists["weak"], lists["strong"],
                                                         lists["seeds"]):
        configs.append(ExperimentConfig(**base, dataset=dataset, weak=weak, strong=strong, seed=int(seed),
                                        losses=list(losses)))
    return configs


@dataclass
class SweepPlan:
    graphs: list[ExperimentGraph]
    stages: list[Stage]
    cached: set[str]

    def counts(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for stage in self.stages:
            row = table.setdefault(stage.kind, {"total": 0, "new": 0, "cached": 0})
            row["total"] += 1
            row["cached" if stage.id in self.cached else "new"] += 1
        return table

    def summary(self) -> str:
        lines = [f"{len(self.graphs)} experiment(s) x {len(self.graphs[0].students) if self.graphs else 0} loss(es)"
                 f" -> {len(self.stages)} distinct stages"]
        for kind, row in self.counts().items():
            lines.append(f"  {kind:11s} {row['total']:4d}  ({row['new']} new, {row['cached']} cached)")
        return "\n".join(lines)


def plan(configs: list[ExperimentConfig], store: StageStore) -> SweepPlan:
    graphs = [build_experiment(cfg) for cfg in configs]
    stages = unique_stages(graphs)
    return SweepPlan(graphs, stages, {s.id for s in stages if store.is_done(s.kind, s.id)})


def publish_results(graphs: list[ExperimentGraph], store: StageStore) -> list[dict]:
    """Copy each evaluation's record to RUN_ROOT/experiments/<id>/result.json (what reports read)."""
    records = []
    for graph in graphs:
        for evaluation in graph.evaluations.values():
            source = store.final_dir(evaluation.kind, evaluation.id) / "result.json"
            record = json.loads(source.read_text())
            folder = store.root / "experiments" / evaluation.id
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f"result.json.tmp{os.getpid()}"
            tmp.write_text(json.dumps(record, indent=2))
            os.replace(tmp, folder / "result.json")
            (folder / "config.json").write_text(json.dumps(graph.config.to_dict(), indent=2))
            records.append(record)
    return records


def run_sweep(configs: list[ExperimentConfig], run_root: str | Path, *, executor: str = "local",
              ray_address: str | None = None, ray_cpus: int | None = None, gpus_per_training: float = 0.0,
              ctx: StageContext | None = None, echo=print) -> tuple[SweepPlan, list[dict]]:
    store = StageStore(run_root)
    ctx = ctx or StageContext(echo=echo)
    if ctx.trackers and not ctx.tracking_dir:
        ctx = dataclasses.replace(ctx, tracking_dir=str(store.root / "tracking"))
    sweep_plan = plan(configs, store)
    echo(sweep_plan.summary())
    started = time.time()
    todo = [s for s in sweep_plan.stages if s.id not in sweep_plan.cached]
    if executor == "local":
        run_local(todo, store, ctx)
    elif executor == "ray":
        run_ray(sweep_plan.stages, store, ctx, address=ray_address, num_cpus=ray_cpus,
                gpus_per_training=gpus_per_training)
    else:
        raise W2SError(f"unknown executor {executor!r}; choose local or ray")
    distributed = distributed_state()
    if distributed and not distributed.is_main_process:
        return sweep_plan, []  # under accelerate launch the main rank writes the results
    records = publish_results(sweep_plan.graphs, store)
    echo(f"sweep finished in {time.time() - started:.0f} s: {len(records)} experiment results under "
         f"{store.root / 'experiments'}")
    return sweep_plan, records
