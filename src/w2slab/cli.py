"""The ``w2s`` command: parse arguments, call the library, print results. No logic of its own.

    w2s run [--dataset sciq --weak minilm-l6 --strong mpnet-base --loss xent,logconf ...]
    w2s sweep sweep.yaml [--executor local|ray]
    w2s status RUN_ROOT
    w2s report RUN_ROOT
    w2s models [install NAME ...]
    w2s datasets

The reference code's flags (``--ds_name --weak_model_size --strong_model_size --n_docs
--n_test_docs --loss --batch_size --max_ctx --seed``) are accepted as aliases.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from pathlib import Path

from w2slab.config import PRECISIONS, TRAIN_MODES, ExperimentConfig
from w2slab.errors import W2SError
from w2slab.progress import quiet_libraries

DEFAULTS = ExperimentConfig()


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="JSON file of an ExperimentConfig (e.g. a previous run's config.json)")
    p.add_argument("--dataset", "--ds_name", dest="dataset",
                   help=f"registered dataset or a .jsonl/.csv file (default {DEFAULTS.dataset})")
    p.add_argument("--weak", "--weak_model_size", dest="weak", help=f"default {DEFAULTS.weak}")
    p.add_argument("--strong", "--strong_model_size", dest="strong", help=f"default {DEFAULTS.strong}")
    p.add_argument("--loss", "--losses", dest="loss", help="comma-separated: xent,logconf,product "
                   f"(default {','.join(DEFAULTS.losses)})")
    p.add_argument("--n-train", "--n_docs", dest="n_train", type=int,
                   help=f"labelled docs, half weak-train, half transfer (default {DEFAULTS.n_train})")
    p.add_argument("--n-test", "--n_test_docs", dest="n_test", type=int, help=f"default {DEFAULTS.n_test}")
    p.add_argument("--seed", type=int, help=f"default {DEFAULTS.seed}")
    p.add_argument("--max-ctx", "--max_ctx", dest="max_ctx", type=int, help=f"default {DEFAULTS.max_ctx}")
    p.add_argument("--truncation", choices=("left", "right", "drop"),
                   help="texts longer than max-ctx: keep the end (left), the start (right) or drop them")
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, help="both models")
    p.add_argument("--epochs", type=float, help="both models")
    p.add_argument("--precision", choices=PRECISIONS, help="both models (auto: bf16/fp16 on GPU, fp32 on CPU)")
    p.add_argument("--weak-mode", choices=TRAIN_MODES, help=f"default {DEFAULTS.weak_train.mode}")
    p.add_argument("--strong-mode", choices=TRAIN_MODES, help=f"default {DEFAULTS.strong_train.mode}")
    p.add_argument("--lora", action="store_true", help="shorthand for --weak-mode lora --strong-mode lora")
    p.add_argument("--weak-lr", type=float, help="default: the weak model family's default for its mode")
    p.add_argument("--strong-lr", type=float, help="default: the strong model family's default for its mode")
    p.add_argument("--aux-weight", type=float, help="logconf maximum auxiliary weight (default 0.5)")
    p.add_argument("--data-root", help="local data root (default $W2SLAB_DATA_ROOT)")
    p.add_argument("--data-source", choices=("auto", "local", "hub"))
    p.add_argument("--model-cache", help="where packaged models are converted (default ~/.cache/w2slab/models)")
    p.add_argument("--out-dir", help=f"where experiment folders go (default {DEFAULTS.out_dir})")
    p.add_argument("--name", help="experiment folder name (default: derived from the config)")
    p.add_argument("--checkpoint-every", type=int, default=50, help="training steps between resumable checkpoints")
    _add_log_arg(p)


TRACKERS = ("tensorboard", "wandb")


def _add_log_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log", default="", help="extra training logs besides JSONL: tensorboard,wandb (W&B offline "
                   "unless WANDB_MODE is set)")


def parse_trackers(value: str) -> tuple[str, ...]:
    trackers = tuple(t.strip() for t in value.split(",") if t.strip())
    unknown = [t for t in trackers if t not in TRACKERS]
    if unknown:
        raise W2SError(f"unknown --log target {', '.join(unknown)}; choose from {', '.join(TRACKERS)}")
    return trackers


def build_config(args: argparse.Namespace) -> ExperimentConfig:
    """Defaults <- --config file <- flags."""
    cfg = DEFAULTS
    if args.config:
        data = json.loads(Path(args.config).read_text())
        data.pop("resolved", None)
        cfg = ExperimentConfig.from_dict(data)
    data = cfg.to_dict()
    for key in ("dataset", "weak", "strong", "n_train", "n_test", "seed", "max_ctx", "truncation", "aux_weight",
                "data_root", "data_source", "model_cache", "out_dir", "name"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    if args.loss:
        data["losses"] = [s.strip() for s in args.loss.split(",") if s.strip()]
    for role in ("weak", "strong"):
        train = data[f"{role}_train"]
        for key in ("batch_size", "epochs", "precision"):
            if getattr(args, key) is not None:
                train[key] = getattr(args, key)
        mode = getattr(args, f"{role}_mode") or ("lora" if args.lora else None)
        if mode:
            train["mode"] = mode
        if getattr(args, f"{role}_lr") is not None:
            train["lr"] = getattr(args, f"{role}_lr")
    if data["data_root"] is None and os.environ.get("W2SLAB_DATA_ROOT"):
        data["data_root"] = os.environ["W2SLAB_DATA_ROOT"]
    cfg = ExperimentConfig.from_dict(data)
    from w2slab.train.losses import LOSSES

    unknown = [loss for loss in cfg.losses if loss not in LOSSES]
    if unknown or not cfg.losses:
        raise W2SError(f"unknown loss {', '.join(unknown) or '(none given)'}; choose from {', '.join(LOSSES)}")
    if cfg.n_train < 4 or cfg.n_test < 2:
        raise W2SError("--n-train must be >= 4 and --n-test >= 2")
    return cfg


def _fmt(value: float) -> str:
    return "  nan" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def print_summary(cfg: ExperimentConfig, metrics: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{cfg.dataset}: {cfg.weak} -> {cfg.strong} (seed {cfg.seed}, n_test "
                        f"{cfg.n_test})")
    for column in ("model", "accuracy", "AUROC", "PGR", "PGR 95% CI"):
        table.add_column(column, justify="right" if column != "model" else "left")
    table.add_row(f"weak ({cfg.weak})", _fmt(metrics["weak"]["accuracy"]), _fmt(metrics["weak"]["auroc"]), "", "")
    for loss, entry in metrics["students"].items():
        low, high = entry["pgr_ci95"]
        table.add_row(f"w2s student ({loss})", _fmt(entry["accuracy"]), _fmt(entry["auroc"]), _fmt(entry["pgr"]),
                      f"[{_fmt(low)}, {_fmt(high)}]")
    table.add_row(f"ceiling ({cfg.strong})", _fmt(metrics["ceiling"]["accuracy"]),
                  _fmt(metrics["ceiling"]["auroc"]), "", "")
    Console().print(table)
    print(f"results: {metrics['folder']}  ({metrics['wall_seconds']:.0f} s)")


def cmd_run(args: argparse.Namespace) -> int:
    from w2slab.pipeline.experiment import run_experiment

    cfg = build_config(args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=FutureWarning)
        metrics = run_experiment(cfg, trackers=parse_trackers(args.log), checkpoint_every=args.checkpoint_every)
    if metrics:  # empty on the non-main ranks of an `accelerate launch`
        print_summary(cfg, metrics)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from w2slab.models.loading import default_cache_dir
    from w2slab.models.packaged import COMPLETE_MARKER, PACKAGED, converted_folder
    from w2slab.models.registry import MODELS

    cache = Path(args.model_cache) if args.model_cache else default_cache_dir()
    if args.action == "install":
        names = list(MODELS) if args.names == ["all"] else args.names
        for name in names:
            if name not in PACKAGED:
                raise W2SError(f"unknown model {name!r}; installable: {', '.join(PACKAGED)} (or 'all')")
            print(f"{name}: installing packages and converting into {cache / name} ...", flush=True)
            converted_folder(name, cache, install=True)
            print(f"{name}: ready")
        return 0
    print(f"model cache: {cache}")
    for name, spec in MODELS.items():
        source = PACKAGED.get(name)
        if (cache / name / COMPLETE_MARKER).exists():
            state = "converted"
        elif source and not source.missing_packages():
            state = "installed (converts on first use)"
        else:
            state = f"not installed: w2s models install {name}"
        print(f"  {name:14s} {spec.description:52s} {state}")
    print("Any other name is a Hub id (owner/name) or a local HF model folder.")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from w2slab.data import dataset_available_locally, list_datasets
    from w2slab.data.root import try_data_root

    root = try_data_root(args.data_root)
    print(f"data root: {root if root else 'not set (set W2SLAB_DATA_ROOT or --data-root); Hub only'}")
    for spec in list_datasets():
        local = root is not None and dataset_available_locally(spec.name, root)
        where = "local" if local else "Hub only" if spec.hub_id else "missing"
        print(f"  {spec.name:20s} hub: {spec.hub_id or '-':28s} {where}")
    print("Any .jsonl/.csv file with text and label columns also works as --dataset.")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from w2slab.pipeline.stages import StageContext
    from w2slab.pipeline.sweep import expand, load_sweep_file, run_sweep

    spec = load_sweep_file(args.file)
    run_root = args.run_root or spec.get("run_root") or str(Path("runs") / Path(args.file).stem)
    data_root = args.data_root or spec.get("data_root") or os.environ.get("W2SLAB_DATA_ROOT")
    spec["data_root"] = data_root
    configs = expand(spec)
    ctx = StageContext(data_root, args.model_cache or spec.get("model_cache"), args.checkpoint_every,
                       lambda *a: print(*a, flush=True), parse_trackers(args.log))
    executor = args.executor or spec.get("executor", "local")
    _, records = run_sweep(configs, run_root, executor=executor, ray_address=args.ray_address,
                           ray_cpus=args.ray_cpus, gpus_per_training=args.gpus_per_training, ctx=ctx,
                           echo=lambda *a: print(*a, flush=True))
    for record in records:
        print(f"  {record['dataset']:10s} {record['weak']:>14s} -> {record['strong']:14s} {record['loss']:8s} "
              f"s{record['seed']}  weak {_fmt(record['weak_accuracy'])}  student {_fmt(record['student_accuracy'])}"
              f"  ceiling {_fmt(record['ceiling_accuracy'])}  PGR {_fmt(record['pgr'])}")
    print(f"report: w2s report {run_root}")
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


def cmd_report(args: argparse.Namespace) -> int:
    from w2slab.report import write_report

    paths = write_report(Path(args.run_root), Path(args.out) if args.out else None)
    for kind, files in paths.items():
        for path in files:
            print(f"{kind}: {path}")
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="w2s", description="Weak-to-strong generalization experiments")
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
    sweep.add_argument("--checkpoint-every", type=int, default=50, help="training steps between checkpoints")
    sweep.add_argument("--data-root")
    sweep.add_argument("--model-cache")
    _add_log_arg(sweep)
    sweep.set_defaults(func=cmd_sweep)
    status = sub.add_parser("status", help="which stages of a run root are done, running, failed, interrupted")
    status.add_argument("run_root")
    status.add_argument("--all", action="store_true", help="list finished stages too")
    status.set_defaults(func=cmd_status)
    report = sub.add_parser("report", help="tables (CSV, Markdown) and plots (PNG) of every finished experiment")
    report.add_argument("run_root")
    report.add_argument("--out", help="default: RUN_ROOT/report")
    report.set_defaults(func=cmd_report)
    datasets = sub.add_parser("datasets", help="list registered datasets and whether they are available")
    datasets.add_argument("--data-root")
    datasets.set_defaults(func=cmd_datasets)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    quiet_libraries()
    args = make_parser().parse_args(argv)
    try:
        return args.func(args)
    except W2SError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
