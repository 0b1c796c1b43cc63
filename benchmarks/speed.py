"""Speed benchmark: w2slab's fine-tuned experiment against the reference recipe, side by side, on this machine.

One invocation prints one report with four parts (README "Speed" quotes it):

1. **Matmul rates** of this CPU/GPU, measured in this run: a 2048x2048 GEMM in fp32 and bf16.
2. **Side by side**, same models, data (w2slab's split of the dataset), epochs and seed:
   - *w2slab*: ``w2slab.run`` of the default experiment (strong model fine-tuned), in a fresh run root;
   - *reference*: the original algorithm, implemented here: Adam (no weight decay, no warm-up, no
     clipping), cosine annealing, batch 32 made of 32 minibatches of one example whose logits are
     concatenated before one loss and one backward, dropout off, fp32, and every stage (weak model,
     ceiling, student) recomputed for every loss. Its logconf keeps the original's warm-up, whose
     auxiliary weight ramps with the step fraction up to ``warmup_frac`` and then jumps to its full value.
   Wall time per stage and in total, their ratio, each side's accuracies and PGR.
3. **Training throughput** of the strong model's trainings: useful FLOP/s = 6 x non-embedding parameters x
   real (unpadded) tokens per step, divided by the step's wall time, and that as a fraction of the
   measured matmul rates; the share of padded tokens in the batches.
4. **Probe-mode ladder sweep**: every (weak < strong) pair of the five packaged text models x datasets x
   three losses x three seeds, both models as linear probes on frozen features: total time and the share
   spent extracting features; then the same sweep with three more seeds, which should extract nothing.

A torch-profiler table of a few strong-model training steps shows where the time of a step goes.

    python benchmarks/speed.py                       # everything (about an hour on 2 CPU cores)
    python benchmarks/speed.py --parts rates,w2slab,profile --out-dir /tmp/speed
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import math
import os
import shutil
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

PARTS = ("rates", "w2slab", "reference", "profile", "ladder")
TEXT_MODELS = ("minilm-l3", "minilm-l6", "mpnet-base", "smollm2-135m", "gemma3-270m")


# --- 1. matmul rates ---------------------------------------------------------------------------


def matmul_rate(dtype: torch.dtype, n: int = 2048, seconds: float = 4.0) -> float:
    """GFLOP/s of an n x n GEMM in ``dtype`` on this device (best of repeated runs over ~``seconds``)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)  # warm-up (kernel selection, page faults)
    best, spent = math.inf, 0.0
    while spent < seconds:
        start = time.perf_counter()
        torch.mm(a, b)
        took = time.perf_counter() - start
        best, spent = min(best, took), spent + took
    return 2 * n**3 / best / 1e9


# --- helpers -----------------------------------------------------------------------------------


def non_embedding_parameters(model: torch.nn.Module) -> int:
    """Parameters outside embedding tables (the ones every token multiplies through)."""
    embedded = sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters())
    return sum(p.numel() for p in model.parameters()) - embedded


def stage_seconds(run_root: Path) -> dict[str, float]:
    """Seconds per stage kind, from the store's event log (start -> done of each computed stage)."""
    started, totals = {}, defaultdict(float)
    for line in (run_root / "events.jsonl").read_text().splitlines():
        row = json.loads(line)
        key = (row["kind"], row["id"])
        if row["event"] == "start":
            started[key] = row["time"]
        elif row["event"] == "done" and key in started:
            totals[row["kind"]] += row["time"] - started.pop(key)
    return dict(totals)


def throughput(log_rows: list[dict], n_params: int) -> dict[str, float]:
    rows = [r for r in log_rows if "tokens" in r and "seconds" in r]
    tokens, padded = sum(r["tokens"] for r in rows), sum(r["padded_tokens"] for r in rows)
    seconds = sum(r["seconds"] for r in rows)
    return {"steps": len(rows), "seconds": seconds, "tokens": tokens, "padding_share": 1 - tokens / max(padded, 1),
            "useful_gflops": 6 * n_params * tokens / max(seconds, 1e-9) / 1e9}


# --- 2a. w2slab's side -------------------------------------------------------------------------


