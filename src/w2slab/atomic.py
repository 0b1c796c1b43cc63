"""Atomic writes: a reader sees the old content or the complete new content, never a half-written one.

Files are written to a temporary sibling, fsynced and ``os.replace``d; folders are filled in a
temporary sibling, fsynced and renamed into place. Every writer of results, stages, checkpoints and
converted models goes through these helpers, so a power cut after a "done" marker cannot leave a
marker whose data never reached the disk.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


def write_with(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Let ``write(binary handle)`` fill a temporary sibling of ``path``, fsync it and ``os.replace`` it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~umask())  # mkstemp makes 0600: a team sharing a run root could not read it
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temporary sibling, then ``os.replace``)."""
    return write_with(path, lambda fh: fh.write(text.encode("utf-8")))


def write_json(path: str | Path, data: Any, *, indent: int | None = 2) -> Path:
    return write_text(path, json.dumps(data, indent=indent, default=str))


def fsync_dir(folder: str | Path) -> None:
    """Make a folder's entries (a rename, a new file) durable."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on folders; nothing more can be done there
    finally:
        os.close(fd)


def fsync_tree(folder: str | Path) -> None:
    """fsync every file and folder under ``folder`` (before writing a marker that says they are complete)."""
    folder = Path(folder)
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
        elif path.is_dir():
            fsync_dir(path)
    fsync_dir(folder)


#: Linux's FICLONE ioctl: the target shares the source's blocks copy-on-write (btrfs, XFS), never its inode
_FICLONE = 0x40049409


def copy_file(source: str | Path, target: str | Path) -> Path:
    """Copy ``source`` to a new file ``target`` that nothing else shares: a writer of one never changes the other.

    A reflink where the file system has them (no bytes copied, blocks shared copy-on-write), a plain copy elsewhere;
    never a hard link (one inode: writing through either name would change both). The mode follows the umask."""
    import fcntl

    target = Path(target)
    with open(source, "rb") as src, open(target, "wb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
        except OSError:
            shutil.copyfileobj(src, dst, 1 << 20)
    os.chmod(target, 0o666 & ~umask())
    return target


#: how often :func:`publish_dir` moves a competing writer's folder aside before it gives up
PUBLISH_ATTEMPTS = 100


@functools.cache
def umask() -> int:
    """The process's umask (read once: ``os.umask`` can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(folder: str | Path) -> None:
    """Give every file and folder under ``folder`` the mode the umask asks for (0644 and 0755 under umask 022).

    Some writers create private files whatever the umask (safetensors' ``save_file``, and so ``save_pretrained``
    and accelerate's ``save_state``, write 0600): in a run root or model cache a team shares, the others could
    not read them. Execute bits are kept where a file has one."""
    mask = umask()
    for path in [Path(folder), *Path(folder).rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode & 0o777
        wanted = (0o777 if path.is_dir() or mode & 0o111 else 0o666) & ~mask
        if mode != wanted:
            os.chmod(path, wanted)


def publish_dir(staging: Path, final: Path) -> Path:
    """Move a completely written folder into place, replacing an earlier version of the same folder.

    Safe against a concurrent writer of the same ``final``: the old folder is first *renamed* aside (atomic, and
    only one process can win it), then deleted; the rename of ``staging`` retries while another writer's folder
    keeps appearing at ``final``. Deleting ``final`` in place instead let two writers interleave (one's rmtree
    while the other renames: ``Directory not empty`` or ``FileNotFoundError``). The last writer's folder stays.
    Its files get the umask's modes first (:func:`follow_umask`), whoever wrote them.
    """
    follow_umask(staging)
    for _ in range(PUBLISH_ATTEMPTS):
        try:
            os.rename(staging, final)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        else:
            fsync_dir(final.parent)
            return final
        aside = final.with_name(f".{final.name}.replaced.{uuid.uuid4().hex[:12]}")
        try:
            os.rename(final, aside)
        except FileNotFoundError:
            continue  # another writer moved it aside first
        shutil.rmtree(aside, ignore_errors=True)
    raise OSError(errno.EBUSY, f"{final} kept being replaced by other writers ({PUBLISH_ATTEMPTS} attempts)")


@contextlib.contextmanager
def staged_dir(final: str | Path) -> Iterator[Path]:
    """Yield an empty temporary sibling of ``final``; on success it replaces ``final``, on error it is removed."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    staging.chmod(0o777 & ~umask())  # mkdtemp makes 0700: follow the umask as any other folder does
    try:
        yield staging
        publish_dir(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
