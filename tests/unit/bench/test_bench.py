"""``w2s bench``: the suite's tables on records with known truths, the statistics across tasks, and the command."""

from __future__ import annotations

import gzip
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from w2slab import stats
from w2slab.bench import suite, tables
from w2slab.diagnostics import pack_correct
from w2slab.errors import W2SError
from w2slab.results import RECORDS_FILE, ExperimentResult, read_records, read_results, write_records

N_TEST, N_VAL = 600, 300


def _outcomes(rng, accuracy: float, n: int) -> np.ndarray:
    return rng.random(n) < accuracy


def make_records(task: str, weak: str, strong: str, accuracies: dict[str, float], *, seeds=range(5),
                 validation: dict[str, float] | None = None, suspect: str = "", loss_gain: float = 0.0,
                 mode: str = "probe", seed_of_rng: int = 0) -> list[ExperimentResult]:
    """xent and logconf records of one (task, pair): weak/ceiling/xent with the given accuracies, logconf
    ``loss_gain`` above xent; a shared test set (seeds crossed)."""
    rng = np.random.default_rng(seed_of_rng)
    validation = validation or accuracies
    config = {"dataset": task, "n_test": N_TEST, "n_val": N_VAL, "data_seed": 0,
              "weak_train": {"mode": mode}, "strong_train": {"mode": mode}}
    out = []
    for seed in seeds:
        weak_ok = _outcomes(rng, accuracies["weak"], N_TEST)
        ceiling = _outcomes(rng, accuracies["ceiling"], N_TEST)
        xent = _outcomes(rng, accuracies["student"], N_TEST)
        logconf = xent | (rng.random(N_TEST) < loss_gain)
        val = {role: float(validation[role]) for role in ("weak", "ceiling")}
        for loss, student in (("xent", xent), ("logconf", logconf)):
            out.append({
                "dataset": task, "weak": weak, "strong": strong, "loss": loss, "method": "none", "seed": seed,
                "weak_accuracy": float(weak_ok.mean()), "ceiling_accuracy": float(ceiling.mean()),
                "student_accuracy": float(student.mean()), "ceiling_over_chance": float(ceiling.mean()) - 0.5,
                "suspect": [suspect] if suspect else [], "test_size": N_TEST,
                "experiment_id": f"{task}{weak}{mode}{seed}",
                "test_correct": {"weak": pack_correct(weak_ok), "ceiling": pack_correct(ceiling),
                                 "student": pack_correct(student)},
                "config": {**config, "weak": weak, "strong": strong, "seed": seed,
                           "losses": [{"name": loss}], "methods": [{"name": "none"}]},
                "validation": {"weak_accuracy": val["weak"], "ceiling_accuracy": val["ceiling"]},
                "resolved": {}, "gap_ci95": [0.01, 0.2], "pgr": math.nan})
    return [ExperimentResult.from_dict(record) for record in out]


def test_ladder_marks_gaps_and_refuses_weak_at_chance_and_unconverged_ceilings():
    records = (make_records("a", "s", "l", {"weak": .70, "ceiling": .85, "student": .80})
               + make_records("b", "s", "l", {"weak": .70, "ceiling": .70, "student": .70}, seed_of_rng=1)
               + make_records("c", "s", "l", {"weak": .50, "ceiling": .80, "student": .60}, seed_of_rng=2)
               + make_records("d", "s", "l", {"weak": .70, "ceiling": .85, "student": .80}, seed_of_rng=3,
                              suspect="ceiling did not converge: its training loss ended at 0.69")
               + make_records("e", "s", "l", {"weak": .45, "ceiling": .51, "student": .50}, seed_of_rng=4,
                              suspect="ceiling did not converge: its training loss ended at 0.69"))
    ladder = {row["task"]: row for row in tables.ladder_rows(records)}
    assert ladder["a"]["w2s"] and ladder["a"]["why_not"] == ""
    assert ladder["a"]["gap_lo"] > 0
    assert not ladder["b"]["w2s"] and ladder["b"]["why_not"].startswith("no gap")
    assert not ladder["c"]["w2s"] and ladder["c"]["why_not"].startswith("weak model at chance")
    assert not ladder["d"]["w2s"] and "ceiling did not converge" in ladder["d"]["why_not"]
    # a ceiling at chance is named for what it is, not an unfinished training: the task is beyond the strong model
    assert not ladder["e"]["w2s"] and ladder["e"]["why_not"].startswith("strong model at chance (0.5")
    assert ladder["e"]["why_not"].endswith("it cannot learn this task at this size")
    # a task without a W2S experiment is in no W2S statistic
    summary = tables.summarize(records, "logconf", ("probe",))
    assert {row["task"] for row in summary["probe"]["w2s"]} == {"a"}
    assert summary["probe"]["pooled"]["tasks"] == 1


