"""Sweeps: a YAML/TOML file of datasets x weak x strong x losses x seeds, run as one stage graph.

    datasets: [sciq]
    weak: [minilm-l3, minilm-l6]
    strong: [minilm-l6]
    losses: [xent, {name: logconf, aux_weight: 0.3}]
    seeds: [0, 1]
    pairs: all             # every weak x strong (default); ladder: only weak models smaller than the strong one
    n_train: 64            # any ExperimentConfig field applies to every experiment ...
    n_test: 64
    data_seed: [0, 1]      # ... and a list of values is a grid axis, for any field
    weak_train: {epochs: 1, batch_size: 8}
    strong.lr: [1e-5, 3e-5]          # a role's field: strong.FIELD, as the flag --strong.FIELD (a grid here)
    methods: [none, {name: conf_filter, drop: [0.2, 0.4]}]   # a parameter list: one student per value
    variants:              # settings that change together (zipped), crossed with the rest
      - {strong.epochs: 1, strong.batch_size: 32}
      - {strong.epochs: 2, strong.batch_size: 16}

Every field of :class:`~w2slab.config.ExperimentConfig` and of a role's training can be swept; a sweep file and
``w2s run`` share one set of defaults (``losses`` included). Numbers read as numbers in any spelling (``1e-5``;
:mod:`w2slab.configfile`). The file is parsed and *every* experiment is built and validated (types, ranges,
unknown keys, loss/dataset/model names) before the first stage runs. The experiments expand to their stages, and
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
from w2slab.configfile import read_config_file
from w2slab.errors import ConfigError
from w2slab.pipeline.graph import ExperimentGraph, Stage, build_experiment, models_to_load, unique_stages
from w2slab.pipeline.kinds import stage_kinds
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
    """The raw mapping of a YAML or TOML sweep file (a file that cannot be read is one line naming it)."""
    return read_config_file(path, label=f"sweep file {path}", holds="datasets, weak, strong, losses, seeds",
                            default="YAML")


def parse_sweep(spec: dict, source: str = "sweep") -> SweepFile:
    """Expand a sweep mapping into validated ExperimentConfigs; any problem is one line naming the key."""
    try:
        return _parse(dict(spec))
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _parse(spec: dict) -> SweepFile:
    runtime = {key: spec.pop(key) for key in RUNTIME_KEYS if key in spec}
    for key, value in runtime.items():
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {type(value).__name__} {value!r}")
    pairs = spec.pop("pairs", "all")
    if pairs not in PAIRINGS:
        raise ConfigError(f"pairs: must be one of {', '.join(PAIRINGS)}, got {pairs!r}")
    variants = spec.pop("variants", None)
    fields = normalise_keys(spec)
    given = setting_paths(fields)  # what the file sets itself, before the defaults below
    for plural, singular in LIST_KEYS.items():
        if fields.get(singular) == []:
            raise ConfigError(f"{plural}: empty; list at least one")
        if singular not in fields:
            if singular != "seed":
                raise ConfigError(f"{plural}: missing; list at least one")
            fields["seed"] = 0
    axes = [axis(key, value) for key, value in fields.items()]
    if variants is not None:
        if not (isinstance(variants, list) and variants and all(isinstance(v, dict) for v in variants)):
            raise ConfigError("variants: expected a list of mappings, each the settings that change together, "
                              "e.g. [{strong.lr: 1e-5, strong.epochs: 1}, {strong.lr: 3e-5, strong.epochs: 2}]")
        normalised = [normalise_keys(dict(v), "variants") for v in variants]
        check_variants_alone(given, normalised)
        axes.append(normalised)
    configs = []
    for combination in itertools.product(*axes):
        data = merge_all(combination)
        if pairs == "ladder" and not _smaller(data["weak"], data["strong"]):
            continue
        config = ExperimentConfig.from_dict(data)
        if config not in configs:  # two spellings of one setting (a grid value equal to the default) run once
            configs.append(config)
    if not configs:
        raise ConfigError("pairs: ladder leaves no (weak, strong) pair with a smaller weak model; use pairs: all")
    return SweepFile(tuple(configs), runtime)


#: ``weak.lr`` / ``strong.epochs``: a role's training field, the spelling the CLI's flags share.
ROLE_FIELDS = {"weak": "weak_train", "strong": "strong_train"}


def normalise_keys(spec: dict, where: str = "") -> dict[str, Any]:
    """Plural list keys to their field (``datasets`` -> ``dataset``), dotted keys to nested mappings
    (``strong.lr`` and ``strong_train.lr`` -> ``strong_train: {lr: ...}``); unknown keys fail with a suggestion."""
    fields = init_fields(ExperimentConfig)
    sweep_level = ["variants", "pairs", *RUNTIME_KEYS]  # a sweep file's top level takes them (popped before here)
    allowed = list(dict.fromkeys([*LIST_KEYS, *fields, *sweep_level]))
    out: dict[str, Any] = {}
    spelled: dict[str, str] = {}  # each field's first spelling, for "given twice" (weak.lr, then weak_train)
    for key, value in spec.items():
        key = str(key)
        head, dot, tail = key.partition(".")
        if dot and (head in ROLE_FIELDS or head in ROLE_FIELDS.values()):
            role_field = ROLE_FIELDS.get(head, head)
            spelled.setdefault(role_field, key)
            block = out.setdefault(role_field, {})
            if not isinstance(block, dict):
                raise ConfigError(f"{key}: {role_field} is also given whole; set it one way")
            if tail in block:
                raise ConfigError(f"{key}: given twice (as {key} and {role_field}.{tail}); keep one")
            block[tail] = value
            continue
        field_name = LIST_KEYS.get(key, key)
        if key in sweep_level:
            place = "inside a variant" if where else "in the config of one experiment"
            raise ConfigError(f"{where + ': ' if where else ''}{key}: a key of a sweep file's top level, not "
                              f"{place}; {'move it out of variants' if where else 'run the file with w2s sweep'}")
        if field_name not in fields:
            takes = [k for k in allowed if not (where and k in sweep_level)]
            close = difflib.get_close_matches(key, takes, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            prefix = f"{where}: " if where else ""
            raise ConfigError(f"{prefix}{key}: unknown key{hint}; {'a variant' if where else 'a sweep'} takes "
                              f"{', '.join(takes)}, and weak.FIELD / strong.FIELD for the roles' training")
        if field_name in out:
            if not (isinstance(out[field_name], dict) and isinstance(value, dict)):
                raise ConfigError(f"{key}: given twice (as {spelled.get(field_name, field_name)} and {key}); "
                                  "keep one")
            both = sorted(set(out[field_name]) & set(value))
            if both:
                role = next(r for r, f in ROLE_FIELDS.items() if f == field_name) if field_name in \
                    ROLE_FIELDS.values() else field_name
                raise ConfigError(f"{key}: {', '.join(both)} given twice (in {key} and as {role}.{both[0]}); keep one")
        out[field_name] = merge(out[field_name], value) if field_name in out else value
        spelled.setdefault(field_name, key)
    return out


def setting_paths(fields: dict[str, Any]) -> set[str]:
    """The settings a normalised sweep mapping gives, as the keys a user writes (``n_train``, ``strong.lr``)."""
    role_of = {f: r for r, f in ROLE_FIELDS.items()}
    paths = set()
    for key, value in fields.items():
        blocks = value if key in role_of and isinstance(value, list) else [value]
        if key in role_of and all(isinstance(block, dict) for block in blocks):
            paths |= {f"{role_of[key]}.{sub}" for block in blocks for sub in block}
        else:
            paths.add(key)
    return paths


def check_variants_alone(given: set[str], variants: list[dict[str, Any]]) -> None:
    """Refuse a setting ``given`` outside ``variants`` (a value or a grid axis) and in them too: merged, the variants'
    value silently replaced the other (a grid of two learning rates ran only the variants' one)."""
    both = sorted(given & set().union(*(setting_paths(v) for v in variants)))
    if both:
        raise ConfigError(f"variants: {', '.join(both)} also given outside variants (as a value or a grid axis); "
                          "set each key in one place: in every variant, or outside them")


def merge(a: dict, b: dict) -> dict:
    """``b`` over ``a``, mappings merged key by key (a role's training settings from several axes)."""
    merged = dict(a)
    for key, value in b.items():
        merged[key] = merge(merged[key], value) if isinstance(merged.get(key), dict) and isinstance(value, dict) \
            else value
    return merged


def is_grid(value: Any, annotation: Any) -> bool:
    """Whether a sweep value is a list of settings to sweep rather than one setting: a list where the field takes
    no list, or a list of lists where it takes one (``ensemble.weights: [[1, 1], [2, 1]]``)."""
    if not isinstance(value, list):
        return False
    if not takes_a_list(annotation):
        return True
    return bool(value) and all(isinstance(item, list) for item in value)


def takes_a_list(annotation: Any) -> bool:
    import types
    import typing

    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(takes_a_list(a) for a in typing.get_args(annotation))
    return origin in (list, tuple)


def axis(key: str, value: Any) -> list[dict[str, Any]]:
    """The settings one key of a sweep takes, each a partial ExperimentConfig mapping; several make a grid axis.

    A list where the field takes one value is a grid (``data_seed: [0, 1]``, ``strong.lr: [1e-5, 3e-5]``); a list
    of mappings for a role's training is a list of variants whose fields change together; a loss or method
    parameter given as a list expands into one student per value within each experiment (they share its weak
    model and ceiling).
    """
    from w2slab.config import TrainConfig
    from w2slab.typed import _hints

    if key in ROLE_FIELDS.values():
        if isinstance(value, list):
            if not value or not all(isinstance(v, dict) for v in value):
                raise ConfigError(f"{key}: expected a mapping of training settings, or a list of them (variants)")
            return [{key: v} for v in value]
        if not isinstance(value, dict):
            return [{key: value}]  # refused, naming the key, by ExperimentConfig.from_dict
        hints = _hints(TrainConfig)
        parts = [[{sub: v} for v in _values(f"{key}.{sub}", v)] if sub in hints and is_grid(v, hints[sub])
                 else [{sub: v}] for sub, v in value.items()]
        return [{key: merge_all(combo)} for combo in itertools.product(*parts)]
    if key in ("losses", "methods"):
        items = value if isinstance(value, list) else [value]
        return [{key: [expanded for item in items for expanded in expand_component(key, item)]}]
    annotation = _hints(ExperimentConfig)[key]
    if is_grid(value, annotation):
        return [{key: v} for v in _values(key, value)]
    return [{key: value}]


def _values(key: str, value: list) -> list:
    if not value:
        raise ConfigError(f"{key}: empty list; list at least one value")
    return value


def merge_all(parts: tuple[dict, ...]) -> dict:
    """The parts merged left to right (:func:`merge`): one grid point's settings."""
    merged: dict = {}
    for part in parts:
        merged = merge(merged, part)
    return merged


def expand_component(key: str, item: Any) -> list[Any]:
    """A loss or method with list-valued parameters as one component per combination of values."""
    from w2slab.losses import LOSSES
    from w2slab.methods import METHODS
    from w2slab.typed import _hints

    registry = LOSSES if key == "losses" else METHODS
    if not isinstance(item, dict) or item.get("name") not in registry:
        return [item]  # a name, or a mistake that Component.from_value names
    hints = _hints(registry.get(item["name"]))
    parts = [[{param: v} for v in _values(f"{key}[{item['name']}].{param}", v)]
             if param != "name" and param in hints and is_grid(v, hints[param]) else [{param: v}]
             for param, v in item.items()]
    return [merge_all(combo) for combo in itertools.product(*parts)]


def _smaller(weak: str, strong: str) -> bool:
    """Whether ``weak`` has fewer parameters than ``strong`` (registry counts; unknown counts: kept)."""
    from w2slab.models.sources import parameter_count

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
        for name in dict.fromkeys(name for _, name in models_to_load(c)) if c.modality == "text" else ():
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

    def experiments(self) -> str:
        """One line per experiment: its folder name and its students (what a dry run lists)."""
        return "\n".join(f"  {graph.config.default_name()}: {', '.join(graph.students)}" for graph in self.graphs)

    def todo(self) -> list[Stage]:
        return [s for s in self.stages if s.id not in self.cached]


def _build(cfg: ExperimentConfig, data_root: str | None, callbacks: tuple) -> ExperimentGraph:
    """:func:`build_experiment`, a method parameter it refuses named with its file, its method and how to set it
    (the method's own check knows only the parameter: "rates: needs one rate per class")."""
    try:
        return build_experiment(cfg, data_root, callbacks)
    except ConfigError as exc:
        param = str(exc).split(":", 1)[0]
        method = next((m for m in cfg.methods if param in m.params() and param != "name"), None)
        if method is None:
            raise
        raise ConfigError(f"{Path(cfg.dataset).name}: method {method.label}: {exc}; set it with --method-param "
                          f"{method.name}.{param}=VALUE (in a sweep: methods: [{{name: {method.name}, {param}: "
                          "VALUE}])") from None


def plan(configs: list[ExperimentConfig] | tuple[ExperimentConfig, ...], store: StageStore,
         data_root: str | None = None, recompute: tuple[str, ...] = (), callbacks: tuple = ()) -> SweepPlan:
    """The deduplicated stages of the experiments; ``recompute`` kinds (and all that depend on them) run again."""
    unknown = [kind for kind in recompute if kind not in stage_kinds()]
    if unknown:
        raise ConfigError(f"recompute: unknown stage kind {', '.join(unknown)}; choose from {', '.join(stage_kinds())}")
    check_sources(configs)
    graphs = [_build(cfg, data_root, callbacks) for cfg in configs]
    stages = unique_stages(graphs)
    for stage in stages:  # dependency order: a stage's inputs are marked before it
        stage.force = stage.kind in recompute or any(dep.force for dep in stage.inputs.values())
    cached = {s.id for s in stages if store.is_done(s.kind, s.id) and not s.force}
    for stage in stages:  # a finished stage is reused only while its outputs match what was published
        if stage.id in cached:
            store.verify(stage.kind, stage.id)
    return SweepPlan(graphs, stages, cached)
