"""How each kind of dataset is read into formatted train/test pools (:class:`TaskData`): a registered dataset (its
offline files, the Hub or code), an ImageFolder directory, a user's ``.jsonl``/``.csv`` file.

The readers only: which kind a name is, and the questions asked of a name (``load_task``, ``dataset_modality``,
...), are :mod:`w2slab.data.sources`, which calls these. They never ask a source, so the two modules do not import
each other.
"""

from __future__ import annotations

import functools
import os
import random
from pathlib import Path

from w2slab.data.carve import carve, content_key
from w2slab.data.custom import CUSTOM_SUFFIXES, load_custom_file
from w2slab.data.hub import load_hub_records
from w2slab.data.images import format_image, image_folder_classes, read_image_folder
from w2slab.data.readers import ALL
from w2slab.data.registry import DATASETS, DatasetSpec, dataset_available_locally
from w2slab.data.root import resolve_data_root, try_data_root
from w2slab.data.types import PAIR_FIELD, TaskData, content, content_field, is_pair
from w2slab.data.validate import validate_rows
from w2slab.errors import DataError

CARVE_TRAIN_FRACTION = 0.7  # for registered datasets that ship a single labelled split offline

_HH_FORMAT_NOTE = (
    "anthropic_hh: Bradley-Terry preference pairs (the last exchange with the chosen and with the rejected answer, "
    "each scored alone by a reward model; accuracy = P(score(chosen) > score(rejected))) instead of OpenAI's "
    "single-transcript format, which sits at chance"
)


@functools.lru_cache(maxsize=8)
def _cached_local(spec_name: str, folder: str, split: str) -> tuple[dict, ...]:
    """Raw local records, cached so repeated loads (several seeds, tests) skip re-reading big files."""
    return tuple(DATASETS[spec_name].reader(Path(folder), split))


def _record_key(record: dict) -> str:
    """The carving key of a raw record: its sorted-key JSON, or for an image record its image string."""
    if "image" in record:
        return format_image(record)[0]["image"]
    return content_key(record)


def _local_pools(spec: DatasetSpec, root: Path | None) -> tuple[dict[str, list[dict]], list[str]]:
    folder = "" if spec.bundled or root is None else str((root / spec.folder).resolve())
    notes = list(spec.local_notes)
    if spec.carved_locally:
        records = list(_cached_local(spec.name, folder, ALL))
        train, test = carve(records, key=_record_key, train_fraction=CARVE_TRAIN_FRACTION)
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
    if spec.bundled:
        return Path(".")  # ships with a library: nothing to find under a data root
    root = resolve_data_root(data_root) if source == "local" else try_data_root(data_root)
    if root is None:  # auto without a root
        if spec.hub_id is None:
            resolve_data_root(data_root)  # raises the "data root not found" message
        return None
    if not dataset_available_locally(spec.name, root):
        missing = [f for f in spec.required_files if not (root / spec.folder / f).exists()]
        where = ("point W2SLAB_DATA_ROOT / --data-root at the complete shared datasets folder or use source='hub'"
                 if spec.hub_id else f"put {spec.name} there ({spec.description}) or point W2SLAB_DATA_ROOT / "
                 "--data-root at a folder that has it")
        raise DataError(f"{spec.name}: raw files missing under {str(root / spec.folder)!r} ({', '.join(missing)}); "
                        f"{where}")
    return root


def _format_pool(spec: DatasetSpec, split: str, records: list[dict], seed: int) -> tuple[list[dict], int]:
    """Format one pool with its own seeded rng; return (rows, number of records dropped)."""
    rng = random.Random(f"{spec.name}|{split}|{seed}")  # str seeds are stable across processes
    rows: list[dict] = []
    dropped = 0
    for i, rec in enumerate(records):
        out = [r for r in spec.formatter(rec, rng) if content(r).strip()]
        if not out:
            dropped += 1
        for k, r in enumerate(out):
            suffix = f".{k}" if len(out) > 1 else ""
            fields = [content_field(r), *([PAIR_FIELD] if is_pair(r) else [])]  # a preference pair: two texts
            rows.append({"id": f"{spec.name}/{split}/{i}{suffix}", **{f: r[f] for f in fields},
                         "label": int(r["label"])})
    return rows, dropped


def unknown_dataset(name: str) -> DataError:
    """The one-line error for a dataset name no source takes, saying what it looks like it meant."""
    if Path(name).is_dir():
        return DataError(f"{name}: a directory without class sub-folders of images; pass a .jsonl/.csv file or an "
                         "ImageFolder (<dir>/<class>/<image>, or <dir>/train/<class>/... with val/ or test/)")
    looks_like_path = Path(name).suffix.lower() in CUSTOM_SUFFIXES or os.sep in name or "/" in name
    if looks_like_path:
        return DataError(f"file {name!r} not found; check the path to your .jsonl/.csv file")
    return DataError(
        f"unknown dataset {name!r}; use one of {', '.join(DATASETS)}, a path to a .jsonl/.csv file "
        "with text and label columns, or an ImageFolder directory"
    )


