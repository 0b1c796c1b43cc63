"""Content fingerprints of what a result depends on: files, folders, the w2slab source, Hub commits.

A stage identity must change whenever its result could: a model folder retrained in place, a data
file edited, a line of w2slab's own code changed. So files are identified by a streamed sha256 of
their *content*. Hashing a 400 MB model on every run would be slow, so each file's digest is
remembered in a small JSON memo keyed by (absolute path, inode, size, mtime and ctime in ns): an unchanged
file costs a ``stat``, a changed one (any byte, even at the same size, even with its mtime put back) is hashed
again because writing it moves its ctime. The memo lives beside the model cache (``$W2SLAB_CACHE`` or
``~/.cache/w2slab``).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import sys
import threading
from pathlib import Path

_CHUNK = 1 << 20
_lock = threading.Lock()
_memo: dict[str, str] | None = None


def memo_path() -> Path:
    if os.environ.get("W2SLAB_CACHE"):
        return Path(os.environ["W2SLAB_CACHE"]) / "content-hashes.json"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "w2slab" / "content-hashes.json"


def _load_memo() -> dict[str, str]:
    global _memo
    if _memo is None:
        try:
            data = json.loads(memo_path().read_text())
            _memo = data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            _memo = {}  # missing or torn memo: it is only a cache
    return _memo


def _save_memo() -> None:
    from w2slab import atomic

    try:
        atomic.write_json(memo_path(), _memo, indent=None)
    except OSError:
        pass  # a read-only cache only costs speed


def stat_key(path: Path) -> str:
    """``path|inode|size|mtime_ns|ctime_ns``: what must all stay the same for a file's content to be taken as
    unchanged without reading it."""
    stat = path.stat()
    return f"{path}|{stat.st_ino}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ctime_ns}"


def file_digest(path: str | Path) -> str:
    """sha256 of a file's content (hex), remembered by (path, inode, size, mtime_ns, ctime_ns).

    The change time is in the key because the modification time alone can be put back (``cp -p``, ``rsync -t``,
    ``tar x``, ``os.utime``) after the bytes changed; the ctime cannot be set by any of them, and every write
    or metadata change moves it. (Bits that rot on the medium without a write are beyond any stat: only
    re-hashing finds them.)
    """
    path = Path(path).resolve()
    key = stat_key(path)
    with _lock:
        memo = _load_memo()
        if key in memo:
            return memo[key]
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    value = digest.hexdigest()
    with _lock:
        memo = _load_memo()
        for old in [k for k in memo if k.startswith(f"{path}|")]:
            del memo[old]  # keep one entry per file
        memo[key] = value
        _save_memo()
    return value


def files_digest(root: str | Path, files: list[Path] | None = None) -> str:
    """Digest of the relative names and contents of ``files`` under ``root`` (all files when None)."""
    root = Path(root)
    if files is None:
        files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(file_digest(path).encode())
    return digest.hexdigest()[:16]


PACKAGE_DIR = Path(__file__).resolve().parent


@functools.cache
def source_digest(package_dir: Path = PACKAGE_DIR) -> str:
    """Digest of w2slab's own Python source: an edit to any module gives every stage a new identity."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        digest.update(str(path.relative_to(package_dir)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


#: The modules that compute what the example stores hold (token ids, frozen features; w2slab.example_store): their
#: digest keys the stores instead of the whole package's, so an edit to a loss, a method, a table or a stage keeps
#: every cached feature (the probe suite's whole cost), while an edit to loading, pooling, prompts, tokenising or
#: the precision policy makes new ones.
EXAMPLE_CODE = ("models", "pipeline/role_model.py", "train/precision.py", "train/batching.py", "example_store.py")


