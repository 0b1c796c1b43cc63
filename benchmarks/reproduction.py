"""The paper's qualitative claims (Burns et al. 2023), checked on the methods benchmark's runs.

    python benchmarks/methods.py          # first: the runs (probe setting, sst2_sentences, 3 pairs, 10 seeds)
    python benchmarks/reproduction.py     # then: the claims, their table and figures in results/reproduction/

Each claim is marked **holds**, **does not hold** or **inconclusive** from a 95% interval, whichever way it
comes out. Intervals are hierarchical bootstraps: seeds, then test examples (one draw of test indices shared by
every seed and pair, since all runs share the test set), so they cover both the seed-to-seed spread and the
finite test set. Claims:

(a) PGR > 0 for every pair with a real gap (the xent student beats its teacher; a pair has a real gap when at
    least half its seeds' gap intervals exclude 0, and only those seeds enter);
(b) PGR grows with the strong model's size along the ladder (weak minilm-l3; strong minilm-l6, then mpnet-base);
(c) the auxiliary confidence loss helps where the gap is large, and more than where it is small: logconf - xent
    in PGR at the largest gap (claim: > 0), at the smallest (reported), and their difference (claim: > 0);
(d) with longer training on weak labels the student starts to imitate its teacher's errors: the xent student's
    final test accuracy against its best accuracy over training (the trace), and its agreement with the weak
    labels over training.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

PAIRS = (("minilm-l3", "minilm-l6"), ("minilm-l3", "mpnet-base"), ("minilm-l6", "mpnet-base"))
LADDER = (("minilm-l3", "minilm-l6"), ("minilm-l3", "mpnet-base"))  # one weak model, growing strong ones


def verdict(low: float, high: float, positive: bool = True) -> str:
    """``holds`` when the interval is on the claimed side of 0, ``does not hold`` on the other, else
    ``inconclusive``."""
    if math.isnan(low) or math.isnan(high):
        return "inconclusive (no gap)"
    if (low > 0) if positive else (high < 0):
        return "holds"
    if (high < 0) if positive else (low > 0):
        return "does not hold"
    return "inconclusive"


def correctness(records: list[dict]) -> dict[tuple, dict[int, dict[str, np.ndarray]]]:
    """(weak, strong, loss) -> seed -> role -> per-example correctness on the shared test set."""
    from w2slab.report.tables import correct_by_role

    out: dict[tuple, dict[int, dict[str, np.ndarray]]] = defaultdict(dict)
    for r in records:
        out[(r["weak"], r["strong"], r["loss"])][r["seed"]] = correct_by_role(r)
    return out


def pgr_of(means: dict[str, float], key: str) -> float:
    gap = means[f"{key}:ceiling"] - means[f"{key}:weak"]
    return (means[f"{key}:student"] - means[f"{key}:weak"]) / gap if gap > 0 else math.nan


def stacked(groups: dict[str, dict[int, dict[str, np.ndarray]]], seeds: list[int]) -> dict[str, np.ndarray]:
    return {f"{name}:{role}": np.stack([runs[s][role] for s in seeds]).astype(float) for name, runs in groups.items()
            for role in ("weak", "student", "ceiling")}


def claims(records: list[dict], n_boot: int) -> tuple[list[dict], dict]:
    from w2slab.metrics import hierarchical_bootstrap
    from w2slab.report.tables import has_gap

    runs = correctness(records)
    gapped = defaultdict(set)  # pair -> seeds whose own gap interval excludes 0
    seen = defaultdict(set)
    for r in records:
        if r["loss"] == "xent":
            seen[(r["weak"], r["strong"])].add(r["seed"])
            if has_gap(r):
                gapped[(r["weak"], r["strong"])].add(r["seed"])
    for pair in list(gapped):  # a real gap: at least half the seeds have one (else those few are chance picks)
        if 2 * len(gapped[pair]) < len(seen[pair]):
            gapped[pair] = set()
    rows, figures = [], {}

    def seeds_of(*pairs: tuple) -> list[int]:
        common = set.intersection(*(gapped[p] for p in pairs)) if pairs else set()
        return sorted(common)

    # (a) PGR > 0 per pair
    for pair in PAIRS:
        seeds = seeds_of(pair)
        if (*pair, "xent") not in runs or not seeds:
            with_gap = sum(has_gap(r) for r in records if (r["weak"], r["strong"]) == pair and r["loss"] == "xent")
            rows.append({"claim": "a", "what": f"PGR > 0, {pair[0]} -> {pair[1]} (xent)", "value": math.nan,
                         "ci95": [math.nan, math.nan], "seeds": f"{with_gap} of {len(seen[pair])} with a gap",
                         "verdict": "not tested: no real gap (the claim is for pairs with one)"})
            continue
        point, (low, high) = hierarchical_bootstrap(lambda m: pgr_of(m, "x"), stacked(
            {"x": runs[(*pair, "xent")]}, seeds), n_boot=n_boot)
        rows.append({"claim": "a", "what": f"PGR > 0, {pair[0]} -> {pair[1]} (xent)", "value": point,
                     "ci95": [low, high], "seeds": f"{len(seeds)} of {len(runs[(*pair, 'xent')])}",
                     "verdict": verdict(low, high)})
    # (b) PGR along the ladder: the larger strong model minus the smaller one
    seeds = seeds_of(*LADDER)
    if seeds:
        small, large = ({"x": runs[(*pair, "xent")]} for pair in LADDER)
        point, (low, high) = hierarchical_bootstrap(
            lambda m: pgr_of(m, "large") - pgr_of(m, "small"),
            {**stacked({"small": small["x"]}, seeds), **stacked({"large": large["x"]}, seeds)}, n_boot=n_boot)
        rows.append({"claim": "b", "what": f"PGR({LADDER[1][1]}) - PGR({LADDER[0][1]}), weak {LADDER[0][0]}, xent",
                     "value": point, "ci95": [low, high], "seeds": str(len(seeds)), "verdict": verdict(low, high)})
    else:  # a rung of the ladder without an established gap: nothing to compare its PGR with
        rows.append({"claim": "b", "what": f"PGR({LADDER[1][1]}) - PGR({LADDER[0][1]}), weak {LADDER[0][0]}, xent",
                     "value": math.nan, "ci95": [math.nan, math.nan], "seeds": "0",
                     "verdict": "inconclusive (no gap on " + ", ".join(f"{w} -> {s}" for w, s in LADDER
                                                              if not gapped[(w, s)]) + ")"})
    # (c) logconf - xent at the largest and the smallest gap, and whether it is larger at the largest
    gaps = {pair: np.mean([r["ceiling_accuracy"] - r["weak_accuracy"] for r in records
                           if (r["weak"], r["strong"]) == pair and r["loss"] == "xent"]) for pair in PAIRS
            if (*pair, "xent") in runs and (*pair, "logconf") in runs and gapped[pair]}
    if len(gaps) >= 2:
        largest, smallest = max(gaps, key=gaps.get), min(gaps, key=gaps.get)
        for label, pair in (("largest", largest), ("smallest", smallest)):
            seeds = seeds_of(pair)
            point, (low, high) = hierarchical_bootstrap(
                lambda m: pgr_of(m, "logconf") - pgr_of(m, "xent"),
                stacked({"logconf": runs[(*pair, "logconf")], "xent": runs[(*pair, "xent")]}, seeds), n_boot=n_boot)
            rows.append({"claim": "c", "what": f"PGR(logconf) - PGR(xent) at the {label} gap ({gaps[pair]:.3f}, "
                         f"{pair[0]} -> {pair[1]})", "value": point, "ci95": [low, high], "seeds": str(len(seeds)),
                         "verdict": verdict(low, high) if label == "largest" else "reported"})
        seeds = seeds_of(largest, smallest)
        arrays = {**stacked({"Ll": runs[(*largest, "logconf")], "Lx": runs[(*largest, "xent")]}, seeds),
                  **stacked({"Sl": runs[(*smallest, "logconf")], "Sx": runs[(*smallest, "xent")]}, seeds)}
        point, (low, high) = hierarchical_bootstrap(
            lambda m: (pgr_of(m, "Ll") - pgr_of(m, "Lx")) - (pgr_of(m, "Sl") - pgr_of(m, "Sx")), arrays, n_boot=n_boot)
        rows.append({"claim": "c", "what": "the logconf gain is larger at the largest gap than at the smallest "
                     "(difference of the two rows above)", "value": point, "ci95": [low, high],
                     "seeds": str(len(seeds)), "verdict": verdict(low, high)})
    # (d) final accuracy against the accuracy at the step where the seed-averaged curve peaks (one step for all
    # seeds: a per-seed maximum of noisy evaluations would exceed the final value by chance alone)
    if gaps:
        pair = max(gaps, key=gaps.get)
        traced = sorted((r for r in records if (r["weak"], r["strong"]) == pair and r["loss"] == "xent"
                         and r.get("trace")), key=lambda r: r["seed"])
        if traced:
            curves = np.array([[row["accuracy"] for row in r["trace"]] for r in traced])
            peak = int(curves.mean(axis=0).argmax())
            drops = curves[:, -1] - curves[:, peak]
            rng = np.random.default_rng(0)
            boot = [drops[rng.integers(0, len(drops), len(drops))].mean() for _ in range(n_boot)]
            low, high = float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))
            at = traced[0]["trace"][peak]["step_frac"]
            rows.append({"claim": "d", "what": f"final test accuracy - accuracy at {at:.0%} of training, where the "
                         f"seed-averaged curve peaks ({pair[0]} -> {pair[1]}, xent; seeds resampled)",
                         "value": float(drops.mean()), "ci95": [low, high], "seeds": str(len(traced)),
                         "verdict": verdict(low, high, positive=False)})
            figures["trace"] = {"pair": pair, "traces": [r["trace"] for r in traced]}
    figures["ladder"] = {pair: [r["pgr"] for r in records if (r["weak"], r["strong"]) == pair and r["loss"] == "xent"
                                and has_gap(r)] for pair in PAIRS}
    return rows, figures


def finetuned_rows(records: list[dict], n_boot: int) -> list[dict]:
    """Claims (a) and (c) on the methods benchmark's second part, the fine-tuned default pair (5 seeds): the
    paper's own NLP setting, where the strong model is fine-tuned rather than probed."""
    from w2slab.metrics import hierarchical_bootstrap
    from w2slab.report.tables import has_gap

    runs = correctness(records)
    pairs = sorted({(r["weak"], r["strong"]) for r in records})
    rows = []
    for pair in pairs:
        xent = [r for r in records if (r["weak"], r["strong"]) == pair and r["loss"] == "xent"]
        seeds = sorted(r["seed"] for r in xent if has_gap(r))
        where = f"{pair[0]} -> {pair[1]} fine-tuned"
        if 2 * len(seeds) < len(xent) or (*pair, "logconf") not in runs:
            rows.append({"claim": "a, c", "what": where, "value": math.nan, "ci95": [math.nan, math.nan],
                         "seeds": f"{len(seeds)} of {len(xent)} with a gap", "verdict": "not tested: no real gap"})
            continue
        point, (low, high) = hierarchical_bootstrap(lambda m: pgr_of(m, "x"), stacked(
            {"x": runs[(*pair, "xent")]}, seeds), n_boot=n_boot)
        rows.append({"claim": "a", "what": f"PGR > 0, {where} (xent)", "value": point, "ci95": [low, high],
                     "seeds": f"{len(seeds)} of {len(xent)}", "verdict": verdict(low, high)})
        gap = float(np.mean([r["ceiling_accuracy"] - r["weak_accuracy"] for r in xent]))
        point, (low, high) = hierarchical_bootstrap(
            lambda m: pgr_of(m, "logconf") - pgr_of(m, "xent"),
            stacked({"logconf": runs[(*pair, "logconf")], "xent": runs[(*pair, "xent")]}, seeds), n_boot=n_boot)
        rows.append({"claim": "c", "what": f"PGR(logconf) - PGR(xent), {where} (gap {gap:.3f})", "value": point,
                     "ci95": [low, high], "seeds": str(len(seeds)), "verdict": verdict(low, high)})
    return rows