def run_w2slab(out: Path, args, seed: int) -> dict:
    """w2slab's default experiment at ``seed`` in a fresh run root (nothing cached from another seed)."""
    import w2slab

    root = out / f"w2slab-s{seed}"
    shutil.rmtree(root, ignore_errors=True)
    cfg = w2slab.ExperimentConfig(dataset=args.dataset, weak=args.weak, strong=args.strong,
                                  n_train=args.n_train, n_test=args.n_test, seed=seed, data_seed=args.data_seed)
    start = time.time()
    result = w2slab.run(cfg, w2slab.RuntimeConfig(run_root=str(root), echo=lambda *a, **k: None))
    total = time.time() - start
    summary = result.summary
    per_stage = stage_seconds(root)
    strong_logs = []
    for folder in sorted((root / "stages" / "ceiling").glob("*")) + sorted((root / "stages" / "student").glob("*")):
        if (folder / "log.jsonl").exists():
            strong_logs += [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    any_result = next(iter(summary.results.values()))
    return {"total": total, "stages": per_stage, "config": cfg.to_dict(),
            "weak": any_result.weak_accuracy, "ceiling": any_result.ceiling_accuracy,
            "students": {loss: (r.student_accuracy, r.pgr, tuple(r.pgr_ci95)) for loss, r in summary.results.items()},
            "strong_log": [r for r in strong_logs if "loss" in r],
            "resolved": {"weak": any_result.resolved.get("weak"), "strong": any_result.resolved.get("strong")}}


# --- 2b. the reference recipe --------------------------------------------------------------------


def reference_xent(logits: torch.Tensor, target: torch.Tensor, step_frac: float) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits, target)


def reference_logconf(logits: torch.Tensor, target: torch.Tensor, step_frac: float, aux_coef: float = 0.5,
                      warmup_frac: float = 0.1) -> torch.Tensor:
    """The original's auxiliary-confidence loss, warm-up included as it was: the weight is ``step_frac`` while
    ``step_frac <= warmup_frac`` (reaching only 0.1 x aux_coef), then jumps to ``aux_coef``."""
    coef = (1.0 if step_frac > warmup_frac else step_frac) * aux_coef
    probs = torch.softmax(logits.float(), dim=-1)
    threshold = torch.quantile(probs[:, 0], target.float().mean(0)[1])
    hard = torch.stack([probs[:, 0] >= threshold, probs[:, 0] < threshold], dim=1).float()
    return torch.nn.functional.cross_entropy(logits, target * (1 - coef) + hard.detach() * coef)


class ReferenceRecipe:
    """The original training algorithm (see the module docstring), on w2slab's models and tokenised splits."""

    def __init__(self, lr: float = 5e-5, batch_size: int = 32, epochs: float = 2.0, seed: int = 0,
                 eval_batch_size: int = 32):
        self.lr, self.batch_size, self.epochs, self.seed = lr, batch_size, epochs, seed
        self.eval_batch_size = eval_batch_size
        self.log: list[dict] = []  # per step: seconds, tokens (what throughput reads)

    def train(self, resolved, examples: list[list[int]], targets: np.ndarray, loss_fn) -> torch.nn.Module:
        from w2slab.models.loading import load_classifier

        torch.manual_seed(self.seed)
        model = load_classifier(resolved, num_labels=2)  # fp32 weights, fp32 compute
        model.eval()  # dropout off, as the original trains
        optimizer = torch.optim.Adam(model.parameters(), lr=self.lr)
        steps = int(len(examples) * self.epochs) // self.batch_size
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
        order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(self.seed)).tolist()
        stream = itertools.chain.from_iterable(itertools.repeat(order, math.ceil(self.epochs)))
        target = torch.from_numpy(np.asarray(targets, dtype=np.float32))
        for step in range(steps):
            started = time.perf_counter()
            batch = [next(stream) for _ in range(self.batch_size)]
            logits = torch.cat([model(input_ids=torch.tensor([examples[i]]),
                                      attention_mask=torch.ones(1, len(examples[i]), dtype=torch.long))
                                for i in batch])
            loss = loss_fn(logits, target[batch], step / steps)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            schedule.step()
            self.log.append({"seconds": time.perf_counter() - started, "tokens": sum(len(examples[i]) for i in batch),
                             "padded_tokens": sum(len(examples[i]) for i in batch)})
        return model

    @torch.no_grad()
    def predict(self, model: torch.nn.Module, examples: list[list[int]], pad_id: int) -> np.ndarray:
        out = []
        for start in range(0, len(examples), self.eval_batch_size):
            chunk = examples[start:start + self.eval_batch_size]
            width = max(len(x) for x in chunk)
            ids = torch.tensor([x + [pad_id] * (width - len(x)) for x in chunk])
            mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in chunk])
            out.append(torch.softmax(model(input_ids=ids, attention_mask=mask), -1).numpy())
        return np.concatenate(out)


