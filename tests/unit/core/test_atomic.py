"""Atomic publishing: concurrent writers of one folder, and permissions that follow the umask."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

from w2slab import atomic


def _publish_many(final: str, writer: int, times: int, errors) -> None:
    for i in range(times):
        try:
            with atomic.staged_dir(final) as staging:
                for name in ("a.txt", "b.txt"):  # two files: a reader must see both from one writer
                    (staging / name).write_text(f"{writer}:{i}")
        except Exception as exc:  # noqa: BLE001 - the test counts them
            errors.put(f"{type(exc).__name__}: {exc}")


def test_two_writers_publishing_one_folder_never_fail_and_leave_one_complete_folder(tmp_path):
    final = tmp_path / "experiment"
    context = multiprocessing.get_context("fork")
    errors = context.Queue()
    writers = [context.Process(target=_publish_many, args=(str(final), w, 200, errors)) for w in (1, 2)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(120)
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    assert failures == [] and all(p.exitcode == 0 for p in writers)
    assert (final / "a.txt").read_text() == (final / "b.txt").read_text()  # one writer's complete folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiment"]  # nothing set aside is left over


def test_published_files_and_folders_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic.umask.cache_clear()
        atomic.write_json(tmp_path / "result.json", {"a": 1})
        with atomic.staged_dir(tmp_path / "folder") as staging:
            (staging / "x").write_text("x")
    finally:
        os.umask(old)
        atomic.umask.cache_clear()
    assert stat.S_IMODE((tmp_path / "result.json").stat().st_mode) == 0o644  # mkstemp alone gives 0600
    assert stat.S_IMODE(Path(tmp_path / "folder").stat().st_mode) == 0o755  # mkdtemp alone gives 0700