def plot(figures: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    if "trace" in figures:
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        for trace in figures["trace"]["traces"]:
            frac = [row["step_frac"] for row in trace]
            left.plot(frac, [row["accuracy"] for row in trace], color="C0", alpha=0.4)
            right.plot(frac, [row["agreement_transfer"] for row in trace], color="C1", alpha=0.4)
        left.set(xlabel="fraction of training", ylabel="student test accuracy", title="accuracy over training")
        right.set(xlabel="fraction of training", ylabel="agreement with weak labels (transfer)",
                  title="imitation over training")
        fig.suptitle(" -> ".join(figures["trace"]["pair"]) + " (xent, one line per seed)")
        fig.tight_layout()
        paths.append(out / "training_length.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    labels = [f"{w}\n-> {s}" for w, s in figures["ladder"]]
    ax.boxplot([v or [math.nan] for v in figures["ladder"].values()], tick_labels=labels)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(ylabel="PGR (xent; seeds with a gap)", title="PGR along the ladder")
    fig.tight_layout()
    paths.append(out / "pgr_ladder.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-root", default="runs/methods_benchmark", help="the methods benchmark's stages")
    parser.add_argument("--dataset", default="sst2_sentences")
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--methods", default="results/methods", help="the methods benchmark's output folder")
    parser.add_argument("--out", default="results/reproduction")
    args = parser.parse_args()

    from w2slab.report.records import load_records

    listed = Path(args.methods) / "experiments.json"
    if not listed.is_file():
        sys.exit(f"error: {listed} not found; run python benchmarks/methods.py first")
    listing = json.loads(listed.read_text(encoding="utf-8"))  # the methods benchmark's experiments, no older ones
    ids = set(listing["probe"] if isinstance(listing, dict) else listing)  # the ladder claims: the probe part
    finetuned_ids = set(listing.get("full", [])) if isinstance(listing, dict) else set()
    records = [r for r in load_records(Path(args.run_root)) if r["experiment_id"] in ids
               and r["dataset"] == args.dataset and r.get("method", "none") == "none"
               and (r["weak"], r["strong"]) in PAIRS]
    if not records:
        sys.exit(f"error: no runs of {args.dataset} under {args.run_root}; run python benchmarks/methods.py first")
    rows, figures = claims(records, args.n_boot)
    finetuned = [r for r in load_records(Path(args.run_root)) if r["experiment_id"] in finetuned_ids
                 and r.get("method", "none") == "none"]
    rows += finetuned_rows(finetuned, args.n_boot) if finetuned else []
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = plot(figures, out)
    command = "python benchmarks/reproduction.py " + shlex.join(sys.argv[1:])
    lines = ["# The paper's claims, checked", "", f"Made by `{command}` from the runs of `python "
             "benchmarks/methods.py`: its probe part (sst2_sentences, 2,000 transfer / 1,800 test examples) for "
             "every claim, and its fine-tuned default pair (five seeds) for (a) and (c) in the paper's own NLP "
             "setting.", "",
             (__doc__ or "").split("\n\n", 2)[2].strip(), "",
             "| claim | what | value | 95% CI | seeds | verdict |", "|---|---|---:|---:|---:|---|"]
    for r in rows:
        value = "n/a" if math.isnan(r["value"]) else f"{r['value']:+.3f}"
        ci = "" if math.isnan(r["ci95"][0]) else f"[{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}]"
        lines.append(f"| {r['claim']} | {r['what']} | {value} | {ci} | {r['seeds']} | **{r['verdict']}** |")
    lines += ["", "Figures: " + ", ".join(f"`{p.name}`" for p in paths)]
    (out / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "claims.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
