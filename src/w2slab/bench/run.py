"""Run a bench: the suite's experiments as one deduplicated sweep (stages cached under the run root, so an
interrupted bench resumes where it stopped and a second candidate reuses every weak model, ceiling, feature and
xent student), then the tables, written beside the per-example records they are rebuilt from."""

from __future__ import annotations

import json
import platform
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from w2slab.bench import suite
from w2slab.bench.tables import markdown, summarize
from w2slab.results import RECORDS_FILE, ExperimentResult, read_records, write_records


@dataclass
class StageClock:
    """Wall time per stage, from the executor's "[kind] label" line at each stage's start (local executor: one
    stage at a time, so a stage lasts until the next one starts)."""

    started: list[tuple[str, float]] = field(default_factory=list)
    forward: Callable[..., None] | None = None

    def echo(self, *parts, **kwargs) -> None:
        text = " ".join(str(p) for p in parts)
        if text.startswith("["):
            self.started.append((text, time.monotonic()))
        if self.forward is not None:
            self.forward(*parts, **kwargs)

    def seconds(self, end: float) -> list[tuple[str, float]]:
        times = [t for _, t in self.started] + [end]
        return [(label, times[i + 1] - times[i]) for i, (label, _) in enumerate(self.started)]


def cpu_name() -> str:
    """The CPU's model name (bf16 kernels differ between CPUs: every figure says where it came from)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def matmul_rates(n: int = 1024, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of an n x n matmul in fp32 and bf16 on this machine (best of ``repeats``), measured in the run whose
    times they put in context."""
    import torch

    rates = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        best = float("inf")
        for _ in range(repeats):
            began = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - began)
        rates[name] = round(2 * n**3 / best / 1e9, 1)
    return rates


def run_bench(spec: str | dict, *, parts: Sequence[str], tasks: list[suite.SuiteTask], seeds: Sequence[int],
              ladder: str, run_root: str, out: str | None, fit=None, sizes: dict[str, int] | None = None,
              echo: Callable[..., None] | None = None, command: str = "",
              part_tasks: dict[str, list[suite.SuiteTask]] | None = None,
              part_seeds: dict[str, Sequence[int]] | None = None) -> str:
    """Run the bench and write ``out`` (README.md with every table, summary.json, records.jsonl.gz, meta.json);
    return its Markdown. ``part_tasks`` / ``part_seeds`` give a part other tasks or seeds than
    ``tasks`` / ``seeds`` (the fine-tuned part costs minutes per experiment where a probe costs seconds)."""
    import w2slab
    from w2slab.config import RuntimeConfig
    from w2slab.fingerprint import source_digest
    from w2slab.report.records import load_records

    cand = suite.candidate(spec)
    tasks_of = {part: (part_tasks or {}).get(part, tasks) for part in parts}
    seeds_of = {part: list((part_seeds or {}).get(part, seeds)) for part in parts}
    configs = [c for part in parts for c in suite.configs(cand, tasks_of[part], part, seeds_of[part], ladder, sizes,
                                                           fit)]
    clock = StageClock(forward=echo)
    rates = matmul_rates()
    began = time.monotonic()
    result = w2slab.sweep(configs, RuntimeConfig(run_root=run_root, echo=clock.echo))
    seconds = time.monotonic() - began
    ids = {r.experiment_id for r in result.results}
    records = [r for r in load_records(Path(run_root)) if r.experiment_id in ids]
    meta = {"command": command, "candidate": cand.student(), "parts": list(parts), "seeds": seeds_of,
            "ladder": ladder, "tasks": {part: [t.name for t in tasks_of[part]] for part in parts},
            "seconds": round(seconds),
            "computed": len(result.plan.todo()), "n_results": len(records), "cpu": cpu_name(),
            "matmul_gflops": rates, "source_digest": source_digest(), "stage_seconds": stage_costs(clock, began
                                                                                                  + seconds)}
    if out:
        return render_to(Path(out), records, meta)
    return markdown(summarize(records, cand.student(), tuple(parts)), cand.student())


def stage_costs(clock: StageClock, end: float) -> dict[str, float]:
    """Seconds per stage kind, and per (features, model, dataset): the probe suite's cold cost."""
    costs: dict[str, float] = defaultdict(float)
    for label, seconds in clock.seconds(end):
        kind = label[1:label.index("]")]
        costs[kind] += seconds
        if kind == "features":  # "[features] features of MODEL on DATASET sN"
            words = label.split()
            costs[f"features {words[3]} {words[5]}"] += seconds
    return {key: round(value, 1) for key, value in sorted(costs.items())}