def test_primary_pair_is_chosen_on_validation_not_test():
    # pair l2 has the larger test gap, pair l1 the larger validation gap: the leaderboard reads l1
    records = (make_records("a", "s", "l1", {"weak": .70, "ceiling": .80, "student": .76},
                            validation={"weak": .60, "ceiling": .90})
               + make_records("a", "s", "l2", {"weak": .70, "ceiling": .95, "student": .85},
                              validation={"weak": .70, "ceiling": .75}, seed_of_rng=1))
    summary = tables.summarize(records, "logconf", ("probe",))
    (row,) = summary["probe"]["leaderboard"]
    assert row["strong"] == "l1"


def test_leaderboard_pools_tasks_with_sign_test_and_holm():
    records = []
    for i, task in enumerate("abcdefg"):
        records += make_records(task, "s", "l", {"weak": .65, "ceiling": .85, "student": .78}, loss_gain=.08,
                                seed_of_rng=i)
    summary = tables.summarize(records, "logconf", ("probe",))["probe"]
    primaries, pooled = summary["leaderboard"], summary["pooled"]
    assert len(primaries) == 7 and all(row["comparisons"] == 7 for row in primaries)
    assert pooled["wins"] == 7 and pooled["decided"] == 7
    assert pooled["p_sign"] == pytest.approx(2 / 2**7)
    assert pooled["diff_lo"] > 0  # every task gains about .08 * .22
    assert all(row["claimed"] for row in primaries)  # a real gain of ~.017 on 5 x 600 examples survives Holm
    assert pooled["xent_pgr_above_0"] == 7
    lo, hi = pooled["xent_median_lo"], pooled["xent_median_hi"]
    assert lo <= pooled["xent_median_pgr"] <= hi
    text = tables.markdown(tables.summarize(records, "logconf", ("probe",)), "logconf")
    assert "sign test: 7 of 7" in text and "published PGR" in text


def test_median_over_tasks_covers_the_tasks_median():
    """Coverage by simulation: tasks' true PGRs from a skewed distribution, each estimated with noise; the order-
    statistic interval of the estimates covers the median of the estimates' distribution at >= 95%."""
    rng = np.random.default_rng(0)
    covered, trials, n_tasks = 0, 2000, 11
    # the estimate distribution: true PGR ~ Gamma-shaped + symmetric noise; its median by a large sample
    population = rng.gamma(2.0, 0.2, 400_000) + rng.normal(0, 0.1, 400_000)
    median = float(np.median(population))
    for _ in range(trials):
        values = rng.gamma(2.0, 0.2, n_tasks) + rng.normal(0, 0.1, n_tasks)
        estimate = stats.median_over_tasks(values)
        covered += estimate.ci95[0] <= median <= estimate.ci95[1]
    assert covered / trials >= 0.975  # the interval's own coverage for 11 tasks is .988


