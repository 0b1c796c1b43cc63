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