def render_to(out: Path, records: list[ExperimentResult], meta: dict) -> str:
    """Write the bench's files to ``out`` from ``records`` and ``meta``; return the README text."""
    out.mkdir(parents=True, exist_ok=True)
    write_records(records, out / RECORDS_FILE)
    (out / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return render(out)


def render(out: Path) -> str:
    """(Re)write ``out``'s README.md and summary.json from its records.jsonl.gz and meta.json, without training."""
    records = read_records(out / RECORDS_FILE)
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    summary = summarize(records, meta["candidate"], tuple(meta["parts"]))
    head = [f"# Bench: {meta['candidate']} on the suite", "",
            f"Made by `{meta['command']}` in {meta['seconds'] / 60:.0f} min ({meta['computed']} stages computed, "
            f"{meta['n_results']} results{superseded_note(meta)}) on {meta['cpu']} (matmul fp32 "
            f"{meta['matmul_gflops']['fp32']:.0f}, bf16 {meta['matmul_gflops']['bf16']:.0f} GFLOP/s in the same run; "
            "bf16 kernels differ between CPUs), "
            f"source digest `{meta['source_digest']}`. Seeds "
            + "; ".join(f"{part}: {', '.join(map(str, seeds))}" for part, seeds in meta["seeds"].items())
            + " share one draw of each task's data (data_seed 0) and vary the partition, initialisations and "
            "shuffles. Rebuilt from `records.jsonl.gz` by `python benchmarks/rebuild.py`.", ""]
    text = "\n".join(head) + "\n" + markdown(summary, meta["candidate"])
    (out / "README.md").write_text(text, encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True, default=str) + "\n",
                                      encoding="utf-8")
    return text


def superseded_note(meta: dict) -> str:
    """``; 40 results of earlier invocations replaced by later reruns`` for a merged folder that replaced some
    (:func:`merge`), else empty."""
    count = int(meta.get("superseded") or 0)
    return f"; {count} results of earlier invocations replaced by later reruns" if count else ""


def _union_per_part(maps) -> dict[str, list]:
    """Each part's values over several invocations, in order, once each (two probe runs of other tasks or seeds)."""
    out: dict[str, list] = {}
    for mapping in maps:
        for part, values in mapping.items():
            out.setdefault(part, [])
            out[part] += [v for v in values if v not in out[part]]
    return out


def _once(records: list[ExperimentResult]) -> list[ExperimentResult]:
    """Each (experiment, student) once: two invocations that share an experiment (a seed rerun beside new seeds) hold
    the same result, which must not count twice; the same experiment with other test outcomes is refused."""
    kept: dict[tuple[str, str], ExperimentResult] = {}
    for record in records:
        key = (record.experiment_id, record.student)
        if key in kept and kept[key].test_correct != record.test_correct:
            raise ValueError(f"bench folders disagree on experiment {key[0]} ({key[1]}): its test outcomes differ; "
                             "merge folders made by one code and machine, or rerun one of them")
        kept.setdefault(key, record)
    return list(kept.values())


def _latest(records: list[ExperimentResult]) -> tuple[list[ExperimentResult], int]:
    """``records`` less those a later one reran: the same config (seed included) and student under another
    experiment id (another code, whose identity every stage holds), the later record kept; and how many were
    replaced. Records come in the order of the folders given, so a slice rerun at a later commit supersedes the
    earlier invocation's results of that slice and nothing else."""
    latest: dict[tuple[str, str], ExperimentResult] = {}
    for record in records:
        latest[(json.dumps(record.config, sort_keys=True, default=str), record.student)] = record
    return list(latest.values()), len(records) - len(latest)


def merge(folders: Sequence[Path], out: Path) -> str:
    """One results folder from the parts of several bench invocations (e.g. the probe part, then the fine-tuned
    part at a later commit): their records together, each invocation's meta kept under ``runs``; the README and
    summary rendered from them; a result two invocations share counts once, and a result a later folder reran
    (:func:`_latest`) is replaced by the rerun (the meta counts them under ``superseded``). Returns the README
    text."""
    metas = [json.loads((Path(f) / "meta.json").read_text(encoding="utf-8")) for f in folders]
    candidates = {m["candidate"] for m in metas}
    if len(candidates) != 1:
        raise ValueError(f"bench folders of different candidates: {sorted(candidates)}")
    records, superseded = _latest(_once([r for f in folders for r in read_records(Path(f) / RECORDS_FILE)]))
    parts = [part for m in metas for part in m["parts"]]
    meta = {"candidate": metas[0]["candidate"], "parts": list(dict.fromkeys(parts)),
            "command": "; ".join(m["command"] for m in metas), "seconds": sum(m["seconds"] for m in metas),
            "computed": sum(m["computed"] for m in metas), "n_results": len(records), "cpu": metas[0]["cpu"],
            "matmul_gflops": metas[0]["matmul_gflops"],
            "source_digest": ", ".join(f"{'+'.join(m['parts'])} {m['source_digest']}" for m in metas),
            "seeds": _union_per_part(m["seeds"] for m in metas), "tasks": _union_per_part(m["tasks"] for m in metas),
            "ladder": ", ".join(dict.fromkeys(m["ladder"] for m in metas)), "superseded": superseded, "runs": metas}
    return render_to(out, records, meta)
