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
import re
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

    A reader of ``final`` always finds a complete folder, the old or the new one: the old one is deleted only once
    the new one is in place. Where the kernel can (Linux's ``renameat2(RENAME_EXCHANGE)``) the two are swapped in
    one atomic step; elsewhere the old one is renamed aside and the new one renamed in right after (a window of one
    rename; deleting the old folder first would leave none for as long as the deletion takes). ``staging`` is first
    renamed to a name of its own (``.NAME.incoming.HOST.PID.*``), so what a swap leaves there is never mistaken
    for the new content (a stage's ``.partial`` folder is resumable) and a kill mid-way leaves only folders that
    :func:`remove_leftovers` recognises. Safe against a concurrent writer of the same ``final``: each attempt is a
    rename only one process can win; the last writer's folder stays. Its files get the umask's modes first
    (:func:`follow_umask`), whoever wrote them.
    """
    follow_umask(staging)
    try:
        os.rename(staging, final)  # nothing there yet: one rename
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    else:
        fsync_dir(final.parent)
        return final
    incoming = _private_sibling(final, "incoming")
    os.rename(staging, incoming)
    doomed = []
    for _ in range(PUBLISH_ATTEMPTS):
        try:
            os.rename(incoming, final)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        else:
            break
        if _exchange(incoming, final):  # the old folder is now at `incoming`
            doomed.append(incoming)
            break
        aside = _private_sibling(final, "replaced")
        try:
            os.rename(final, aside)
        except FileNotFoundError:
            continue  # another writer moved it aside first
        doomed.append(aside)
    else:
        raise OSError(errno.EBUSY, f"{final} kept being replaced by other writers ({PUBLISH_ATTEMPTS} attempts)")
    fsync_dir(final.parent)
    for folder in doomed:
        shutil.rmtree(folder, ignore_errors=True)
    return final


#: renameat2's flag that swaps two existing paths atomically (Linux >= 3.15; most local file systems and NFS 4)
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap the folders at ``a`` and ``b`` in one atomic step; False where the system cannot (or ``b`` is gone)."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False  # not glibc >= 2.28 (macOS, musl)
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOENT):
        return False
    raise OSError(code, os.strerror(code), str(b))


#: what publish_dir and staged_dir name their temporary siblings: ``.NAME.ROLE.HOST.PID.RANDOM``
_SIBLING = re.compile(r"\.(?P<name>.+)\.(?:incoming|replaced|staging)\.(?P<host>[^.]*)\.(?P<pid>\d+)\.[A-Za-z0-9_]+")


def _owner() -> str:
    """``HOST.PID`` of this process, as its temporary folders carry it (dots in a host name would split it)."""
    import socket

    return f"{socket.gethostname().replace('.', '_')}.{os.getpid()}"


def _private_sibling(final: Path, role: str) -> Path:
    return final.with_name(f".{final.name}.{role}.{_owner()}.{uuid.uuid4().hex[:12]}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process: it exists
    return True


def remove_leftovers(parent: str | Path) -> list[Path]:
    """Delete the staging and set-aside folders under ``parent`` that a killed process left (``kill -9`` between
    two renames of :func:`publish_dir`, or inside :func:`staged_dir`): only those of processes of this host that
    are gone; a live writer's, or another host's (a shared run root), are not ours to judge."""
    host = _owner().split(".")[0]
    removed = []
    try:
        entries = list(Path(parent).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _SIBLING.fullmatch(entry.name)
        if match and match["host"] == host and not _alive(int(match["pid"])) and entry.is_dir() \
                and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


@contextlib.contextmanager
def staged_dir(final: str | Path) -> Iterator[Path]:
    """Yield an empty temporary sibling of ``final``; on success it replaces ``final``, on error it is removed."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.staging.{_owner()}.", dir=final.parent))
    staging.chmod(0o777 & ~umask())  # mkdtemp makes 0700: follow the umask as any other folder does
    try:
        yield staging
        publish_dir(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