def image_folder_layout(folder: Path) -> tuple[Path, Path | None] | None:
    """``(train folder, test folder or None)`` of an ImageFolder directory, or None if it is not one.

    ``<dir>/train/<class>/`` with ``<dir>/val/`` (or ``test/``) beside it: two pools (ImageNet's layout);
    ``<dir>/<class>/<image>``: one pool, carved into train/test.
    """
    if not folder.is_dir():
        return None
    train = folder / "train"
    test = next((folder / n for n in ("val", "test") if (folder / n).is_dir()), None)
    if train.is_dir() and test is not None and image_folder_classes(train):
        return train, test
    if image_folder_classes(folder):
        return folder, None
    return None


def load_image_folder(path: str | Path) -> TaskData:
    """An ``ImageFolder`` directory: labels are the sorted class folders' positions (torchvision's rule)."""
    folder = Path(path).resolve()
    layout = image_folder_layout(folder)
    if layout is None:
        raise unknown_dataset(str(path))
    train_dir, test_dir = layout
    classes = image_folder_classes(train_dir)
    if len(classes) < 2:
        raise DataError(f"{folder}: {len(classes)} class folder(s); an ImageFolder needs at least 2 classes")
    records = read_image_folder(train_dir, classes)
    notes = []
    if test_dir is not None:
        test_records = read_image_folder(test_dir, classes)
        unknown = sorted(set(image_folder_classes(test_dir)) - set(classes))
        if unknown:
            raise DataError(f"{test_dir}: class folders {', '.join(unknown[:5])} are not in {train_dir}; the test "
                            "split must use the training classes")
    else:
        records, test_records = carve(records, key=lambda r: str(Path(r["image"]).relative_to(folder)),
                                      train_fraction=0.8)
        notes.append(f"{folder.name}: no train/ and val/ folders; carved train/test pools 80%/20% by a hash of each "
                     f"image's path ({len(records)}/{len(test_records)} images)")
    pools = {}
    for split, pool in (("train", records), ("test", test_records)):
        rows = [{"id": f"{folder.name}/{split}/{i}", **format_image(r)[0]} for i, r in enumerate(pool)]
        if not rows:
            raise DataError(f"{folder}: no images in the {split} pool; add image files ({', '.join(('.jpg', '.png'))}"
                            ", ...) under its class folders")
        validate_rows(rows, f"{folder.name} {split} pool", len(classes))
        pools[split] = rows
    notes.append(f"{folder.name}: ImageFolder with {len(classes)} classes ({', '.join(classes[:4])}"
                 f"{', ...' if len(classes) > 4 else ''})")
    return TaskData(folder.name, pools["train"], pools["test"], notes, len(classes), tuple(classes))


#: A user's file read this process, by what identifies its content and how it was read: sizing a run, checking it
#: before any stage and the split stage read it once, not three times (a 4 GB file read thrice cost minutes).
_USER_FILES: dict[tuple, TaskData] = {}


def read_user_file(name: str, text_field: str = "text", label_field: str = "label",
                   label_map: dict[str, int] | None = None, question_field: str | None = None,
                   answer_field: str | None = None) -> TaskData:
    """A user's file, read once per process while it is unchanged (the split and K both ask for it)."""
    stat = Path(name).stat()
    key = (str(Path(name).resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, text_field,
           label_field, tuple(sorted((label_map or {}).items())), question_field, answer_field)
    if key not in _USER_FILES:
        if len(_USER_FILES) >= 4:  # a few files per process at most: keep memory bounded
            _USER_FILES.pop(next(iter(_USER_FILES)))
        _USER_FILES[key] = load_custom_file(name, text_field=text_field, label_field=label_field,
                                            label_map=label_map, question_field=question_field,
                                            answer_field=answer_field)
    return _USER_FILES[key]


def load_registered(name: str, *, data_root: str | Path | None = None, seed: int = 0, source: str = "auto",
                    hub_revision: str | None = None) -> TaskData:
    """A registered dataset's formatted pools: offline files, the Hub at ``hub_revision``, or rows from code."""
    spec = DATASETS[name]
    root = choose_local_root(spec, data_root, source)
    pools, notes = _local_pools(spec, root) if root is not None else _hub_pools(spec, hub_revision)
    if spec.name == "anthropic_hh":
        notes.append(_HH_FORMAT_NOTE)
    formatted: dict[str, list[dict]] = {}
    class_names = spec.class_names
    if spec.classes_of is not None and root is not None:
        class_names = tuple(spec.classes_of(root / spec.folder))
    num_classes = spec.num_classes or (len(class_names) if class_names else None)
    for split in ("train", "test"):
        rows, dropped = _format_pool(spec, split, pools[split], seed)
        if dropped:
            notes.append(f"{spec.name}: dropped {dropped} {split} records that format to no usable row")
        formatted[split] = rows
    if num_classes is None:  # the data says K: one more than its largest label
        num_classes = 1 + max(row["label"] for split in formatted.values() for row in split)
    for split, rows in formatted.items():
        validate_rows(rows, f"{spec.name} {split} pool", num_classes)
    return TaskData(name=spec.name, train=formatted["train"], test=formatted["test"], notes=notes,
                    num_classes=num_classes, class_names=class_names)