def run_reference(out: Path, args, seed: int, losses: tuple[str, ...] = ("xent", "logconf")) -> dict:
    from w2slab.data import load_task, make_splits
    from w2slab.models.loading import load_tokenizer, resolve_model
    from w2slab.stats import pgr_estimate

    torch.set_num_threads(torch.get_num_threads())
    task = load_task(args.dataset, seed=args.data_seed)
    splits = make_splits(task, n_train=args.n_train, n_test=args.n_test, seed=seed, data_seed=args.data_seed)
    weak_model, strong_model = resolve_model(args.weak), resolve_model(args.strong)

    def encode(resolved, rows):
        tokenizer = load_tokenizer(resolved, truncation_side="left")
        ids = tokenizer([r["text"] for r in rows], truncation=True, max_length=args.max_ctx)["input_ids"]
        return ids, tokenizer.pad_token_id

    names = ("weak_train", "transfer", "test")
    labels = {name: np.array([r["label"] for r in getattr(splits, name)]) for name in names}
    weak_ids = {name: encode(weak_model, getattr(splits, name)) for name in ("weak_train", "transfer", "test")}
    strong_ids = {name: encode(strong_model, getattr(splits, name)) for name in ("transfer", "test")}
    recipe = ReferenceRecipe(lr=args.reference_lr, seed=seed, epochs=args.epochs)
    loss_fns = {"xent": reference_xent, "logconf": reference_logconf}
    stages, students, strong_log = defaultdict(float), {}, []
    weak_acc = ceiling_acc = float("nan")
    start_all = time.time()
    for loss in losses:  # every stage recomputed per loss, as the original script runs one loss per invocation
        t = time.time()
        weak = recipe.train(weak_model, weak_ids["weak_train"][0], np.eye(2)[labels["weak_train"]], reference_xent)
        stages["weak_train"] += time.time() - t
        t = time.time()
        weak_transfer = recipe.predict(weak, weak_ids["transfer"][0], weak_ids["transfer"][1])
        weak_correct = recipe.predict(weak, weak_ids["test"][0], weak_ids["test"][1]).argmax(-1) == labels["test"]
        weak_acc = float(weak_correct.mean())
        stages["weak_label"] += time.time() - t
        del weak
        t = time.time()
        recipe.log = []
        ceiling = recipe.train(strong_model, strong_ids["transfer"][0], np.eye(2)[labels["transfer"]], reference_xent)
        strong_log += recipe.log
        ceiling_correct = (recipe.predict(ceiling, strong_ids["test"][0], strong_ids["test"][1]).argmax(-1)
                           == labels["test"])
        ceiling_acc = float(ceiling_correct.mean())
        stages["ceiling"] += time.time() - t
        del ceiling
        t = time.time()
        recipe.log = []
        student = recipe.train(strong_model, strong_ids["transfer"][0], weak_transfer, loss_fns[loss])
        strong_log += recipe.log
        student_correct = (recipe.predict(student, strong_ids["test"][0], strong_ids["test"][1]).argmax(-1)
                           == labels["test"])
        acc = float(student_correct.mean())
        stages["student"] += time.time() - t
        pgr = (acc - weak_acc) / (ceiling_acc - weak_acc) if ceiling_acc > weak_acc else float("nan")
        students[loss] = (acc, pgr, pgr_estimate([{"weak": weak_correct, "student": student_correct,
                                                       "ceiling": ceiling_correct}]).ci95)
        print(f"  reference s{seed} {loss}: weak {weak_acc:.3f} ceiling {ceiling_acc:.3f} student {acc:.3f} "
              f"({time.time() - start_all:.0f} s so far)", flush=True)
    return {"total": time.time() - start_all, "stages": dict(stages), "weak": weak_acc, "ceiling": ceiling_acc,
            "students": students, "strong_log": strong_log, "losses": list(losses)}


# --- 3. profile ----------------------------------------------------------------------------------


