"""The ``w2s`` command: parse arguments, call the library, print results. No logic of its own.

    w2s run [--dataset sciq --weak minilm-l6 --strong mpnet-base --loss xent,logconf ...]
    w2s sweep sweep.yaml [--executor local|ray]
    w2s status RUN_ROOT
    w2s report RUN_ROOT|EXPERIMENT_FOLDER
    w2s compare A B
    w2s models [install NAME ...]
    w2s datasets

The reference code's flags (``--ds_name --weak_model_size --strong_model_size --n_docs
--n_test_docs --loss --batch_size --max_ctx --seed``) are accepted as aliases.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import sys
import warnings
from pathlib import Path

from w2slab.config import (
    DATA_ORIGINS,
    PRECISIONS,
    TRACKERS,
    TRAIN_MODES,
    TRUNCATIONS,
    ExperimentConfig,
    RuntimeConfig,
    check_experiment_name,
)
from w2slab.errors import ConfigError, DataError, W2SError
from w2slab.progress import configure_logging, quiet_libraries

DEFAULTS = ExperimentConfig()
#: Keys of config.json files written before the runtime settings left the experiment config.
_LEGACY_RUNTIME_KEYS = ("data_root", "model_cache", "out_dir", "name")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    from w2slab.losses import LOSSES

    p.add_argument("--config", help="JSON, YAML or TOML file of ExperimentConfig fields (e.g. a run's config.json)")
    p.add_argument("--dataset", "--ds_name", dest="dataset",
                   help=f"registered dataset or a .jsonl/.csv file (default {DEFAULTS.dataset})")
    p.add_argument("--weak", "--weak_model_size", dest="weak", help=f"default {DEFAULTS.weak}")
    p.add_argument("--strong", "--strong_model_size", dest="strong", help=f"default {DEFAULTS.strong}")
    p.add_argument("--loss", "--losses", dest="loss", help=f"comma-separated, from {', '.join(LOSSES.names())} "
                   f"(default {','.join(loss.label for loss in DEFAULTS.losses)}; `w2s losses` lists parameters)")
    p.add_argument("--loss-param", action="append", default=[], metavar="LOSS.PARAM=VALUE",
                   help="a loss parameter, e.g. logconf.aux_weight=0.3 (repeatable)")
    p.add_argument("--aux-weight", type=float, help="shorthand for --loss-param logconf.aux_weight=VALUE")
    p.add_argument("--method", "--methods", dest="method",
                   help="comma-separated W2S methods; one student per (method, loss); none is the paper's recipe "
                        "(default none; `w2s methods` lists them)")
    p.add_argument("--method-param", action="append", default=[], metavar="METHOD.PARAM=VALUE",
                   help="a method parameter, e.g. conf_filter.drop=0.3 (repeatable)")
    p.add_argument("--n-train", "--n_docs", dest="n_train", type=int,
                   help=f"labelled docs, half weak-train, half transfer (default {DEFAULTS.n_train})")
    p.add_argument("--n-test", "--n_test_docs", dest="n_test", type=int, help=f"default {DEFAULTS.n_test}")
    p.add_argument("--n-val", dest="n_val", type=int, help="validation rows beside the pool, for tuning choices "
                   f"(default {DEFAULTS.n_val}; 0: none)")
    p.add_argument("--seed", type=int, help=f"weak/transfer partition of the pool and training randomness "
                   f"(default {DEFAULTS.seed})")
    p.add_argument("--data-seed", type=int, help=f"which rows form the pool and the test set (default "
                   f"{DEFAULTS.data_seed})")
    p.add_argument("--max-ctx", "--max_ctx", dest="max_ctx", type=int, help=f"default {DEFAULTS.max_ctx}")
    p.add_argument("--image-size", dest="image_size", type=int,
                   help="images: the side they are resized to (default: each model's own, e.g. 224)")
    p.add_argument("--truncation", choices=TRUNCATIONS,
                   help="texts longer than max-ctx: keep the end (left), the start (right) or drop them")
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int,
                   help="both models (--weak.batch_size / --strong.batch_size set one)")
    p.add_argument("--epochs", type=float, help="both models (--weak.epochs / --strong.epochs set one)")
    p.add_argument("--precision", choices=PRECISIONS, help="both models (auto: bf16/fp16 on GPU; bf16 on a "
                   "CPU with native bf16, else fp32)")
    p.add_argument("--lora", action="store_true", help="both models: shorthand for --weak.mode lora --strong.mode lora")
    p.add_argument("--keep-weights", action="store_true", help="keep the trained weights of the ceiling and every "
                   "student (adapters + head under LoRA) in RUN_ROOT/<experiment>/weights/: --strong.keep_weights true")
    for role in ("weak", "strong"):  # the earlier spellings, kept working but out of the help: --weak.mode etc.
        p.add_argument(f"--{role}-mode", choices=TRAIN_MODES, help=argparse.SUPPRESS)
        p.add_argument(f"--{role}-lr", type=float, help=argparse.SUPPRESS)
        p.add_argument(f"--{role}-head-lr", type=float, help=argparse.SUPPRESS)
        p.add_argument(f"--{role}-head-init", choices=("zero", "probe"), help=argparse.SUPPRESS)
    _add_role_args(p)
    p.add_argument("--text-field", help="your file's text column (default text)")
    p.add_argument("--label-field", help="your file's label column (default label)")
    p.add_argument("--label-map", metavar="WORD=ID,...", help="word labels to class ids, e.g. positive=1,negative=0")
    p.add_argument("--data-source", choices=DATA_ORIGINS)
    p.add_argument("--data-root", help="local data root (default $W2SLAB_DATA_ROOT)")
    p.add_argument("--model-cache", help="where packaged models are converted (default ~/.cache/w2slab/models)")
    p.add_argument("--run-root", "--out-dir", dest="run_root", default="runs",
                   help="where stages and experiment folders live (default runs)")
    p.add_argument("--name", help="experiment folder name (default: derived from the config)")
    p.add_argument("--dry-run", action="store_true", help="print the plan (stages new and cached, students) and "
                   "compute nothing")
    _add_runtime_args(p)


def _add_role_args(p: argparse.ArgumentParser) -> None:
    """``--weak.FIELD`` / ``--strong.FIELD`` for every training field, generated from :class:`TrainConfig`: the
    same names as a sweep file's ``weak.FIELD`` keys (values read as YAML: 1e-5, true, null)."""
    from w2slab.config import TRAIN_FIELD_HELP, TrainConfig, role_default
    from w2slab.typed import init_fields

    for role in ("weak", "strong"):
        group = p.add_argument_group(f"{role} model training (--{role}.FIELD; sweep key {role}.FIELD)")
        default = role_default("text", role)
        for name in init_fields(TrainConfig):
            shown = getattr(default, name)
            # absent unless given (SUPPRESS): a given null is a value ("--strong.lr null": the family default), and an
            # empty value reaches the config's check instead of passing for "not given"
            group.add_argument(f"--{role}.{name}", dest=f"{role}__{name}", type=_parse_value, metavar="VALUE",
                               default=argparse.SUPPRESS,
                               help=f"{TRAIN_FIELD_HELP.get(name, '')} (text default {shown})")


