"""Rebuild every committed benchmark table from its committed per-example outcomes, without training.

    python benchmarks/rebuild.py            # rewrite results/*/README.md and *.csv from results/*/records.jsonl.gz
    python benchmarks/rebuild.py --check    # rebuild into memory and fail (exit 1) where a committed file differs

A results folder that holds ``records.jsonl.gz`` (every result's per-example test outcomes, config and what it
read) and ``meta.json`` (the command, machine and source digest that made it) is rebuilt by what wrote it: a
``w2s bench`` folder (its meta names a ``candidate``: ``results/suite``) by :func:`w2slab.bench.run.render`, the
methods benchmark's by ``benchmarks/methods.py``, through the same statistics module the library's reports use.
Folders without them (tables made before per-example outcomes were committed) are listed as not re-derivable,
never silently skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from w2slab.results import RECORDS_FILE

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
#: The single-dataset claims (sst2_sentences) are recomputed from the methods benchmark's committed outcomes
#: (benchmarks/reproduction.py).
CLAIMS = ("sst2_claims", "methods_field")


def rebuildable(folder: Path) -> bool:
    if folder.name == CLAIMS[0]:
        return (folder / "claims.json").is_file() and (folder.parent / CLAIMS[1] / RECORDS_FILE).is_file()
    return (folder / RECORDS_FILE).is_file() and (folder / "meta.json").is_file()


def rebuild(folder: Path, target: Path) -> tuple[str, ...]:
    """Render ``folder``'s tables into ``target``; the names of the files to compare."""
    sys.path.insert(0, str(Path(__file__).parent))
    if folder.name == CLAIMS[0]:
        import reproduction

        records = (folder.parent / CLAIMS[1] / RECORDS_FILE).relative_to(ROOT)
        reproduction.main(["--records", str(records), "--out", str(target)])
        return ("README.md", "claims.json")
    import json

    import methods

    for name in (RECORDS_FILE, "meta.json"):
        shutil.copy2(folder / name, target / name)
    if "candidate" in json.loads((folder / "meta.json").read_text(encoding="utf-8")):  # written by w2s bench
        from w2slab.bench.run import render

        render(target)
        return ("README.md", "summary.json")
    methods.render(target)
    return ("README.md", "methods.csv")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the committed files; change nothing")
    parser.add_argument("--results", default=str(RESULTS), help="the results folder (default: the repository's)")
    args = parser.parse_args()
    os.chdir(ROOT)  # the claims name the records by their path in the repository
    started = time.time()
    failed = []
    for folder in sorted(p for p in Path(args.results).iterdir() if p.is_dir()):
        if not rebuildable(folder):
            print(f"{folder.name}: not re-derivable (no committed per-example outcomes)")
            continue
        with tempfile.TemporaryDirectory() as scratch:
            target = Path(scratch)
            with contextlib.redirect_stdout(io.StringIO()):
                names = rebuild(folder, target)
            for name in names:
                new = (target / name).read_bytes()
                if args.check:
                    same = (folder / name).is_file() and (folder / name).read_bytes() == new
                    print(f"{folder.name}/{name}: {'identical' if same else 'DIFFERS'}")
                    if not same:
                        failed.append(f"{folder.name}/{name}")
                else:
                    (folder / name).write_bytes(new)
                    print(f"{folder.name}/{name}: rebuilt")
    print(f"{time.time() - started:.1f} s")
    if failed:
        print(f"differ from their committed per-example outcomes: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