def profile_steps(args, steps: int = 4) -> str:
    """torch.profiler over a few training steps of the strong model at w2slab's default settings."""
    from torch.profiler import ProfilerActivity, profile

    from w2slab.config import ExperimentConfig
    from w2slab.data import load_task, make_splits
    from w2slab.losses import make_loss
    from w2slab.models.loading import resolve_model
    from w2slab.pipeline.role_model import RoleModel
    from w2slab.train.trainer import Trainer, TrainerCallback

    cfg = ExperimentConfig()
    if cfg.strong_train.mode == "probe":  # the profile is of fine-tuning
        cfg = dataclasses.replace(cfg, strong_train=dataclasses.replace(cfg.strong_train, mode="full"))
    task = load_task(args.dataset, seed=args.data_seed)
    splits = make_splits(task, n_train=args.n_train, n_test=args.n_test, seed=args.seed, data_seed=args.data_seed)
    train_cfg = cfg.strong_train
    strong = RoleModel("strong", resolve_model(args.strong), train_cfg, args.max_ctx, "left")
    strong.encode("transfer", splits.transfer)
    model = strong.new_model()
    examples = strong._examples("transfer", np.eye(2, dtype=np.float32)[[r["label"] for r in splits.transfer]])

    class Profile(TrainerCallback):
        def __init__(self):
            self.prof = profile(activities=[ProfilerActivity.CPU], record_shapes=False)

        def on_step_end(self, trainer, state, row):
            if state.step == 2:  # two warm-up steps, then `steps` profiled
                self.prof.__enter__()
            if state.step == 2 + steps:
                self.prof.__exit__(None, None, None)
                state.should_stop = True

    callback = Profile()
    Trainer(model, examples, strong.collate, make_loss("xent"), train_cfg, strong.lr, seed=args.seed,
            name="profile", callbacks=[callback]).train()
    return callback.prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14)


# --- 4. the probe ladder -------------------------------------------------------------------------


LADDER_SWEEP = Path(__file__).resolve().parent.parent / "sweeps" / "ladder_probe.yaml"


def ladder_configs(args, seeds) -> list:
    """The experiments of ``sweeps/ladder_probe.yaml`` (the same file ``w2s sweep`` runs), for ``seeds``."""
    from w2slab.pipeline.sweep import load_sweep_file, parse_sweep

    spec = load_sweep_file(LADDER_SWEEP)
    spec.pop("run_root", None)
    spec["seeds"] = list(seeds)
    for key in ("datasets", "n_train", "n_test"):
        value = getattr(args, f"ladder_{key}")
        if value is not None:
            spec[key] = value.split(",") if key == "datasets" else value
    return list(parse_sweep(spec, str(LADDER_SWEEP)).configs)


def run_ladder(out: Path, args) -> dict:
    import w2slab
    from w2slab.pipeline import role_model

    root = out / "ladder"
    shutil.rmtree(root, ignore_errors=True)
    rows = {}
    for label, seeds in (("seeds 0-2", (0, 1, 2)), ("+ seeds 3-5", (3, 4, 5))):
        role_model.COMPUTE_SECONDS.clear()
        start = time.time()
        result = w2slab.sweep(ladder_configs(args, seeds), w2slab.RuntimeConfig(run_root=str(root),
                                                                                echo=lambda *a, **k: None))
        total = time.time() - start
        rows[label] = {"experiments": len(result.plan.graphs), "results": len(result.results),
                       "stages_computed": len(result.plan.todo()), "total": total,
                       "feature_seconds": role_model.COMPUTE_SECONDS.get("features", 0.0),
                       "token_seconds": role_model.COMPUTE_SECONDS.get("tokens", 0.0)}
        print(f"  ladder {label}: {total:.0f} s, {rows[label]}", flush=True)
    return rows


# --- the report ----------------------------------------------------------------------------------


def _num(value: float, width: int, fmt: str = ".1f") -> str:
    """A number in a column, or a dash where the side has no such stage."""
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    return f"{'-':>{width}s}" if missing else f"{value:{width}{fmt}}"