def _add_runtime_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint-every", type=int, default=50, help="training steps between resumable checkpoints")
    p.add_argument("--checkpoint-seconds", type=float, default=120.0,
                   help="write a checkpoint only once this long has passed since the last one (0: every interval)")
    from w2slab.pipeline.kinds import stage_kinds

    p.add_argument("--recompute", default="", metavar="KIND[,KIND]",
                   help="compute these stage kinds again even if finished, and everything after them "
                        f"({', '.join(stage_kinds())})")
    p.add_argument("--log", default="", help=f"trackers besides the JSONL logs: {','.join(TRACKERS)}; one run per "
                   "experiment grouped by config id, each training a job in it; offline under RUN_ROOT/tracking unless "
                   "WANDB_MODE / MLFLOW_TRACKING_URI say otherwise")


def _read_config_file(path: str) -> dict:
    """An ExperimentConfig's fields from a JSON file (a run's config.json), or a YAML or TOML one, which may use the
    sweep file's spellings (``strong.lr: 1e-5``) for one experiment, no grids."""
    from w2slab.configfile import file_format, read_config_file
    from w2slab.pipeline.sweep import normalise_keys

    label = f"--config {path}"
    data = read_config_file(path, label=label, holds="ExperimentConfig fields (e.g. a config.json of an earlier run)")
    if file_format(path) != "JSON":
        try:
            data = normalise_keys(data)
        except ConfigError as exc:
            raise ConfigError(f"{label}: {exc}") from None
    data.pop("resolved", None)
    for key in _LEGACY_RUNTIME_KEYS:
        data.pop(key, None)
    if "aux_weight" in data:  # before losses carried their own parameters
        aux = data.pop("aux_weight")
        losses = data.get("losses", [])
        if isinstance(losses, str | dict):  # one loss on its own, as everywhere else (not a string's letters)
            losses = [losses]
        if isinstance(losses, list):  # anything else is refused in one line by _merge_components
            data["losses"] = [{"name": "logconf", "aux_weight": aux} if loss == "logconf" else loss
                              for loss in losses]
    return data


