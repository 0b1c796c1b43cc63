"""The stage store: outputs keyed by stage identity under a run root, written atomically.

Layout, per stage:

    RUN_ROOT/stages/<kind>/<id>/            finished: outputs + stage.json + DONE (written last)
    RUN_ROOT/stages/<kind>/<id>.partial/    in progress or interrupted: checkpoints live here
    RUN_ROOT/stages/<kind>/<id>.lock        file lock held by the process computing the stage
    RUN_ROOT/events.jsonl                   append-only log of start/done/failed/cached per stage

A stage is finished iff its final folder holds ``DONE``; the folder only appears by an atomic
``rename`` of the ``.partial`` folder after ``DONE`` is written, so a crash at any point leaves either
nothing, a resumable ``.partial`` folder, or a complete stage, never a half-written "finished" one.
``DONE`` records the sha256 of every output: a finished stage is reused only while its files still match
(a file changed in place, by a user or a hard link to it elsewhere, would otherwise be served as the result).
The lock (``filelock``: released by the OS when its holder dies) makes concurrent writers of the
same stage wait for each other instead of writing the same folder twice.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock, Timeout

from w2slab import atomic
from w2slab.distributed import distributed_state
from w2slab.errors import W2SError
from w2slab.train.trainer import CHECKPOINT_POINTER

DONE = "DONE"
FAILED = "FAILED.json"
#: the key of ``DONE`` holding ``{relative path: sha256}`` of every output of the stage
DIGESTS = "sha256"
#: the key of ``DONE`` holding ``{relative path: [size, mtime_ns, ctime_ns]}`` as published: a file whose stat still
#: matches is not hashed again (any write, ``touch`` or ``cp`` over it sets its ctime to now, which no user can reset),
#: so reusing a finished stage stays cheap when its outputs are large models
STATS = "stat"


class TamperedStage(W2SError):
    """A finished stage whose outputs no longer match the digests recorded when it was published."""


def sha256_file(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def outputs(folder: Path) -> list[Path]:
    """Every file under a stage folder but ``DONE`` itself."""
    return [path for path in sorted(folder.rglob("*")) if path.is_file() and path != folder / DONE]


def file_digests(folder: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every output of a stage folder."""
    return {path.relative_to(folder).as_posix(): sha256_file(path) for path in outputs(folder)}


def file_stats(folder: Path) -> dict[str, list[int]]:
    return {path.relative_to(folder).as_posix(): _stat(path) for path in outputs(folder)}


def _stat(path: Path) -> list[int]:
    info = path.stat()
    return [info.st_size, info.st_mtime_ns, info.st_ctime_ns]


def changed_files(folder: Path) -> list[str]:
    """The outputs of a finished stage folder that differ from (or are missing against) its ``DONE`` digests.

    A ``DONE`` without digests (written before they were recorded) has nothing to check against."""
    try:
        done = json.loads((folder / DONE).read_text())
        recorded, stats = done.get(DIGESTS) or {}, done.get(STATS) or {}
    except (OSError, ValueError, AttributeError):
        return [DONE]
    changed = []
    for name, digest in recorded.items():
        path = folder / name
        if not path.is_file():
            changed.append(name)
        elif _stat(path) != stats.get(name) and sha256_file(path) != digest:
            changed.append(name)
    return changed



