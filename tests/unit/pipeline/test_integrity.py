"""Nothing shared can be corrupted: the stage cache, the model cache and checkpoints stay what they were published as.

A user's edit of an experiment folder never reaches the cache; a cached stage changed in place is refused before
reuse; files follow the umask; a replaced stage never disappears for a reader; a checkpoint loads no pickle.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from w2slab.cli import main
from w2slab.pipeline.store import DONE, StageStore, TamperedStage


def write_outputs(work: Path) -> None:
    (work / "trainable.safetensors").write_bytes(b"weights")
    (work / "logs").mkdir()
    (work / "logs" / "train.jsonl").write_text("{}\n")


# --- 1. kept weights are copies; DONE holds digests that are checked before reuse


def test_done_records_a_digest_of_every_output_and_a_changed_output_is_refused(tmp_path):
    store = StageStore(tmp_path)
    folder = store.get_or_compute("ceiling", "c1", {"label": "ceiling"}, write_outputs)
    digests = json.loads((folder / DONE).read_text())["sha256"]
    assert sorted(digests) == ["logs/train.jsonl", "stage.json", "trainable.safetensors"]
    store.get_or_compute("ceiling", "c1", {"label": "ceiling"}, write_outputs)  # unchanged: reused
    (folder / "trainable.safetensors").write_bytes(b"someone else's weights")
    with pytest.raises(TamperedStage, match=r"stage folder .*c1: trainable.safetensors changed.*--recompute ceiling"):
        store.get_or_compute("ceiling", "c1", {"label": "ceiling"}, write_outputs)
    (folder / "trainable.safetensors").unlink()
    with pytest.raises(TamperedStage, match="trainable.safetensors changed"):
        store.verify("ceiling", "c1")
    folder = store.get_or_compute("ceiling", "c1", {"label": "ceiling"}, write_outputs, force=True)  # --recompute
    store.verify("ceiling", "c1")


def test_an_untouched_stage_is_reused_without_hashing_its_outputs_again(tmp_path, monkeypatch):
    from w2slab.pipeline import store as store_module

    store = StageStore(tmp_path)
    folder = store.get_or_compute("ceiling", "c1", {"label": "ceiling"}, write_outputs)
    hashed = []
    real = store_module.sha256_file
    monkeypatch.setattr(store_module, "sha256_file", lambda path: hashed.append(path.name) or real(path))
    store.verify("ceiling", "c1")
    assert hashed == []  # a large model is not read again on every run
    os.utime(folder / "trainable.safetensors")  # touched, same bytes: hashed, and still the same
    store.verify("ceiling", "c1")
    assert hashed == ["trainable.safetensors"]


def test_a_done_written_before_digests_is_still_reused(tmp_path):
    store = StageStore(tmp_path)
    folder = tmp_path / "stages" / "split" / "old"
    folder.mkdir(parents=True)
    (folder / DONE).write_text(json.dumps({"finished": 1.0}))
    store.verify("split", "old")


def test_kept_weights_are_copies_so_editing_them_leaves_the_cache_alone(tiny_pair, tmp_path, capsys):
    root = tmp_path / "runs"
    args = ["run", "--dataset", tiny_pair.data, "--weak", tiny_pair.weak, "--strong", tiny_pair.strong,
            "--n-train", "64", "--n-test", "32", "--max-ctx", "16", "--loss", "xent", "--weak.mode", "probe",
            "--strong.mode", "probe", "--epochs", "1", "--run-root", str(root), "--name", "kept", "--keep-weights"]
    assert main(args) == 0
    kept = root / "kept" / "weights" / "ceiling.safetensors"
    (stage,) = (root / "stages" / "ceiling").glob("*/trainable.safetensors")
    assert kept.stat().st_nlink == 1 and not os.path.samefile(kept, stage)
    cached = stage.read_bytes()
    kept.write_bytes((root / "kept" / "weights" / "weak.safetensors").read_bytes())  # the user's cp over it
    assert stage.read_bytes() == cached
    assert main(args) == 0  # reused: nothing changed in the cache
    # a cached stage changed in place is refused in one line before any work, and --recompute replaces it
    stage.write_bytes(b"x" + cached[1:])
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file() and "events" not in p.name}
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(stage.parent) in err[0] and "--recompute ceiling" in err[0]
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert main([*args, "--recompute", "ceiling"]) == 0
    StageStore(root).verify("ceiling", stage.parent.name)


# --- 2. every file the library writes follows the umask


@pytest.fixture
def umask_022():
    from w2slab import atomic

    previous = os.umask(0o022)
    atomic.umask.cache_clear()
    yield
    os.umask(previous)
    atomic.umask.cache_clear()


def private_files(root: Path) -> list[str]:
    return [f"{p.relative_to(root)} {oct(p.stat().st_mode & 0o777)}" for p in sorted(root.rglob("*"))
            if not p.is_symlink() and p.stat().st_mode & 0o777 not in (0o644, 0o755)]


def test_safetensors_in_a_stage_and_a_model_cache_follow_the_umask(tmp_path, umask_022):
    import torch
    from safetensors.torch import save_file

    from w2slab import atomic

    def write(work: Path) -> None:
        save_file({"w": torch.zeros(2)}, str(work / "trainable.safetensors"))  # safetensors writes 0600

    folder = StageStore(tmp_path / "runs").get_or_compute("ceiling", "c1", {"label": "ceiling"}, write)
    assert oct((folder / "trainable.safetensors").stat().st_mode & 0o777) == oct(0o644)
    with atomic.staged_dir(tmp_path / "models" / "m") as staging:  # how a converted model enters the cache
        save_file({"w": torch.zeros(2)}, str(staging / "model.safetensors"))
        (staging / "sub").mkdir(mode=0o700)
    assert private_files(tmp_path) == []


def test_a_run_with_kept_weights_writes_no_private_file(tiny_pair, tmp_path, umask_022):
    root = tmp_path / "runs"
    assert main(["run", "--dataset", tiny_pair.data, "--weak", tiny_pair.weak, "--strong", tiny_pair.strong,
                 "--n-train", "64", "--n-test", "32", "--max-ctx", "16", "--loss", "xent", "--weak.mode", "probe",
                 "--strong.mode", "probe", "--epochs", "1", "--run-root", str(root), "--keep-weights"]) == 0
    assert list(root.glob("stages/ceiling/*/trainable.safetensors"))
    assert private_files(root) == []


# --- 4. a replaced stage never disappears for a reader; what a kill leaves is cleaned at the next run


def many_files(count: int):
    def write(work: Path) -> None:
        for i in range(count):
            (work / f"part-{i}.txt").write_text(str(i))
    return write


def test_a_reader_always_sees_a_finished_stage_while_it_is_recomputed(tmp_path):
    import threading

    store = StageStore(tmp_path)
    folder = store.get_or_compute("student", "s1", {"label": "student"}, many_files(1500))
    missing, stop = [], threading.Event()

    def read() -> None:
        while not stop.is_set():
            if not (folder / DONE).exists():
                missing.append(1)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(3):
            store.get_or_compute("student", "s1", {"label": "student"}, many_files(1500), force=True)
    finally:
        stop.set()
        reader.join()
    assert not missing
    assert sorted(p.name for p in folder.parent.iterdir()) == ["s1", "s1.lock"]  # nothing set aside is left


def test_what_a_killed_publish_leaves_is_removed_at_the_next_run(tmp_path):
    import subprocess
    import sys

    from w2slab import atomic

    kind_dir = tmp_path / "stages" / "student"
    (kind_dir / "s1").mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host, pid = atomic._owner().split(".")[0], int(dead.stdout)
    leftovers = [kind_dir / f".s1.replaced.{host}.{pid}.0123abcd", kind_dir / f".s1.incoming.{host}.{pid}.4567",
                 tmp_path / f".exp.staging.{host}.{pid}.k2_x9"]
    live = [kind_dir / f".s1.incoming.{atomic._owner()}.89ab",  # this process: maybe still writing it
            kind_dir / f".s1.incoming.otherhost.{pid}.89ab"]  # another host's: not ours to judge
    for folder in leftovers + live:
        (folder / "sub").mkdir(parents=True)
    StageStore(tmp_path)
    assert [p.exists() for p in leftovers + live] == [False] * len(leftovers) + [True] * len(live)
    assert [row["id"] for row in StageStore(tmp_path).status()] == ["s1"]


def test_without_an_atomic_swap_the_old_folder_is_set_aside_then_deleted_after_the_new_one_is_in(tmp_path,
                                                                                                  monkeypatch):
    from w2slab import atomic

    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)  # macOS, musl, a file system without it
    renames = []
    real_rename = os.rename
    monkeypatch.setattr(atomic.os, "rename", lambda a, b: renames.append((Path(a).name, Path(b).name))
                        or real_rename(a, b))
    final = tmp_path / "stage"
    for version in ("old", "new"):
        with atomic.staged_dir(final) as staging:
            (staging / "v.txt").write_text(version)
    assert (final / "v.txt").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["stage"]
    # the old folder goes aside, the new one comes in right after; only then is the old one deleted
    (old_from, aside), (incoming, new_to) = renames[-2:]
    assert (old_from, new_to) == ("stage", "stage") and ".replaced." in aside and ".incoming." in incoming
