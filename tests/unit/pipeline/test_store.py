"""The stage store's states without any training: done, failed, rerun after failure, interrupted, running."""

from __future__ import annotations

import json

import pytest
from filelock import FileLock

from w2slab.pipeline.store import DONE, FAILED, StageStore


def write_answer(work) -> None:
    (work / "answer.txt").write_text("42")


def states(store: StageStore) -> dict[str, str]:
    return {row["id"]: row["state"] for row in store.status()}


def test_a_computed_stage_is_done_and_then_reused(tmp_path):
    store = StageStore(tmp_path)
    calls = []
    for _ in range(2):
        folder = store.get_or_compute("split", "a1", {"label": "first"}, lambda work: calls.append(write_answer(work)))
    assert len(calls) == 1 and (folder / "answer.txt").read_text() == "42" and (folder / DONE).exists()
    assert states(store) == {"a1": "done"}
    assert [e["event"] for e in store.events()] == ["start", "done", "cached"]
    assert not (tmp_path / "stages" / "split" / "a1.partial").exists()


def test_a_failed_stage_is_marked_and_a_rerun_computes_it(tmp_path):
    store = StageStore(tmp_path)

    def fail(work):
        (work / "half.txt").write_text("half")
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        store.get_or_compute("ceiling", "b2", {"label": "ceiling"}, fail)
    assert states(store) == {"b2": "failed"}
    partial = tmp_path / "stages" / "ceiling" / "b2.partial"
    assert json.loads((partial / FAILED).read_text())["error"] == "ValueError: boom"
    assert not store.is_done("ceiling", "b2")
    folder = store.get_or_compute("ceiling", "b2", {"label": "ceiling"}, write_answer)
    assert states(store) == {"b2": "done"} and not (folder / FAILED).exists()
    assert [e["event"] for e in store.events()] == ["start", "failed", "start", "done"]


def test_a_partial_stage_without_a_lock_holder_is_interrupted_and_resumes_there(tmp_path):
    store = StageStore(tmp_path)
    partial = tmp_path / "stages" / "student" / "c3.partial"
    partial.mkdir(parents=True)
    (partial / "stage.json").write_text(json.dumps({"label": "student xent"}))
    (partial / "checkpoint-latest.json").write_text("{}")  # what a killed training leaves behind
    assert store.status() == [{"kind": "student", "id": "c3", "state": "interrupted", "label": "student xent"}]
    seen = []
    store.get_or_compute("student", "c3", {"label": "student xent"},
                         lambda work: seen.append(sorted(p.name for p in work.iterdir())))
    assert "checkpoint-latest.json" in seen[0]  # the computation found what the killed run left
    assert store.events()[0]["resumed"] is True
    assert states(store) == {"c3": "done"}
    assert not list((tmp_path / "stages" / "student" / "c3").glob("checkpoint*"))  # cleaned once done


def test_a_stage_whose_lock_is_held_is_running(tmp_path):
    store = StageStore(tmp_path)
    partial = tmp_path / "stages" / "weak_train" / "d4.partial"
    partial.mkdir(parents=True)
    with FileLock(str(store.lock_path("weak_train", "d4"))):
        assert states(store) == {"d4": "running"}
    assert states(store) == {"d4": "interrupted"}


def test_finished_stages_are_served_when_the_event_log_cannot_be_written(tmp_path, monkeypatch):
    """A run root on read-only storage (a shared archive) still serves what it holds; new work still fails loudly."""
    import builtins

    store = StageStore(tmp_path)
    store.get_or_compute("split", "a1", {"label": "first"}, write_answer)
    real_open = builtins.open

    def read_only(path, mode="r", *args, **kwargs):
        if str(path).endswith("events.jsonl") and "a" in mode:
            raise PermissionError(13, "Read-only file system", str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", read_only)
    folder = store.get_or_compute("split", "a1", {"label": "first"}, pytest.fail)  # cached: served, not computed
    assert (folder / "answer.txt").read_text() == "42"
    with pytest.raises(PermissionError):
        store.get_or_compute("split", "b2", {"label": "second"}, write_answer)


def test_a_full_disk_stops_the_run_in_one_line_and_the_rerun_finishes_from_the_store(tiny_pair, tmp_path, capsys,
                                                                                     monkeypatch):
    """Disk full was an ``OSError`` traceback: now one line, exit 1, the finished stages kept and reused."""
    import dataclasses
    import errno

    from w2slab.cli import main
    from w2slab.pipeline.kinds import STAGES

    real = STAGES.get("student")

    def full(stage, inputs, work, runtime):
        raise OSError(errno.ENOSPC, "No space left on device", str(work / "model.safetensors"))

    argv = ["run", "--dataset", tiny_pair.data, "--weak", tiny_pair.weak, "--strong", tiny_pair.strong, "--n-train",
            "64", "--n-test", "32", "--max-ctx", "16", "--loss", "xent", "--weak-mode", "probe", "--strong-mode",
            "probe", "--epochs", "1", "--out-dir", str(tmp_path)]
    STAGES.register("student", dataclasses.replace(real, compute_ref=full), replace=True)
    try:
        capsys.readouterr()
        assert main(argv) == 1
    finally:
        STAGES.register("student", real, replace=True)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "no space left on the device writing" in lines[0] and "rerun" in lines[0], lines
    assert "Traceback" not in captured.err + captured.out
    stage_root = tmp_path / "stages"
    done_before = {p.parent.parent.name for p in stage_root.glob("*/*/DONE")}
    assert {"split", "weak_train", "ceiling"} <= done_before and "student" not in done_before
    assert not list(tmp_path.glob("experiments/*/result.json"))  # no experiment was published half done
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "[weak_train]" not in out and "[student]" in out  # only what had not finished ran again
    assert list((tmp_path / "experiments").glob("*/result.json"))
