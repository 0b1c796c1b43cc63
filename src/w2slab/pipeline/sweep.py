"""Sweeps: a YAML/TOML file of datasets x weak x strong x losses x seeds, run as one stage graph.

    datasets: [sciq]
    weak: [minilm-l3, minilm-l6]
    strong: [minilm-l6]
    losses: [xent, {name: logconf, aux_weight: 0.3}]
    seeds: [0, 1]
    pairs: all             # every weak x strong (default); ladder: only weak models smaller than the strong one
    n_train: 64            # any ExperimentConfig field applies to every experiment
    n_test: 64
    weak_train: {epochs: 1, batch_size: 8}
    strong_train: {mode: full, epochs: 1}

The file is parsed and *every* experiment is built and validated (types, ranges, unknown keys,
loss/dataset/model names) before the first stage runs. The experiments expand to their stages, and
the union of the stages is deduplicated by identity: each weak model, ceiling and student is
trained exactly once.
"""

from __future__ import annotations

import difflib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from w2slab.config import ExperimentConfig
from w2slab.errors import ConfigError, W2SError
from w2slab.pipeline.graph import STAGE_KINDS, ExperimentGraph, Stage, build_experiment, unique_stages
from w2slab.pipeline.store import StageStore
from w2slab.typed import init_fields

#: List keys of a sweep file and the ExperimentConfig field each one varies.
LIST_KEYS = {"datasets": "dataset", "weak": "weak", "strong": "strong", "seeds": "seed"}
#: Keys that say where the sweep lives and how it runs (never part of any identity).
RUNTIME_KEYS = ("run_root", "executor", "data_root", "model_cache")
#: ``pairs``: which (weak, strong) combinations of the two lists run.
PAIRINGS = ("all", "ladder")


@dataclass(frozen=True)
class SweepFile:
    """A parsed and fully validated sweep: its experiments and its runtime settings."""

    configs: tuple[ExperimentConfig, ...]
    runtime: dict[str, Any] = field(default_factory=dict)  # the RUNTIME_KEYS it sets


def load_sweep_file(path: str | Path) -> dict:
    """The raw mapping of a YAML or TOML sweep file (syntax errors are one line naming the file)."""
    path = Path(path)
    if path.is_dir():
        raise W2SError(f"sweep file {str(path)!r} is a directory; pass the path of a .yaml or .toml file")
    if not path.is_file():
        raise W2SError(f"sweep file {str(path)!r} not found; pass the path of a .yaml or .toml file")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except UnicodeDecodeError as exc:
        raise W2SError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    except Exception as exc:  # noqa: BLE001 - yaml and tomllib raise their own error types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise W2SError(f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'YAML'} ({first})") from None
    if not isinstance(data, dict):
        raise W2SError(f"{path}: a sweep file is a mapping with datasets, weak, strong, losses, seeds")
    return data


def parse_sweep(spec: dict, source: str = "sweep") -> SweepFile:
    """Expand a sweep mapping into validated ExperimentConfigs; any problem is one line naming the key."""
    try:
        return _parse(dict(spec))
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _parse(spec: dict) -> SweepFile:
    fields = set(init_fields(ExperimentConfig))
    allowed = [*LIST_KEYS, "losses", "pairs", *RUNTIME_KEYS, *sorted(fields - set(LIST_KEYS.values()) - {"losses"})]
    for key in spec:
        singular = LIST_KEYS.get(key, key)
        if key not in allowed and singular not in LIST_KEYS.values():
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{key}: unknown key{hint}; a sweep takes {', '.join(allowed)}")
    runtime = {key: spec.pop(key) for key in RUNTIME_KEYS if key in spec}
    for key, value in runtime.items():
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {type(value).__name__} {value!r}")
    lists: dict[str, list] = {}
    for plural, singular in LIST_KEYS.items():
        value = spec.pop(plural) if plural in spec else spec.pop(singular, None)
        if value is None:
            if singular != "seed":
                raise ConfigError(f"{plural}: missing; list at least one")
            value = [0]
        lists[singular] = value if isinstance(value, list) else [value]
        if not lists[singular]:
            raise ConfigError(f"{plural}: empty; list at least one")
    losses = spec.pop("losses", ["xent"])
    pairs = spec.pop("pairs", "all")
    if pairs not in PAIRINGS:
        raise ConfigError(f"pairs: must be one of {', '.join(PAIRINGS)}, got {pairs!r}")
    configs = []
    for dataset, weak, strong, seed in itertools.product(*(lists[k] for k in ("dataset", "weak", "strong", "seed"))):
        if pairs == "ladder" and not _smaller(weak, strong):
            continue
        configs.append(ExperimentConfig.from_dict(
            {**spec, "dataset": dataset, "weak": weak, "strong": strong, "seed": seed, "losses": losses}))
    return SweepFile(tuple(configs), runtime)