@functools.cache
def example_code_digest(package_dir: Path = PACKAGE_DIR) -> str:
    """Digest of :data:`EXAMPLE_CODE`'s source (the code behind every stored token id and feature)."""
    digest = hashlib.sha256()
    for part in EXAMPLE_CODE:
        path = package_dir / part
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(str(file.relative_to(package_dir)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def code_digest(obj: object) -> str | None:
    """Digest of the user source that defines ``obj`` (a class or function), None for w2slab's own code.

    w2slab's own modules are covered by :func:`source_digest`; a loss, method or dataset registered from outside
    (a plugin package, an entry point, a script) is not, so editing it would silently reuse the old students.
    What is hashed: the defining module's file, or every ``.py`` file of its top-level package when it is part
    of one (helpers in sibling modules count too), every user module those files import (transitively; not
    w2slab, the standard library or installed packages), and the same for each base class defined outside w2slab.
    Read afresh on every call (no memo: an edit in a notebook session must count); a definition without a
    source file (typed into a REPL) is identified by its source text, else by its qualified name.
    """
    while isinstance(obj, functools.partial):
        obj = obj.func
    owners = [obj]
    for base in getattr(obj, "__mro__", ())[1:]:  # the user's own base classes, up to w2slab's
        if (base.__module__ or "").split(".")[0] == "w2slab":
            break
        owners.append(base)
    digest = hashlib.sha256()
    found = False
    for owner in owners:
        module = sys.modules.get(getattr(owner, "__module__", "") or "")
        top = (getattr(owner, "__module__", "") or "").split(".")[0]
        if top == "w2slab" or top in sys.stdlib_module_names or module is None:
            continue
        found = True
        files = _source_files(module)
        for path in files:
            digest.update(str(path.name).encode())
            digest.update(path.read_bytes())
        if not files:
            try:
                digest.update(inspect.getsource(owner).encode())  # type: ignore[arg-type]
            except (OSError, TypeError):
                digest.update(f"{owner.__module__}.{getattr(owner, '__qualname__', owner)}".encode())
    return digest.hexdigest()[:16] if found else None


def _source_files(module: object) -> list[Path]:
    """The ``.py`` files that define a module: its top-level package's, or its own file alone, and every user
    module those files import, transitively (a single-file plugin's ``import myhelpers``: editing the helper
    changes what the plugin computes, so it must change the digest too)."""
    files = _own_files(module)
    seen = set(files)
    queue = list(files)
    while queue:
        path = queue.pop()
        for imported in _imported_user_files(path, _package_of(module, path)):
            if imported not in seen:
                seen.add(imported)
                queue.append(imported)
    return sorted(seen)


def _own_files(module: object) -> list[Path]:
    """The ``.py`` files of a module's top-level package, or its own file alone."""
    file = getattr(module, "__file__", None)
    if not file or not Path(file).is_file():
        return []
    name = getattr(module, "__name__", "") or ""
    top = sys.modules.get(name.split(".")[0])
    package_dirs = [Path(d) for d in getattr(top, "__path__", [])] if "." in name or hasattr(module, "__path__") else []
    if package_dirs:
        return sorted(path.resolve() for folder in package_dirs for path in folder.rglob("*.py"))
    return [Path(file).resolve()]


def _package_of(module: object, path: Path) -> str:
    """The package a file's relative imports start from (its module's, when it is the module's own file)."""
    own = getattr(module, "__file__", None)
    if own and Path(own).resolve() == path:
        return getattr(module, "__package__", "") or ""
    for candidate in list(sys.modules.values()):
        file = getattr(candidate, "__file__", None)
        if file and Path(file).resolve() == path:
            return getattr(candidate, "__package__", "") or ""
    return ""


def _imported_names(path: Path, package: str) -> set[str]:
    """Absolute names of the modules a file imports (``import a.b``, ``from a import b``, ``from . import c``),
    anywhere in it (an import inside a function counts: it runs when the plugin does)."""
    import ast

    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, OSError):
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join([*parts, *([base] if base else [])])
            if base:
                names.add(base)
            names.update(f"{base}.{alias.name}" if base else alias.name for alias in node.names)
    return names


def _imported_user_files(path: Path, package: str) -> list[Path]:
    """The files of the user modules ``path`` imports: not w2slab's, not the standard library's, not installed."""
    out = []
    for name in _imported_names(path, package):
        top = name.split(".")[0]
        if top == "w2slab" or top in sys.stdlib_module_names:
            continue
        file = _module_file(name)
        if file is not None and _is_user_file(file):
            out.append(file)
    return out


def _module_file(name: str) -> Path | None:
    """Where module ``name`` lives: the loaded module's file, else (a top-level name not imported yet) where the
    import system would find it, without importing it."""
    import importlib.machinery

    module = sys.modules.get(name)
    file = getattr(module, "__file__", None) if module is not None else None
    if file is None and module is None and "." not in name:
        try:
            spec = importlib.machinery.PathFinder.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        file = spec.origin if spec is not None and spec.has_location else None
    if not file or not file.endswith(".py") or not Path(file).is_file():
        return None
    return Path(file).resolve()


@functools.cache
def _installed_roots() -> tuple[Path, ...]:
    """Folders of installed and standard-library code (site-packages, the stdlib), whose files are not the user's."""
    import site
    import sysconfig

    roots = {sysconfig.get_paths().get(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots.update(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
    roots.add(site.getusersitepackages() if hasattr(site, "getusersitepackages") else None)
    return tuple(Path(r).resolve() for r in roots if r)


def _is_user_file(path: Path) -> bool:
    """A file outside w2slab, site-packages and the standard library."""
    if path.is_relative_to(PACKAGE_DIR) or any(part in ("site-packages", "dist-packages") for part in path.parts):
        return False
    return not any(path.is_relative_to(root) for root in _installed_roots())


#: The Hub's answers about repositories in this process: (repo_type, repo_id) -> (commit, problem).
_HUB_ANSWERS: dict[tuple[str, str], tuple[str | None, str | None]] = {}


def _ask_hub(repo_id: str, repo_type: str) -> tuple[str | None, str | None]:
    """``(commit of main, why the repository cannot be used)`` from one ``repo_info`` call, kept for the process
    (checking an id and pinning its commit share the one answer); ``(None, None)``, not kept, when the Hub cannot be
    reached."""
    if (repo_type, repo_id) in _HUB_ANSWERS:
        return _HUB_ANSWERS[(repo_type, repo_id)]
    try:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

        info = HfApi().repo_info(repo_id, repo_type=repo_type)
        answer = (info.sha or None, None)
    except GatedRepoError:
        answer = (None, "is gated on the Hub: accept its terms on its page and log in with `hf auth login`")
    except RepositoryNotFoundError:
        answer = (None, "is not on the Hub (a typo, or a private repository: log in with `hf auth login`)")
    except Exception:  # noqa: BLE001 - no network: the local cache decides
        return None, None
    _HUB_ANSWERS[(repo_type, repo_id)] = answer
    return answer


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def hub_commit(repo_id: str, repo_type: str = "model") -> str | None:
    """The commit sha that ``main`` of a Hub repository points to: asked once, else read from the local HF cache.

    None when neither the Hub nor the cache knows it (offline and never downloaded).
    """
    if not _offline():
        sha, _ = _ask_hub(repo_id, repo_type)
        if sha:
            return sha
    try:
        from huggingface_hub.constants import HF_HUB_CACHE

        folder = Path(HF_HUB_CACHE) / f"{repo_type}s--{repo_id.replace('/', '--')}" / "refs" / "main"
        sha = folder.read_text().strip()
        return sha or None
    except (OSError, ImportError):
        return None


@functools.cache
def pinned_hub_commit(repo_id: str, repo_type: str) -> str | None:
    """:func:`hub_commit`, asked once per process: the commit every stage of a run pins a model or dataset to."""
    return hub_commit(repo_id, repo_type)


def hub_repo_problem(repo_id: str, repo_type: str = "model") -> str | None:
    """Why a Hub id cannot be used (None when it can): asked before any work, since an unknown id otherwise failed
    only when its first training began, after the split had run. The same Hub answer pins its commit."""
    if not _offline():
        sha, problem = _ask_hub(repo_id, repo_type)
        if problem is not None:
            return problem
        if sha is not None:
            return None
    if hub_commit(repo_id, repo_type) is not None:
        return None
    why = "HF_HUB_OFFLINE is set" if _offline() else "the Hub cannot be reached"
    return f"is not in the local Hugging Face cache and {why}; download it once with network access"
