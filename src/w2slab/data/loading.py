"""``load_task``: registered dataset or user file -> formatted train/test pools (:class:`TaskData`)."""

from __future__ import annotations

import functools
import os
import random
from pathlib import Path

from w2slab.data.carve import carve, content_key
from w2slab.data.custom import CUSTOM_SUFFIXES, load_custom_file
from w2slab.data.hub import load_hub_records
from w2slab.data.readers import ALL
from w2slab.data.registry import DATASETS, DatasetSpec, dataset_available_locally
from w2slab.data.root import resolve_data_root, try_data_root
from w2slab.data.types import TaskData
from w2slab.data.validate import validate_rows
from w2slab.errors import DataError

SOURCES = ("auto", "local", "hub")
CARVE_TRAIN_FRACTION = 0.7  # for registered datasets that ship a single labelled split offline

_HH_FORMAT_NOTE = (
    "anthropic_hh: pairwise format (conversation once, then final responses A and B in random order; "
    "label 1 = A is the chosen one) instead of OpenAI's single-transcript format, which sits at chance"
)


@functools.lru_cache(maxsize=8)
def _cached_local(spec_name: str, folder: str, split: str) -> tuple[dict, ...]:
    """Raw local records, cached so repeated loads (several seeds, tests) skip re-reading big files."""
    return tuple(DATASETS[spec_name].reader(Path(folder), split))


def _local_pools(spec: DatasetSpec, root: Path) -> tuple[dict[str, list[dict]], list[str]]:
    folder = str((root / spec.folder).resolve())
    notes = list(spec.local_notes)
    if spec.carved_locally:
        records = list(_cached_local(spec.name, folder, ALL))
        train, test = carve(records, key=content_key, train_fraction=CARVE_TRAIN_FRACTION)
        notes.append(
            f"{spec.name}: no offline train/test split; pools carved {CARVE_TRAIN_FRACTION:.0%}/"
            f"{1 - CARVE_TRAIN_FRACTION:.0%} by a hash of each raw record (fixed, seed-independent): "
            f"{len(train)}/{len(test)} records"
        )
        return {"train": train, "test": test}, notes
    pools = {split: list(_cached_local(spec.name, folder, split)) for split in ("train", "test")}
    return pools, notes


def _hub_pools(spec: DatasetSpec, revision: str | None = None) -> tuple[dict[str, list[dict]], list[str]]:
    if spec.hub_id is None or spec.hub_splits is None:
        raise DataError(
            f"{spec.name} has no Hugging Face Hub copy; use source='local' with "
            "W2SLAB_DATA_ROOT / --data-root"
        )
    train_split, test_split = spec.hub_splits
    pools = {
        "train": load_hub_records(spec.hub_id, train_split, revision),
        "test": load_hub_records(spec.hub_id, test_split, revision),
    }
    note = f"{spec.name}: loaded from the Hugging Face Hub ({spec.hub_id}, splits {train_split}/{test_split})"
    return pools, [note]


def choose_local_root(spec: DatasetSpec, data_root: str | Path | None, source: str) -> Path | None:
    """The data root to read from, or None to use the Hub."""
    if source == "hub":
        return None
    root = resolve_data_root(data_root) if source == "local" else try_data_root(data_root)
    if root is None:  # auto without a root
        if spec.hub_id is None:
            resolve_data_root(data_root)  # raises the "data root not found" message
        return None
    if not dataset_available_locally(spec.name, root):
        missing = [f for f in spec.required_files if not (root / spec.folder / f).is_file()]
        raise DataError(
            f"{spec.name}: raw files missing under {str(root / spec.folder)!r} ({', '.join(missing)}); "
            "point W2SLAB_DATA_ROOT / --data-root at the complete shared datasets folder or use source='hub'"
        )
    return root


def _format_pool(spec: DatasetSpec, split: str, records: list[dict], seed: int) -> tuple[list[dict], int]:
    """Format one pool with its own seeded rng; return (rows, number of records dropped)."""
    rng = random.Random(f"{spec.name}|{split}|{seed}")  # str seeds are stable across processes
    rows: list[dict] = []
    dropped = 0
    for i, rec in enumerate(records):
        out = [r for r in spec.formatter(rec, rng) if r["text"].strip()]
        if not out:
            dropped += 1
        for k, r in enumerate(out):
            suffix = f".{k}" if len(out) > 1 else ""
            rows.append(
                {"id": f"{spec.name}/{split}/{i}{suffix}", "text": r["text"], "label": int(r["label"])}
            )
    return rows, dropped


def _unknown(name: str) -> DataError:
    if Path(name).is_dir():
        return DataError(f"{name}: is a directory; pass the .jsonl or .csv file inside it")
    looks_like_path = Path(name).suffix.lower() in CUSTOM_SUFFIXES or os.sep in name or "/" in name
    if looks_like_path:
        return DataError(f"file {name!r} not found; check the path to your .jsonl/.csv file")
    return DataError(
        f"unknown dataset {name!r}; use one of {', '.join(DATASETS)} or a path to a .jsonl/.csv file "
        "with text and label columns"
    )


def check_dataset_name(name: str) -> None:
    """Cheap check, before any work: a registered dataset or an existing data file."""
    if name not in DATASETS and not Path(name).is_file():
        raise _unknown(name)


def load_task(
    name: str,
    *,
    data_root: str | Path | None = None,
    seed: int = 0,
    source: str = "auto",
    hub_revision: str | None = None,
    text_field: str = "text",
    label_field: str = "label",
    label_map: dict[str, int] | None = None,
    question_field: str | None = None,
    answer_field: str | None = None,
) -> TaskData:
    """Formatted train/test pools for a registered dataset or a user's ``.jsonl``/``.csv`` file.

    ``source``: "auto" reads the offline files when a data root exists, else the Hub; "local" and "hub"
    force one. The field arguments only apply to user files. The same ``seed`` gives the same rows.
    """
    if source not in SOURCES:
        raise DataError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    spec = DATASETS.find(name)
    if spec is None:
        if Path(name).is_file():
            return load_custom_file(
                name,
                text_field=text_field,
                label_field=label_field,
                label_map=label_map,
                question_field=question_field,
                answer_field=answer_field,
            )
        raise _unknown(name)

    root = choose_local_root(spec, data_root, source)
    pools, notes = _local_pools(spec, root) if root is not None else _hub_pools(spec, hub_revision)
    if spec.name == "anthropic_hh":
        notes.append(_HH_FORMAT_NOTE)
    formatted: dict[str, list[dict]] = {}
    for split in ("train", "test"):
        rows, dropped = _format_pool(spec, split, pools[split], seed)
        if dropped:
            notes.append(f"{spec.name}: dropped {dropped} {split} records that format to no usable row")
        validate_rows(rows, f"{spec.name} {split} pool")
        formatted[split] = rows
    return TaskData(name=spec.name, train=formatted["train"], test=formatted["test"], notes=notes)