def _smaller(weak: str, strong: str) -> bool:
    """Whether ``weak`` has fewer parameters than ``strong`` (registry counts; unknown counts: kept)."""
    from w2slab.models.registry import parameter_count

    if weak == strong:
        return False
    a, b = parameter_count(weak), parameter_count(strong)
    return a is None or b is None or a < b


def check_sources(configs: list[ExperimentConfig] | tuple[ExperimentConfig, ...]) -> None:
    """Before any stage runs: every dataset and model name resolvable (no download, no model load), and a
    user's data file read, validated row by row and split as the split stage will."""
    from w2slab.data import check_dataset_name, load_task, make_splits
    from w2slab.data.images import check_image_files
    from w2slab.data.loading import image_folder_layout
    from w2slab.models.loading import check_model_name, model_positions

    for name in sorted({c.dataset for c in configs}):
        check_dataset_name(name)
    for name in sorted({m for c in configs for m in (c.weak, c.strong, *(x for method in c.methods
                                                                         for x in method.extra_models()))}):
        check_model_name(name)
    defaults = ExperimentConfig()
    for c in configs:
        for name in (c.weak, c.strong) if c.modality == "text" else ():
            positions = model_positions(name)
            if positions is not None and c.max_ctx > positions:
                raise ConfigError(f"max_ctx: {c.max_ctx} tokens is more than {name} has positions ({positions}); "
                                  f"set --max-ctx {positions} or less")
        if c.reads_a_file() or image_folder_layout(Path(c.dataset)) is not None:
            # read and split here: a bad row, an undecodable image or a too small file stops us before any stage
            task = load_task(c.dataset, seed=c.data_seed, text_field=c.text_field, label_field=c.label_field,
                             label_map=c.label_map)
            splits = make_splits(task, n_train=c.n_train, n_test=c.n_test, seed=c.seed, data_seed=c.data_seed)
            check_image_files([*splits.weak_train, *splits.transfer, *splits.test])
        elif (c.text_field, c.label_field, c.label_map) != (defaults.text_field, defaults.label_field,
                                                            defaults.label_map):
            raise ConfigError(f"text_field/label_field/label_map: {c.dataset!r} is a registered dataset with its own "
                              "formatter; these options are for your own .jsonl/.csv files")


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
        students = sum(len(graph.students) for graph in self.graphs)
        lines = [f"{len(self.graphs)} experiment(s), {students} student(s) (loss x method) -> {len(self.stages)} "
                 "distinct stages"]
        for kind, row in self.counts().items():
            lines.append(f"  {kind:11s} {row['total']:4d}  ({row['new']} new, {row['cached']} cached)")
        return "\n".join(lines)

    def todo(self) -> list[Stage]:
        return [s for s in self.stages if s.id not in self.cached]


def plan(configs: list[ExperimentConfig] | tuple[ExperimentConfig, ...], store: StageStore,
         data_root: str | None = None, recompute: tuple[str, ...] = (), callbacks: tuple = ()) -> SweepPlan:
    """The deduplicated stages of the experiments; ``recompute`` kinds (and all that depend on them) run again."""
    unknown = [kind for kind in recompute if kind not in STAGE_KINDS]
    if unknown:
        raise ConfigError(f"recompute: unknown stage kind {', '.join(unknown)}; choose from {', '.join(STAGE_KINDS)}")
    check_sources(configs)
    graphs = [build_experiment(cfg, data_root, callbacks) for cfg in configs]
    stages = unique_stages(graphs)
    for stage in stages:  # dependency order: a stage's inputs are marked before it
        stage.force = stage.kind in recompute or any(dep.force for dep in stage.inputs.values())
    return SweepPlan(graphs, stages, {s.id for s in stages if store.is_done(s.kind, s.id) and not s.force})