class StageStore:
    def __init__(self, root: str | Path, *, create: bool = True):
        self.root = Path(root)
        if create:  # a dry run only reads the store: it leaves no folder behind
            (self.root / "stages").mkdir(parents=True, exist_ok=True)
            self.remove_leftovers()

    def remove_leftovers(self) -> None:
        """The staging and set-aside folders a killed run left (a ``kill -9`` while a stage or an experiment folder
        was being replaced): the next run deletes them, as they hold nothing a finished or resumable stage needs."""
        atomic.remove_leftovers(self.root)
        for kind_dir in (self.root / "stages").iterdir():
            if kind_dir.is_dir():
                atomic.remove_leftovers(kind_dir)

    def final_dir(self, kind: str, stage_id: str) -> Path:
        return self.root / "stages" / kind / stage_id

    def partial_dir(self, kind: str, stage_id: str) -> Path:
        return self.root / "stages" / kind / f"{stage_id}.partial"

    def lock_path(self, kind: str, stage_id: str) -> Path:
        return self.root / "stages" / kind / f"{stage_id}.lock"

    def is_done(self, kind: str, stage_id: str) -> bool:
        return (self.final_dir(kind, stage_id) / DONE).exists()

    def verify(self, kind: str, stage_id: str) -> None:
        """Refuse, in one line, to reuse a finished stage whose outputs were changed after it was published."""
        folder = self.final_dir(kind, stage_id)
        changed = changed_files(folder)
        if changed:
            raise TamperedStage(f"stage folder {folder}: {', '.join(changed[:3])}"
                                f"{' and more' if len(changed) > 3 else ''} changed since the stage finished "
                                f"(sha256 differs from its {DONE}); rerun with --recompute {kind}")

    def log_event(self, event: str, kind: str, stage_id: str, **extra) -> None:
        row = {"time": round(time.time(), 3), "event": event, "kind": kind, "id": stage_id, "pid": os.getpid(),
               **extra}
        try:
            with open(self.root / "events.jsonl", "a") as fh:  # one short line per write: atomic append
                fh.write(json.dumps(row) + "\n")
        except OSError:
            if event != "cached":
                raise
            # reading finished stages from a read-only run root (a shared archive) must not fail on the log

    def events(self) -> list[dict]:
        path = self.root / "events.jsonl"
        if not path.exists():
            return []
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a kill mid-write
        return rows

    def get_or_compute(self, kind: str, stage_id: str, description: dict, compute: Callable[[Path], None], *,
                       force: bool = False) -> Path:
        """Return the stage's finished folder, computing it (at most once, under a lock) if needed.

        ``compute(work_dir)`` writes the outputs into ``work_dir``, which persists across crashes so
        training can resume from the checkpoints it left there. ``force`` computes it again from a fresh
        start even when it is finished (``--recompute``); the finished folder is replaced only on success.
        """
        distributed = distributed_state()
        if distributed:  # every rank must agree on cached vs computed before anyone starts
            distributed.wait_for_everyone()
        final = self.final_dir(kind, stage_id)
        if (final / DONE).exists() and not force:
            self.verify(kind, stage_id)
            self.log_event("cached", kind, stage_id)
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        if distributed and not distributed.is_main_process:
            # under `accelerate launch` every rank takes part in the training; only the main one writes
            with tempfile.TemporaryDirectory() as scratch:
                compute(Path(scratch))
            distributed.wait_for_everyone()
            return final
        try:
            return self._run_locked(kind, stage_id, description, compute, final, force)
        finally:
            if distributed:
                distributed.wait_for_everyone()

    def _run_locked(self, kind: str, stage_id: str, description: dict, compute: Callable[[Path], None],
                    final: Path, force: bool) -> Path:
        with FileLock(str(self.lock_path(kind, stage_id))):
            if (final / DONE).exists() and not force:  # finished by a concurrent writer while we waited
                self.verify(kind, stage_id)
                self.log_event("cached", kind, stage_id)
                return final
            work = self.partial_dir(kind, stage_id)
            if force and work.exists():
                shutil.rmtree(work)  # a forced recomputation starts afresh, not from old checkpoints
            if (work / DONE).exists():  # killed between DONE and the rename: finished, only not yet in place
                atomic.publish_dir(work, final)
                self.log_event("done", kind, stage_id, recovered=True)
                return final
            work.mkdir(exist_ok=True)
            (work / FAILED).unlink(missing_ok=True)
            atomic.write_json(work / "stage.json", description)
            self.log_event("start", kind, stage_id, resumed=(work / CHECKPOINT_POINTER).exists(), forced=force)
            try:
                compute(work)
            except KeyboardInterrupt:
                self.log_event("interrupted", kind, stage_id)  # no FAILED marker: it resumes from its checkpoint
                raise
            except BaseException as exc:
                try:  # best effort: on a full disk these writes fail too, and the stage's own error is the news
                    atomic.write_json(work / FAILED, {"error": f"{type(exc).__name__}: {exc}"})
                    self.log_event("failed", kind, stage_id, error=f"{type(exc).__name__}: {exc}"[:500])
                except OSError:
                    pass
                raise
            self.remove_checkpoints(work)
            atomic.follow_umask(work)  # modes first: publishing changes nothing the stats below record
            atomic.fsync_tree(work)  # every output on disk before the marker that says they are complete
            atomic.write_json(work / DONE, {"finished": time.time(), DIGESTS: file_digests(work),
                                            STATS: file_stats(work)})
            atomic.publish_dir(work, final)  # replaces a forced stage's earlier folder only now
            self.log_event("done", kind, stage_id)
        return final

    @staticmethod
    def remove_checkpoints(work: Path) -> None:
        """Checkpoints are only for resuming. The pointer goes first: a kill mid-way then leaves folders that
        nothing points to (a fresh start), never a pointer to a deleted checkpoint."""
        pointer = work / CHECKPOINT_POINTER
        if pointer.exists():
            pointer.unlink()
            atomic.fsync_dir(work)
        for leftover in sorted(work.glob("checkpoint*")):
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)

    def status(self) -> list[dict]:
        """Every stage under the root with its state: done, running, failed or interrupted."""
        rows = []
        for kind_dir in sorted(p for p in (self.root / "stages").iterdir() if p.is_dir()):
            for entry in sorted(kind_dir.iterdir()):
                if not entry.is_dir() or entry.name.startswith("."):  # a folder being replaced, not a stage
                    continue
                stage_id = entry.name.removesuffix(".partial")
                if not entry.name.endswith(".partial"):
                    state = "done" if (entry / DONE).exists() else "incomplete"
                elif self._locked(kind_dir.name, stage_id):
                    state = "running"
                elif (entry / FAILED).exists():
                    state = "failed"
                else:
                    state = "interrupted"
                rows.append({"kind": kind_dir.name, "id": stage_id, "state": state,
                             "label": _read_label(entry / "stage.json")})
        return rows

    def _locked(self, kind: str, stage_id: str) -> bool:
        if not self.lock_path(kind, stage_id).exists():
            return False
        try:
            with FileLock(str(self.lock_path(kind, stage_id)), timeout=0):
                return False
        except Timeout:
            return True


def _read_label(path: Path) -> str:
    """A stage's label from its stage.json; a missing or torn file (a kill mid-write) gives a placeholder."""
    try:
        description = json.loads(path.read_text())
    except FileNotFoundError:
        return ""
    except (OSError, ValueError):
        return "(stage.json unreadable: cut short by a kill)"
    return str(description.get("label", "")) if isinstance(description, dict) else ""