def test_mean_over_tasks_and_sign_test():
    estimate = stats.mean_over_tasks([0.1, 0.2, 0.3])
    assert estimate.value == pytest.approx(0.2) and estimate.df == 2
    assert estimate.ci95[0] == pytest.approx(0.2 - 4.302653 * 0.1 / math.sqrt(3), rel=1e-5)
    assert stats.sign_test([0.1, -0.1, 0.0, 0.2]) == (2, 3, pytest.approx(1.0))
    assert stats.median_over_tasks([]).tasks == 0


def test_records_round_trip(tmp_path):
    records = make_records("a", "s", "l", {"weak": .7, "ceiling": .85, "student": .8})
    write_records(records, tmp_path / "r.jsonl.gz")
    first = (tmp_path / "r.jsonl.gz").read_bytes()
    write_records(records, tmp_path / "r.jsonl.gz")
    assert (tmp_path / "r.jsonl.gz").read_bytes() == first  # byte-stable
    back = read_records(tmp_path / "r.jsonl.gz")
    assert [r.test_correct for r in back] == [r.test_correct for r in sorted(
        records, key=lambda r: (r.experiment_id, r.student))]
    # a results folder that holds only its records is what w2s report reads its figures from
    (tmp_path / "folder").mkdir()
    write_records(records, tmp_path / "folder" / RECORDS_FILE)
    assert [r.test_correct for r in read_results(tmp_path / "folder")] == [r.test_correct for r in back]
    # a damaged records file is one error naming it, not a traceback from gzip or json
    for damaged in (b"not gzip", gzip.compress(b"not json\n")):
        (tmp_path / "folder" / RECORDS_FILE).write_bytes(damaged)
        with pytest.raises(W2SError, match=f"{RECORDS_FILE}: not kept records"):
            read_results(tmp_path / "folder")


def test_candidate_resolves_losses_and_methods():
    assert suite.candidate("logconf").losses()[0] == "xent"
    method = suite.candidate("select")
    assert method.kind == "method" and any(getattr(m, "name", None) == "subset" for m in method.methods())
    with pytest.raises(Exception, match="neither a registered loss nor a method"):
        suite.candidate("nonsense")


def test_every_suite_task_names_a_registered_dataset_and_choice_tasks_are_pairs():
    from w2slab.data.registry import DATASETS

    assert all(DATASETS.find(task.dataset) is not None for task in suite.TASKS.values())
    choices = [task for task in suite.TASKS.values() if task.name.endswith("_choices")]
    assert {task.name.removesuffix("_choices") for task in choices} <= set(suite.TASKS.names())
    assert choices and all("scored as a pair" in task.formatting for task in choices)


def test_gemma_ladder_puts_every_other_packaged_model_under_gemma():
    configs = suite.configs(suite.candidate("logconf"), [suite.TASKS.get("piqa_choices")], "probe", [0, 1], "gemma")
    pairs = {(c.weak, c.strong) for c in configs}
    assert pairs == {(weak, "gemma3-270m") for weak in ("minilm-l3", "minilm-l6", "mpnet-base", "smollm2-135m")}
    assert len(configs) == 8 and {c.dataset for c in configs} == {"piqa_choices"}


def test_an_image_task_runs_its_own_pair_whatever_the_ladder():
    """fashion_mnist: the CNN from scratch labels for EfficientNet-Lite0's and -Lite2's probes, trained as ``w2s run``
    trains them on images, in the fine-tuned part; no probe part (the CNN has no pretrained features)."""
    from w2slab.config import role_default

    task = suite.TASKS.get("fashion_mnist")
    assert task.modality == "image" and task in suite.task_names(None)
    for ladder in suite.LADDERS:
        assert not suite.configs(suite.candidate("logconf"), [task], "probe", [0], ladder)
        configs = suite.configs(suite.candidate("logconf"), [task], "finetune", [0], ladder)
        assert [(c.weak, c.strong) for c in configs] == [("cnn-small", "efficientnet-lite0"),
                                                         ("cnn-small", "efficientnet-lite2")]
        for config in configs:
            assert config.weak_train == role_default("image", "weak")
            assert config.strong_train == role_default("image", "strong")
            assert suite.part_of({"config": config.to_dict()}) == "finetune"
    text = suite.configs(suite.candidate("logconf"), [suite.TASKS.get("imdb"), task], "finetune", [0], "seed")
    assert [(c.dataset, c.weak, c.strong) for c in text] == [("imdb", "minilm-l3", "gemma3-270m"),
                                                             ("fashion_mnist", "cnn-small", "efficientnet-lite0"),
                                                             ("fashion_mnist", "cnn-small", "efficientnet-lite2")]