def side_by_side(seed: int, ours: dict | None, ref: dict | None, args) -> None:
    """One seed: wall time per stage and in total on each side, accuracies and PGR with paired-bootstrap CIs."""
    nan = float("nan")
    ref_losses = ",".join((ref or {}).get("losses", []))
    print(f"\nside by side: {args.dataset}, {args.weak} -> {args.strong} (fine-tuned), n_train {args.n_train}, "
          f"n_test {args.n_test}, {args.epochs:g} epochs, seed {seed}"
          + (f"; reference losses: {ref_losses}" if ref else ""))
    print(f"{'':24s}{'w2slab':>12s}{'reference':>12s}{'ratio':>8s}")
    for kind in ("split", "weak_train", "weak_label", "ceiling", "student", "evaluate"):
        a = (ours or {}).get("stages", {}).get(kind, nan)
        b = (ref or {}).get("stages", {}).get(kind, nan)
        if math.isnan(a) and math.isnan(b):
            continue
        ratio = b / a if a > 0 and not math.isnan(b) else nan
        print(f"{kind + ' (s)':24s}{_num(a, 12)}{_num(b, 12)}{_num(ratio, 8)}")
    a, b = (ours or {}).get("total", nan), (ref or {}).get("total", nan)
    print(f"{'total (s)':24s}{a:12.1f}{b:12.1f}{b / a if a > 0 else nan:7.1f}x"
          + ("" if not ref or set(ref["losses"]) >= {"xent", "logconf"} else
             f"   (reference: {ref_losses} only; w2slab: both losses)"))
    for name in ("weak", "ceiling"):
        print(f"{name + ' accuracy':24s}{(ours or {}).get(name, nan):12.3f}{(ref or {}).get(name, nan):12.3f}")
    for loss in ("xent", "logconf"):
        oa, op, oci = (ours or {}).get("students", {}).get(loss, (nan, nan, (nan, nan)))
        ra, rp, rci = (ref or {}).get("students", {}).get(loss, (nan, nan, (nan, nan)))
        print(f"{loss + ' student':24s}{oa:12.3f}{ra:12.3f}")
        print(f"{'  PGR [95% CI]':24s}{op:6.2f} [{oci[0]:.2f}, {oci[1]:.2f}]  "
              f"{rp:6.2f} [{rci[0]:.2f}, {rci[1]:.2f}]  (nan: the gap is within noise)")
    if ours:
        print(f"w2slab resolved: {json.dumps(ours['resolved'])}")


def seed_noise(by_seed: dict) -> None:
    """Mean and standard deviation over seeds of each side's accuracies and PGR(xent), and their difference."""
    print(f"\nover seeds {', '.join(str(s) for s in by_seed)}: mean (sd)")
    print(f"{'':24s}{'w2slab':>16s}{'reference':>16s}{'w2slab - ref':>16s}")

    def values(side: str, pick) -> np.ndarray:
        return np.array([pick(sides[side]) if side in sides else np.nan for sides in by_seed.values()], dtype=float)

    rows = {"weak accuracy": lambda r: r["weak"], "ceiling accuracy": lambda r: r["ceiling"],
            "xent student": lambda r: r["students"]["xent"][0], "xent PGR": lambda r: r["students"]["xent"][1]}
    for name, pick in rows.items():
        a, b = values("w2slab", pick), values("reference", pick)
        d = a - b

        def cell(v: np.ndarray) -> str:
            v = v[~np.isnan(v)]
            return f"{v.mean():9.3f} ({v.std(ddof=1) if len(v) > 1 else float('nan'):.3f})" if len(v) else "-"

        print(f"{name:24s}{cell(a):>16s}{cell(b):>16s}{cell(d):>16s}")