def _parse_label_map(text: str) -> dict[str, int]:
    mapping: dict[str, int] = {}
    for part in text.split(","):
        word, sep, value = part.partition("=")
        if not sep or not word.strip() or not (value.strip().isascii() and value.strip().isdigit()):
            raise ConfigError(f"--label-map {text!r}: expected WORD=ID pairs (class ids 0..K-1) separated by commas, "
                              "e.g. positive=1,negative=0")
        mapping[word.strip()] = int(value)
    return mapping


def _parse_value(text: str):
    """A flag's value as YAML reads it (numbers in any spelling, true/false, null, [lists]); else the text."""
    from w2slab.configfile import YAMLError, safe_load

    try:
        return safe_load(text)
    except YAMLError:
        return text


def _component_params(entries: list[str], flag: str, example: str, kind: str) -> dict[str, dict]:
    """``NAME.PARAM=VALUE`` flags as ``{name: {param: value}}`` (values parsed as YAML scalars)."""
    params: dict[str, dict] = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        name, dot, param = key.partition(".")
        if not (sep and dot and name and param):
            raise ConfigError(f"{flag} {entry!r}: expected {kind}.PARAM=VALUE, e.g. {example}")
        given = params.setdefault(name.strip(), {})
        if param.strip() in given:
            also = " (--aux-weight sets logconf.aux_weight too)" if key.strip() == "logconf.aux_weight" else ""
            raise ConfigError(f"{flag} {name.strip()}.{param.strip()}: given twice{also}; keep one")
        given[param.strip()] = _parse_value(value.strip())
    return params


def _merge_components(data: dict, key: str, names: str | None, params: dict[str, dict], flag: str,
                      add_flag: str) -> None:
    """``data[key]`` (losses or methods) from a comma-separated ``names`` flag and per-name parameters."""
    if names is not None:
        data[key] = [s.strip() for s in names.split(",") if s.strip()]
    elif key not in data:  # a config.json written before the key existed: the default
        data[key] = [item.to_value() for item in getattr(DEFAULTS, key)]
    if isinstance(data[key], str | dict):  # one name or one mapping on its own
        data[key] = [data[key]]
    if not isinstance(data[key], list | tuple):
        raise ConfigError(f"{key}: expected a list of {key} (names or mappings with a 'name'), got "
                          f"{json.dumps(data[key])}; e.g. [\"xent\"]")
    items = [item if isinstance(item, dict) else {"name": item} for item in data.get(key, [])]
    unused = set(params) - {item.get("name") for item in items}
    if unused:
        raise ConfigError(f"{flag}: {', '.join(sorted(unused))} is not among the {key} "
                          f"({', '.join(str(item.get('name')) for item in items)}); add it with {add_flag}")
    data[key] = [{**item, **params.get(item.get("name"), {})} for item in items]