def _w2s(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "w2slab.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=900)


@pytest.mark.parametrize("args,message", [
    (["nonsense"], "neither a registered loss nor a method"),
    (["logconf", "--parts", "bogus"], "--parts: unknown part bogus"),
    (["logconf", "--seeds", "a,b"], "--seeds"),
    (["logconf", "--tasks", "none", "--task", "missing.jsonl"], "--task missing.jsonl: no such file"),
    (["logconf", "--tasks", "nope"], "nope"),
])
def test_bad_bench_input_is_one_line_exit_2(tmp_path, args, message):
    done = _w2s("bench", *args, "--run-root", str(tmp_path / "runs"), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # refused before any work


@pytest.mark.integration
def test_bench_runs_a_users_file_end_to_end(tmp_path, data_root):
    """``w2s bench logconf --task my.jsonl`` on the smallest ladder: tables written, records rebuild them."""
    from w2slab.data import load_task

    task = load_task("sst2_sentences", data_root=data_root)
    rows = [{"text": r["text"], "label": int(r["label"])} for r in task.train[:1400]]
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    done = _w2s("bench", "logconf", "--tasks", "none", "--task", str(path), "--ladder", "minilm", "--seeds", "0,1",
                "--n-train", "300", "--n-test", "200", "--n-val", "100", "--run-root", str(tmp_path / "runs"),
                "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    out = tmp_path / "runs" / "bench_logconf"
    readme = (out / "README.md").read_text()
    assert "| probe | mine | minilm-l3 -> minilm-l6 | 2 | 200 |" in readme
    meta = json.loads((out / "meta.json").read_text())
    assert meta["n_results"] == 4 and meta["matmul_gflops"]["fp32"] > 0
    from w2slab.bench.run import render

    assert render(out) == readme  # rebuilt from the records alone


def test_example_stores_key_on_the_feature_code_only(tmp_path):
    """An edit to a loss keeps every cached feature (the probe suite's whole cost); an edit to loading makes new."""
    import shutil

    from w2slab.fingerprint import PACKAGE_DIR, example_code_digest, source_digest

    copy = tmp_path / "w2slab"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = (example_code_digest(copy), source_digest(copy))
    example_code_digest.cache_clear(), source_digest.cache_clear()
    (copy / "losses" / "base.py").write_text((copy / "losses" / "base.py").read_text() + "\n# edited\n")
    after_loss = (example_code_digest(copy), source_digest(copy))
    example_code_digest.cache_clear(), source_digest.cache_clear()
    (copy / "models" / "loading.py").write_text((copy / "models" / "loading.py").read_text() + "\n# edited\n")
    after_loading = example_code_digest(copy)
    example_code_digest.cache_clear(), source_digest.cache_clear()
    assert after_loss[0] == before[0] and after_loss[1] != before[1]
    assert after_loading != before[0]


def test_merge_joins_the_parts_of_two_invocations(tmp_path):
    from w2slab.bench.run import merge, render

    meta = {"candidate": "logconf", "command": "w2s bench logconf", "seconds": 60, "computed": 3, "n_results": 10,
            "cpu": "a CPU", "matmul_gflops": {"fp32": 100.0, "bf16": 400.0}, "source_digest": "abc", "ladder": "seed"}
    folders = []
    for part, mode, rng in (("probe", "probe", 0), ("finetune", "full", 1)):
        folder = tmp_path / part
        folder.mkdir()
        write_records(make_records("a", "s", "l", {"weak": .7, "ceiling": .85, "student": .8}, mode=mode,
                                   seed_of_rng=rng), folder / "records.jsonl.gz")
        (folder / "meta.json").write_text(json.dumps({**meta, "parts": [part], "seeds": {part: [0, 1, 2, 3, 4]},
                                                      "tasks": {part: ["a"]}}))
        folders.append(folder)
    text = merge(folders, tmp_path / "both")
    assert "## probe: leaderboard" in text and "## finetune: leaderboard" in text
    assert render(tmp_path / "both") == text
    assert len(read_records(tmp_path / "both" / "records.jsonl.gz")) == 20
    again = merge([*folders, folders[0]], tmp_path / "again")  # a folder given twice: its results counted once
    assert len(read_records(tmp_path / "again" / "records.jsonl.gz")) == 20
    assert again[again.index("## Ladder"):] == text[text.index("## Ladder"):]
    other = tmp_path / "other"
    other.mkdir()
    write_records(make_records("a", "s", "l", {"weak": .7, "ceiling": .85, "student": .8}, seed_of_rng=9),
                  other / "records.jsonl.gz")
    (other / "meta.json").write_text((folders[0] / "meta.json").read_text())
    with pytest.raises(ValueError, match="test outcomes differ"):
        merge([folders[0], other], tmp_path / "clash")


def test_merge_replaces_results_a_later_folder_reran(tmp_path):
    """A slice rerun at a later commit (same configs, other experiment ids) supersedes the earlier invocation's
    results of that slice, and only those; the meta says how many."""
    from w2slab.bench.run import merge

    meta = {"candidate": "logconf", "command": "w2s bench logconf", "seconds": 60, "computed": 3, "n_results": 10,
            "cpu": "a CPU", "matmul_gflops": {"fp32": 100.0, "bf16": 400.0}, "source_digest": "abc", "ladder": "seed",
            "parts": ["probe"], "seeds": {"probe": [0, 1, 2, 3, 4]}, "tasks": {"probe": ["a", "b"]}}
    first = tmp_path / "first"
    first.mkdir()
    write_records(make_records("a", "s", "l", {"weak": .7, "ceiling": .85, "student": .8})
                  + make_records("b", "s", "l", {"weak": .7, "ceiling": .85, "student": .8}),
                  first / "records.jsonl.gz")
    (first / "meta.json").write_text(json.dumps(meta))
    rerun = tmp_path / "rerun"
    rerun.mkdir()
    again = make_records("a", "s", "l", {"weak": .7, "ceiling": .85, "student": .8}, seeds=range(3), seed_of_rng=5)
    for record in again:
        record.experiment_id += "-later"  # the same config at another commit
    write_records(again, rerun / "records.jsonl.gz")
    (rerun / "meta.json").write_text(json.dumps({**meta, "tasks": {"probe": ["a"]}}))
    merge([first, rerun], tmp_path / "merged")
    merged = read_records(tmp_path / "merged" / "records.jsonl.gz")
    assert len(merged) == 20
    ids = {(r.dataset, r.seed): r.experiment_id for r in merged}
    assert all(ids[("a", seed)].endswith("-later") for seed in range(3))
    assert not ids[("a", 3)].endswith("-later") and not ids[("b", 0)].endswith("-later")
    assert json.loads((tmp_path / "merged" / "meta.json").read_text())["superseded"] == 6
    assert "20 results; 6 results of earlier invocations replaced by later reruns)" in (
        tmp_path / "merged" / "README.md").read_text()


def test_published_numbers_stand_beside_a_choice_task_as_binarised():
    from w2slab.bench import published

    assert published.beside("sciq") == "openai 0.33 / 0.31; eleuther 0.56 / 0.60"
    assert published.beside("sciq_choices") == "openai 0.33 / 0.31; eleuther 0.56 / 0.60 (binarised)"
    assert published.beside("imdb") == "" and published.beside("imdb_choices") == ""