def report(found: dict, args) -> None:
    print("\n" + "=" * 100)
    print(f"w2slab speed benchmark  ({time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs)")
    rates = found.get("rates")
    if rates:
        print(f"\nmatmul 2048^2 on this machine: fp32 {rates['fp32']:.0f} GFLOP/s, bf16 {rates['bf16']:.0f} GFLOP/s")
    by_seed = found.get("seeds", {})
    for seed, sides in by_seed.items():
        side_by_side(seed, sides.get("w2slab"), sides.get("reference"), args)
    if len(by_seed) > 1:
        seed_noise(by_seed)
    first = next(iter(by_seed.values()), {})
    ours, ref = first.get("w2slab"), first.get("reference")
    if (ours or ref) and found.get("n_params"):
        n = found["n_params"]
        print(f"\nstrong-model training throughput (seed {next(iter(by_seed))}): useful FLOP/s = 6 x {n / 1e6:.1f}M "
              "non-embedding parameters x real tokens per step / step seconds")
        for name, side in (("w2slab", ours), ("reference", ref)):
            if not side:
                continue
            t = throughput(side["strong_log"], n)
            frac = (f" = {t['useful_gflops'] / rates['bf16']:.0%} of bf16, "
                    f"{t['useful_gflops'] / rates['fp32']:.0%} of fp32" if rates else "")
            print(f"  {name:10s} {t['steps']:5d} steps, {t['tokens']:8d} real tokens, padding {t['padding_share']:.0%} "
                  f"of batch tokens, {t['seconds']:.0f} s in steps: {t['useful_gflops']:.0f} GFLOP/s{frac}")
    if found.get("profile"):
        print("\nprofile of 4 strong-model training steps (w2slab defaults), by self CPU time:")
        print(found["profile"])
    ladder = found.get("ladder")
    if ladder:
        configs = ladder_configs(args, (0,))
        pairs = sorted({(c.weak, c.strong) for c in configs})
        datasets = sorted({c.dataset for c in configs})
        print(f"\nprobe-mode ladder ({LADDER_SWEEP.name}): {len(pairs)} weak<strong pairs of "
              f"{', '.join(TEXT_MODELS)} x "
              f"{len(datasets)} datasets ({', '.join(datasets)}) x {len(configs[0].losses)} losses, n_train "
              f"{configs[0].n_train}, n_test {configs[0].n_test}")
        for label, row in ladder.items():
            share = row["feature_seconds"] / row["total"] if row["total"] else float("nan")
            print(f"  {label:12s} {row['experiments']:4d} experiments, {row['results']:4d} results, "
                  f"{row['stages_computed']:5d} stages computed: {row['total']:7.0f} s, feature extraction "
                  f"{row['feature_seconds']:6.0f} s ({share:.0%}), tokenisation {row['token_seconds']:.0f} s")
    print("=" * 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--out-dir", default="runs/speed", help="run roots of the benchmark (replaced)")
    parser.add_argument("--dataset", default="sst2")
    parser.add_argument("--weak", default="minilm-l6")
    parser.add_argument("--strong", default="mpnet-base")
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-test", type=int, default=800)
    parser.add_argument("--max-ctx", type=int, default=128)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", help="comma-separated seeds for the side by side (default: --seed); the first is "
                        "the full comparison, the others measure the seed noise of accuracy and PGR")
    parser.add_argument("--reference-losses", default="xent,logconf", help="the reference's losses on the first seed")
    parser.add_argument("--reference-losses-later", default="xent",
                        help="the reference's losses on the other seeds (each loss recomputes every stage: ~17 min "
                             "per loss on 2 CPU cores)")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--reference-lr", type=float, default=5e-5, help="the reference recipe's learning rate")
    parser.add_argument("--ladder-datasets", help="comma-separated (default: the sweep file's)")
    parser.add_argument("--ladder-n-train", type=int, help="default: the sweep file's")
    parser.add_argument("--ladder-n-test", type=int, help="default: the sweep file's")
    parser.add_argument("--json", help="also write the raw figures here")
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")

    from w2slab.progress import quiet_libraries

    quiet_libraries()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    found: dict = {}
    if "rates" in parts:
        found["rates"] = {"fp32": matmul_rate(torch.float32), "bf16": matmul_rate(torch.bfloat16)}
        print(f"matmul: {found['rates']}", flush=True)
    if "w2slab" in parts or "reference" in parts:
        from w2slab.models.loading import load_classifier, resolve_model

        found["n_params"] = non_embedding_parameters(load_classifier(resolve_model(args.strong)).backbone)
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else [args.seed]
    found["seeds"] = {}
    for i, seed in enumerate(seeds):
        side: dict = {}
        if "w2slab" in parts:
            side["w2slab"] = run_w2slab(out, args, seed)
            print(f"w2slab s{seed}: {side['w2slab']['total']:.0f} s", flush=True)
        if "reference" in parts:
            losses = args.reference_losses if i == 0 else args.reference_losses_later
            side["reference"] = run_reference(out, args, seed, tuple(losses.split(",")))
        found["seeds"][seed] = side
    if "profile" in parts:
        found["profile"] = profile_steps(args)
    if "ladder" in parts:
        found["ladder"] = run_ladder(out, args)
    report(found, args)
    if args.json:
        with contextlib.suppress(OSError):
            Path(args.json).write_text(json.dumps({k: v for k, v in found.items() if k != "profile"}, default=str,
                                                  indent=1))


if __name__ == "__main__":
    main()