def build_config(args: argparse.Namespace) -> ExperimentConfig:
    """Defaults <- --config file <- flags, validated as one ExperimentConfig."""
    # the roles' training starts from the dataset modality's defaults (ExperimentConfig.from_dict), not text's
    data = (_read_config_file(args.config) if args.config
            else {k: v for k, v in DEFAULTS.to_dict().items() if k not in ("weak_train", "strong_train")})
    for key in ("dataset", "weak", "strong", "n_train", "n_test", "n_val", "seed", "data_seed", "max_ctx",
                "image_size", "truncation", "data_source", "text_field", "label_field"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    if args.label_map is not None:
        data["label_map"] = _parse_label_map(args.label_map)
    loss_entries = list(args.loss_param) + ([f"logconf.aux_weight={args.aux_weight}"]
                                            if args.aux_weight is not None else [])
    _merge_components(data, "losses", args.loss, _component_params(loss_entries, "--loss-param",
                                                                    "logconf.aux_weight=0.3", "LOSS"),
                      "--loss-param", "--loss")
    _merge_components(data, "methods", args.method, _component_params(args.method_param, "--method-param",
                                                                      "conf_filter.drop=0.3", "METHOD"),
                      "--method-param", "--method")
    for role in ("weak", "strong"):
        given = data.get(f"{role}_train") or {}
        if not isinstance(given, dict):
            raise ConfigError(f"--config {args.config}: {role}_train: expected a mapping of training settings "
                              f"(e.g. {{\"epochs\": 2}}), got {json.dumps(given)}")
        train = dict(given)
        for key in ("batch_size", "epochs", "precision"):
            if getattr(args, key) is not None:
                train[key] = getattr(args, key)
        mode = getattr(args, f"{role}_mode") or ("lora" if args.lora else None)
        if mode:
            train["mode"] = mode
        if getattr(args, f"{role}_lr") is not None:
            train["lr"] = getattr(args, f"{role}_lr")
        if getattr(args, f"{role}_head_lr") is not None:
            train["head_lr"] = getattr(args, f"{role}_head_lr")
        if getattr(args, f"{role}_head_init") is not None:
            train["head_init"] = getattr(args, f"{role}_head_init")
        if role == "strong" and args.keep_weights:
            train["keep_weights"] = True
        prefix = f"{role}__"
        train.update({key[len(prefix):]: value for key, value in vars(args).items() if key.startswith(prefix)})
        data[f"{role}_train"] = train
    try:
        cfg = ExperimentConfig.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"--config {args.config}: {exc}" if args.config else str(exc)) from None
    from w2slab.data.registry import DATASETS

    if ((cfg.reads_a_file() or DATASETS.find(cfg.dataset) is not None)
            and (args.n_train is None or args.n_test is None) and not args.config):
        cfg = _sizes_the_file_supports(cfg, fit_train=args.n_train is None, fit_test=args.n_test is None,
                                       data_root=args.data_root)
    return cfg


def _sizes_the_file_supports(cfg: ExperimentConfig, *, fit_train: bool, fit_test: bool,
                             data_root: str | None = None) -> ExperimentConfig:
    """A user's file, or a registered dataset (read from ``data_root`` or the Hub as the run will), without
    --n-test / --n-train: as many class-balanced examples as it supports, up to the defaults, with a note; a size
    the user set is kept (and refused by the split with its largest feasible value).

    The test set first, since a held-out file's carved test pool (a fifth of it) is usually the short side (and
    registered datasets with one offline split, or a small test split, e.g. sciq's 1,000 questions, are short
    there too): a small test set widens the gap's interval until the run says "no gap", the honest answer.
    """
    import dataclasses

    from w2slab.data import load_task
    from w2slab.data.splits import largest_n_test, largest_n_train

    try:
        task = load_task(cfg.dataset, data_root=data_root, seed=cfg.data_seed, source=cfg.data_source,
                         text_field=cfg.text_field, label_field=cfg.label_field, label_map=cfg.label_map)
    except DataError:
        if cfg.reads_a_file():
            raise
        return cfg  # a registered dataset not readable here (no data root, no Hub): the run says why, as before
    name = Path(cfg.dataset).name
    if fit_test:
        most = largest_n_test(task, cap=cfg.n_test)
        if 0 < most < 2:  # the size chosen here, not one the user set: say what the file lacks
            raise ConfigError(f"{name}: its test pool supports only {most} class-balanced test example(s), and a "
                              "run needs at least 2; use a file with more rows of each class (or a test split)")
        if 0 < most < cfg.n_test:
            print(f"note: {name}'s test pool supports n_test={most} class-balanced examples (fewer than the "
                  f"default {cfg.n_test}); using that. Set --n-test to choose another size.", flush=True)
            cfg = dataclasses.replace(cfg, n_test=most)
    if not fit_train:
        return cfg
    try:
        # the pool and the validation set share the train rows: keep room for the validation set (up to a quarter
        # of what the pool could take), or every choice made on it would rest on a handful of rows
        most = largest_n_train(task, n_test=cfg.n_test, seed=cfg.seed, cap=cfg.n_train + cfg.n_val,
                               data_seed=cfg.data_seed)
        reserve = 2 * (min(cfg.n_val, most // 4) // 2)
        n_train = min(cfg.n_train, max(most - reserve, 4))
        n_train -= n_train % 2
    except DataError as exc:
        if "n_test" in str(exc):
            raise
        # its "lower --n-train" names a size below the least a run takes, for a size the user never set
        raise ConfigError(f"{name}: too few rows of each class for the least training set a run takes (n_train=4: "
                          f"half weak-train, half transfer) beside its test set (n_test={cfg.n_test}); use a file "
                          "with more rows of each class") from None
    if n_train < cfg.n_train:
        print(f"note: {name} supports n_train={n_train} class-balanced examples (fewer than the "
              f"default {cfg.n_train}); using that. Set --n-train to choose another size.", flush=True)
        cfg = dataclasses.replace(cfg, n_train=n_train)
    return cfg


def _echo(*parts) -> None:
    print(*parts, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from w2slab.api import run
    from w2slab.report.console import summary_table

    cfg = build_config(args)
    runtime = RuntimeConfig(run_root=args.run_root, data_root=args.data_root, model_cache=args.model_cache,
                            name=args.name, checkpoint_every=args.checkpoint_every,
                            checkpoint_seconds=args.checkpoint_seconds, trackers=args.log,
                            recompute=args.recompute, echo=_echo)
    if args.dry_run:
        check_experiment_name(runtime.name or cfg.default_name())  # what the run would refuse, the dry run too
        return _dry_run([cfg], runtime)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=FutureWarning)
        result = run(cfg, runtime)
    if result.summary is not None:  # None on the non-main ranks of an `accelerate launch`
        console = Console()
        if not console.is_terminal:  # a log file or pipe: do not wrap the table at rich's default 80 columns
            console = Console(width=110)
        console.print(summary_table(result.summary))
        print(f"results: {result.folder}  ({result.summary.wall_seconds:.0f} s)")
    return 0


def _dry_run(configs: list[ExperimentConfig], runtime: RuntimeConfig) -> int:
    """The plan of these experiments against the run root's store: nothing computed, nothing written."""
    from w2slab.api import sweep

    result = sweep(configs, runtime, plan_only=True)  # echoes the stage counts (new / cached)
    print("experiments and their students:")
    print(result.plan.experiments())
    print(f"dry run: nothing computed; {len(result.plan.todo())} stage(s) would run under {runtime.run_root}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from w2slab.models.loading import default_cache_dir
    from w2slab.models.packaged import PACKAGED, converted_folder, install_status
    from w2slab.models.registry import MODELS

    cache = Path(args.model_cache) if args.model_cache else default_cache_dir()
    if args.action == "install":
        names = list(PACKAGED) if args.names == ["all"] else args.names
        for name in names:
            if name not in PACKAGED:
                raise W2SError(f"unknown model {name!r}; installable: {', '.join(PACKAGED)} (or 'all')")
            print(f"{name}: downloading its wheels (if needed) into {cache / 'wheels' / name} and converting into "
                  f"{cache / name} ...", flush=True)
            converted_folder(name, cache, install=True, repair=True)  # repair: reconvert a damaged folder
            print(f"{name}: ready")
        return 0
    print(f"model cache: {cache}")
    for name, spec in MODELS.items():
        print(f"  {name:14s} {spec.description:52s} {install_status(name, cache)}")
    print("Any other name is a Hub id (owner/name) or a local HF model folder; image models of the libraries by name: "
          "timm:NAME@COMMIT, torchvision:NAME, torchhub:OWNER/REPO:COMMIT/ENTRYPOINT (pip install 'w2slab[vision]').")
    return 0


def cmd_losses(args: argparse.Namespace) -> int:
    from w2slab.losses import LOSSES

    for name, cls in LOSSES.items():
        params = ", ".join(f"{k}={v}" for k, v in cls().params().items()) or "no parameters"
        print(f"  {name:12s} {params:40s} {cls.summary()}" + (f" [{cls.source}]" if cls.source else ""))
    print("Set a parameter with --loss-param LOSS.PARAM=VALUE, or in a sweep: losses: [{name: LOSS, PARAM: VALUE}]")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from w2slab.methods import METHODS
    from w2slab.methods.base import describe

    kinds = ("plain", "label", "selection", "supervisor", "chain")
    for name, cls in sorted(METHODS.items(), key=lambda item: kinds.index(describe(item[1])["kind"])):
        row = describe(cls)
        params = ", ".join(f"{k}={v}" for k, v in cls().params().items()) or "no parameters"
        print(f"  {name:22s} {row['kind']:10s} {row['summary']}")
        print(f"  {'':22s} {'':10s} reads {', '.join(row['reads']) or 'nothing'}; {params}"
              + (f"; source: {cls.source}" if cls.source else ""))
    print("Choose with --method NAME[,NAME], set a parameter with --method-param METHOD.PARAM=VALUE, or in a sweep: "
          "methods: [none, {name: METHOD, PARAM: VALUE}]. Every (method, loss) is one student; an oracle reads "
          "ground truth on the student's side and is marked (oracle) in every table.")
    from w2slab.losses import LOSSES

    print("Methods that are losses (--loss NAME; `w2s losses` gives their parameters):")
    for name, cls in LOSSES.items():
        kind = "teachers" if "teachers" in cls.needs else "twin" if "twin" in cls.needs else "loss"
        print(f"  {name:22s} {kind:10s} {cls.summary()}" + (f" [{cls.source}]" if cls.source else ""))
    print("teachers: learns from each member of --method ensemble (their labels, not their mean); twin: trains two "
          "students that filter each other's examples.")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from w2slab.data import dataset_available_locally, list_datasets
    from w2slab.data.root import try_data_root

    root = try_data_root(args.data_root)
    print(f"data root: {root if root else 'not set (set W2SLAB_DATA_ROOT or --data-root); Hub only'}")
    for spec in list_datasets():
        local = spec.bundled or (root is not None and dataset_available_locally(spec.name, root))
        where = "bundled" if spec.bundled else "local" if local else "Hub only" if spec.hub_id else "missing"
        classes = f"{spec.num_classes} classes" if spec.num_classes else "K from data"
        print(f"  {spec.name:20s} {spec.modality:5s} {classes:11s} hub: {spec.hub_id or '-':30s} {where}")
    print("Any .jsonl/.csv file with text and label columns (labels 0..K-1, or words with --label-map) also works as "
          "--dataset, and any ImageFolder directory (<dir>/<class>/<image>, or <dir>/train/ and <dir>/val/).")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from w2slab.api import sweep
    from w2slab.pipeline.sweep import load_sweep_file, parse_sweep

    parsed = parse_sweep(load_sweep_file(args.file), source=args.file)
    settings = parsed.runtime
    runtime = RuntimeConfig(
        run_root=args.run_root or settings.get("run_root") or str(Path("runs") / Path(args.file).stem),
        data_root=args.data_root or settings.get("data_root"),
        model_cache=args.model_cache or settings.get("model_cache"), checkpoint_every=args.checkpoint_every,
        checkpoint_seconds=args.checkpoint_seconds,
        trackers=args.log, executor=args.executor or settings.get("executor", "local"), recompute=args.recompute,
        echo=_echo)
    if args.dry_run:
        return _dry_run(list(parsed.configs), runtime)
    options = {"ray_address": args.ray_address, "ray_cpus": args.ray_cpus,
               "gpus_per_training": args.gpus_per_training}
    result = sweep(parsed.configs, runtime, **(options if runtime.executor == "ray" else {}))
    print(f"sweep finished in {result.seconds:.0f} s: {len(result.results)} experiment results under "
          f"{result.run_root / 'experiments'}")
    for record in result.results:
        print("  " + record.one_line())
    print(f"report: w2s report {runtime.run_root}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from w2slab.pipeline.store import StageStore

    root = Path(args.run_root)
    if not (root / "stages").is_dir():
        raise W2SError(f"no stages under {root}; pass the run root of a sweep or the --out-dir of w2s run")
    rows = StageStore(root).status()
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
        if args.all or row["state"] != "done":
            print(f"  {row['state']:11s} {row['kind']:10s} {row['id']}  {row['label']}")
    print(", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no stages")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from w2slab.analysis import compare, format_comparison

    for where in (args.a, args.b):
        if not Path(where).exists():
            raise W2SError(f"compare: {where} not found; pass two run roots or experiment folders")
    print(format_comparison(compare(args.a, args.b, role=args.role), args.a, args.b))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from w2slab.report import write_report

    for flag, where in (("run root", args.run_root), ("--out", args.out)):
        if where and Path(where).exists() and not Path(where).is_dir():
            raise ConfigError(f"report: {flag} {where} is a file, not a folder; give a folder")
    paths = write_report(Path(args.run_root), Path(args.out) if args.out else None)
    for kind, files in paths.items():
        for path in files:
            print(f"{kind}: {path}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """``w2s bench NAME``: NAME (a loss or method, a plugin's included) against its matched baseline on the suite."""
    import shlex

    from w2slab.bench import suite
    from w2slab.bench.run import run_bench
    from w2slab.configfile import FORMATS, read_config_file

    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in suite.PARTS]
    if unknown or not parts:
        raise ConfigError(f"--parts: unknown part {', '.join(unknown) or '(none)'}; choose from "
                          f"{', '.join(suite.PARTS)} (comma-separated)")
    seeds = _seed_list(args.seeds, "--seeds")
    if Path(args.candidate).suffix.lower() in FORMATS:  # a file of the candidate's name and parameters
        spec = read_config_file(args.candidate, label=f"candidate {args.candidate}",
                                holds="a loss or method: its name and parameters")
    else:
        spec = args.candidate
    suite.candidate(spec)  # an unknown name stops here, before any work
    tasks = suite.task_names(args.tasks, args.task or ())
    part_tasks = {"finetune": suite.task_names(args.finetune_tasks, args.task or ())} if args.finetune_tasks else {}
    part_seeds = {"finetune": _seed_list(args.finetune_seeds, "--finetune-seeds")} if args.finetune_seeds else {}
    sizes = {key: value for key, value in (("n_train", args.n_train), ("n_test", args.n_test), ("n_val", args.n_val))
             if value is not None}
    def fit(cfg: ExperimentConfig) -> ExperimentConfig:  # a size not given is fitted to the task's pool
        return _sizes_the_file_supports(cfg, fit_train="n_train" not in sizes, fit_test="n_test" not in sizes)

    name = spec["name"] if isinstance(spec, dict) else spec
    out = args.out or str(Path(args.run_root) / f"bench_{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}")
    text = run_bench(spec, parts=parts, tasks=tasks, seeds=seeds, ladder=args.ladder, run_root=args.run_root,
                        out=out, fit=fit, sizes=sizes, echo=None if args.quiet else _echo, part_tasks=part_tasks,
                        part_seeds=part_seeds,
                        command="w2s " + shlex.join(args.argv))
    print(text)
    return 0


def _seed_list(text: str, flag: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"{flag}: {text!r} is not a comma-separated list of integers; e.g. 0,1,2") from None
    if not seeds:
        raise ConfigError(f"{flag}: name at least one seed, e.g. 0,1,2")
    return seeds


def make_parser() -> argparse.ArgumentParser:
    from w2slab import __version__

    parser = argparse.ArgumentParser(prog="w2s", description="Weak-to-strong generalization experiments")
    parser.add_argument("--version", action="version", version=f"w2slab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one weak-to-strong experiment")
    _add_run_args(run)
    run.set_defaults(func=cmd_run)
    models = sub.add_parser("models", help="list registered models; `w2s models install NAME|all`")
    models.add_argument("action", nargs="?", choices=("list", "install"), default="list")
    models.add_argument("names", nargs="*", default=["all"])
    models.add_argument("--model-cache")
    models.set_defaults(func=cmd_models)
    sweep = sub.add_parser("sweep", help="run a sweep file (YAML/TOML) as one deduplicated stage graph")
    sweep.add_argument("file")
    sweep.add_argument("--run-root", help="default: the file's run_root, else runs/<file stem>")
    sweep.add_argument("--executor", choices=("local", "ray"))
    sweep.add_argument("--ray-address", help="existing Ray cluster ('auto' or ray://host:port); default: start one")
    sweep.add_argument("--ray-cpus", type=int, help="CPUs of the local Ray instance (default: all)")
    sweep.add_argument("--gpus-per-training", type=float, default=0.0)
    sweep.add_argument("--data-root")
    sweep.add_argument("--model-cache")
    sweep.add_argument("--dry-run", action="store_true", help="print the plan (stages new and cached, students) "
                       "and compute nothing")
    _add_runtime_args(sweep)
    sweep.set_defaults(func=cmd_sweep)
    status = sub.add_parser("status", help="which stages of a run root are done, running, failed, interrupted")
    status.add_argument("run_root")
    status.add_argument("--all", action="store_true", help="list finished stages too")
    status.set_defaults(func=cmd_status)
    report = sub.add_parser("report", help="tables (CSV, Markdown) and plots (PNG) of every finished experiment")
    report.add_argument("run_root", help="a run root (of w2s run or w2s sweep), one experiment folder of w2s run, "
                        "or a results folder of w2s bench (its records.jsonl.gz)")
    report.add_argument("--out", help="default: RUN_ROOT/report")
    report.set_defaults(func=cmd_report)
    compare = sub.add_parser("compare", help="paired differences B - A of two runs' test accuracy, per student")
    compare.add_argument("a", help="run root or experiment folder")
    compare.add_argument("b", help="run root or experiment folder")
    compare.add_argument("--role", choices=("student", "ceiling", "weak"), default="student")
    compare.set_defaults(func=cmd_compare)
    bench = sub.add_parser("bench", help="a loss or method against its matched baseline on the suite of tasks and "
                           "model pairs: a row per task and the pooled row")
    bench.add_argument("candidate", help="a registered loss or method (a plugin's included), or a YAML/JSON/TOML "
                       "file holding {name: ..., param: ...}")
    bench.add_argument("--parts", default="probe", help="probe (linear probes on cached features), finetune "
                       "(fine-tuned / LoRA pairs), or both: probe,finetune")
    bench.add_argument("--tasks", help="comma-separated suite tasks (default: every task; fashion_mnist runs in the "
                       "fine-tuned part only, with its own image pair; none: only --task files)")
    bench.add_argument("--task", action="append", help="a user's .jsonl/.csv file as one more task (repeatable)")
    bench.add_argument("--seeds", default="0,1,2,3,4")
    bench.add_argument("--finetune-tasks", help="the fine-tuned part's tasks (default: --tasks)")
    bench.add_argument("--finetune-seeds", help="the fine-tuned part's seeds (default: --seeds)")
    bench.add_argument("--ladder", default="encoders", help="encoders (probes: 3 encoder pairs; fine-tuned: "
                       "minilm-l3 -> mpnet-base), seed (fine-tuned: minilm-l3 -> gemma3-270m LoRA, the seed's "
                       "experiment), decoders (probes: smollm2-135m -> gemma3-270m; fine-tuned: the seed's pair), "
                       "gemma (probes: each other packaged model -> gemma3-270m; fine-tuned: the seed's pair), "
                       "minilm (one small pair)")
    bench.add_argument("--n-train", type=int, help="default 2000, fitted to each task's pool")
    bench.add_argument("--n-test", type=int, help="default 1000, fitted to each task's pool")
    bench.add_argument("--n-val", type=int, help="default 500")
    bench.add_argument("--run-root", default="runs/bench", help="stages (a second bench reuses them)")
    bench.add_argument("--out", default=None, help="where the tables go (default: RUN_ROOT/bench_<candidate>)")
    bench.add_argument("--quiet", action="store_true", help="no per-stage lines")
    bench.set_defaults(func=cmd_bench)
    losses = sub.add_parser("losses", help="list registered losses and their parameters")
    losses.set_defaults(func=cmd_losses)
    methods = sub.add_parser("methods", help="list registered W2S methods, what they read, and their parameters")
    methods.set_defaults(func=cmd_methods)
    datasets = sub.add_parser("datasets", help="list registered datasets and whether they are available")
    datasets.add_argument("--data-root")
    datasets.set_defaults(func=cmd_datasets)
    return parser


def check_environment(args: argparse.Namespace) -> None:
    """Environment settings a command may read mid-way, refused in one line before it starts any work."""
    if args.func in (cmd_run, cmd_sweep, cmd_models, cmd_bench):  # the commands that may download a model
        from w2slab.models.packaged import download_timeout

        download_timeout()


#: ``OSError`` numbers that mean the disk (or the user's quota) is full: a run stops with one line, not a traceback.
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def main(argv: list[str] | None = None) -> int:
    from w2slab.registry import load_plugins

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    configure_logging()  # the library's messages (downloads, notes, progress lines) to stdout
    try:
        load_plugins()  # before the parser: plugin losses appear in --help and validation
    except W2SError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    argv = list(sys.argv[1:] if argv is None else argv)
    args = make_parser().parse_args(argv)  # --help and --version end here, before torch or transformers load
    args.argv = argv  # the command as typed, for what records it (a bench's meta), however main was called
    quiet_libraries()
    try:
        check_environment(args)
        return args.func(args)
    except W2SError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        print(f"error: no space left on the device{where}; free space (or pass --out-dir on another disk) and "
              "rerun: finished stages are kept and the interrupted one resumes from its last checkpoint",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
