"""Loader for a user's own ``.jsonl`` / ``.csv`` file of labelled texts, or of preference pairs.

Users' files are messy, so this is the one place that converts labels (bools, "0"/"1", "true"/"false")
and reports the exact row of any problem instead of failing later inside training.

A file whose rows have ``chosen`` and ``rejected`` fields (and no label field) is preference data: each row
becomes a pair for a Bradley-Terry reward model (:func:`~w2slab.data.formatters.format_preference_pair`), its
order drawn from a hash of its two texts (the same pair is in the same order in every run and every seed).
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from pathlib import Path

from w2slab.data.carve import carve
from w2slab.data.formatters import format_preference_pair
from w2slab.data.types import TaskData, content
from w2slab.data.validate import validate_rows
from w2slab.errors import DataError

CUSTOM_SUFFIXES = (".jsonl", ".csv")
CUSTOM_TRAIN_FRACTION = 0.8
MAX_FIELD_CHARS = 1_000_000  # a longer field is a broken file (or not text), never a training example
MAX_CLASSES = 10_000  # a larger class id is a broken column (an id, a timestamp), never a class of a task we train
_FIX = ("every row needs text and label (a class id 0, 1, ..., K-1; word labels with --label-map "
        "positive=1,negative=0)")
_LABELS = {"0": 0, "1": 1, "false": 0, "true": 1}
#: The fields of a preference row (Anthropic HH-RLHF's names, used by most preference datasets).
PAIR_FIELDS = ("chosen", "rejected")


def _records(path: Path) -> list[dict]:
    """Data rows as dicts, numbered 1.. in file order; any unreadable content is one line naming where."""
    if path.is_dir():
        raise DataError(f"{path}: is a directory; pass the .jsonl or .csv file inside it")
    with open(path, "rb") as fh:  # the first 8 KB only: a large file is not read whole to look at them
        head = fh.read(8192)
    if b"\x00" in head:
        raise DataError(f"{path.name}: binary content (NUL bytes), not a text file; export it as UTF-8 .jsonl/.csv")
    try:
        return _parse_records(path)
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise DataError(f"{path.name} line {line}: not UTF-8 ({exc.reason} at byte {exc.start}); re-save the file "
                        "as UTF-8") from None
    except csv.Error as exc:
        raise DataError(f"{path.name}: malformed CSV ({exc}); check its quoting, or use .jsonl") from None


def _parse_records(path: Path) -> list[dict]:
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames:
                raise DataError(
                    f"{path.name}: no header row; the first line must name the columns, e.g. text,label"
                )
            rows = list(reader)
            for n, row in enumerate(rows, start=1):
                if None in row or any(value is None for value in row.values()):
                    raise DataError(f"{path.name} row {n}: {len(reader.fieldnames)} columns in the header but a "
                                    "different number in this row; quote fields that contain commas")
            return rows
    records = []
    with open(path, encoding="utf-8-sig") as fh:
        for line in fh:
            if not line.strip():
                continue
            n = len(records) + 1
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{path.name} row {n}: not valid JSON ({exc.msg}); write one object per line like "
                    '{"text": "...", "label": 0}'
                ) from None
            except RecursionError:  # the parser recurses per level: thousands of nested brackets end it
                raise DataError(
                    f"{path.name} row {n}: nested too deeply to read (thousands of levels of lists or objects); "
                    'write one flat object per line like {"text": "...", "label": 0}'
                ) from None
            if not isinstance(rec, dict):
                raise DataError(
                    f"{path.name} row {n}: expected a JSON object, got {type(rec).__name__}; "
                    'write one object per line like {"text": "...", "label": 0}'
                )
            records.append(rec)
    return records


def _field(rec: dict, field: str, where: str, n: int, flag: str) -> object:
    value = rec.get(field)
    if value is None:
        raise DataError(
            f"{where} row {n}: missing {field!r} field; {_FIX} (or set {flag} to your column name)"
        )
    return value


def _label(value: object, where: str, n: int, label_map: dict[str, int] | None = None) -> int:
    """Convert the accepted label spellings (class ids, true/false, ``label_map``'s words) to a class id or raise
    naming the row. K is inferred afterwards from the largest id (:func:`_classes`)."""
    if label_map and isinstance(value, str):
        if value.strip() in label_map:
            return label_map[value.strip()]
        raise DataError(f"{where} row {n}: label {value.strip()[:40]!r} is not in --label-map "
                        f"({', '.join(label_map)}); add it to the map or fix the row")
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        if int(value) < 0:
            raise DataError(f"{where} row {n}: label {value!r} is negative; use class ids 0, 1, ..., K-1")
        return _class_id(int(value), where, n)
    if isinstance(value, str):
        key = value.strip().lower()
        if key in _LABELS:
            return _LABELS[key]
        if key.isascii() and key.isdigit():  # not "²" or "٣": str.isdigit accepts those, int() does not
            return _class_id(int(key), where, n)
        if not key:
            raise DataError(f"{where} row {n}: missing 'label' value; {_FIX}")
        raise DataError(
            f"{where} row {n}: label {value.strip()[:40]} is not a class id; use 0, 1, ..., K-1 (or true/false), or "
            "map words with --label-map positive=1,negative=0"
        )
    raise DataError(f"{where} row {n}: label {value!r} is not a class id; use 0, 1, ..., K-1")


def _class_id(label: int, where: str, n: int) -> int:
    if label >= MAX_CLASSES:
        raise DataError(f"{where} row {n}: label {label} is not a class id of a task with at most {MAX_CLASSES:,} "
                        "classes; number the classes 0..K-1 (is the label column an id?)")
    return label


def _classes(rows: list[dict], where: str, label_map: dict[str, int] | None) -> tuple[int, tuple[str, ...] | None]:
    """K (one more than the largest label) and the class names the label map gives; every class must occur."""
    counts: dict[int, int] = {}
    for row in rows:
        counts[row["label"]] = counts.get(row["label"], 0) + 1
    num_classes = max(counts) + 1
    absent = [c for c in range(num_classes) if c not in counts]
    if num_classes < 2:
        raise DataError(f"{where}: every row has label {max(counts)}; a classification task needs at least two "
                        "classes (0 and 1)")
    if absent:
        raise DataError(f"{where}: labels run up to {num_classes - 1} but class {absent[0]} never occurs; number the "
                        f"classes 0..K-1 without gaps (or fix --label-map)")
    names = None
    if label_map:
        by_id = {v: k for k, v in label_map.items()}
        names = tuple(by_id.get(c, str(c)) for c in range(num_classes))
    return num_classes, names


def _text(value: object, where: str, n: int) -> str:
    if not isinstance(value, str):
        raise DataError(f"{where} row {n}: text {str(value)[:40]!r} is not a string; quote it or fix the column")
    if len(value) > MAX_FIELD_CHARS:
        raise DataError(f"{where} row {n}: text of {len(value):,} characters (limit {MAX_FIELD_CHARS:,}); split or "
                        "drop the row")
    return value


def load_custom_file(
    path: str | Path,
    *,
    text_field: str = "text",
    label_field: str = "label",
    question_field: str | None = None,
    answer_field: str | None = None,
    label_map: dict[str, int] | None = None,
) -> TaskData:
    """Read, convert, validate and carve (80/20 by a hash of the text) a user's labelled file."""
    path = Path(path)
    where = path.name
    if path.suffix.lower() not in CUSTOM_SUFFIXES:
        raise DataError(f"{where}: unsupported file type {path.suffix!r}; give a .jsonl or .csv file")
    if (question_field is None) != (answer_field is None):
        raise DataError(
            "question_field and answer_field go together; set both (text = 'Q: {q} A: {a}') or neither"
        )
    records = _records(path)
    if not records:
        raise DataError(f"{where}: no rows; {_FIX}")
    if all(f in records[0] for f in PAIR_FIELDS) and label_field not in records[0]:
        return _preference_pairs(path, records)
    rows: list[dict] = []
    for n, rec in enumerate(records, start=1):
        if question_field is not None and answer_field is not None:
            q = _text(_field(rec, question_field, where, n, "--question-field"), where, n)
            a = _text(_field(rec, answer_field, where, n, "--answer-field"), where, n)
            text = f"Q: {q.strip()} A: {a.strip()}" if q.strip() and a.strip() else ""
        else:
            text = _text(_field(rec, text_field, where, n, "--text-field"), where, n)
        label = _label(_field(rec, label_field, where, n, "--label-field"), where, n, label_map)
        if not text.strip():
            raise DataError(f"{where} row {n}: empty text; remove the row or fill in its text")
        rows.append({"id": f"{path.stem}/{n}", "text": text, "label": label})
    num_classes, names = _classes(rows, where, label_map)
    validate_rows(rows, where, num_classes)
    train, test = carve(rows, key=content, train_fraction=CUSTOM_TRAIN_FRACTION)
    notes = [
        f"{where}: no predefined split; carved train/test pools {CUSTOM_TRAIN_FRACTION:.0%}/"
        f"{1 - CUSTOM_TRAIN_FRACTION:.0%} by a hash of each row's text ({len(train)}/{len(test)} rows)"
    ]
    if num_classes > 2:
        notes.append(f"{where}: {num_classes} classes (labels 0..{num_classes - 1}"
                     + (f": {', '.join(names)}" if names else "") + ")")
    return TaskData(name=path.stem, train=train, test=test, notes=notes, num_classes=num_classes, class_names=names)


def _preference_pairs(path: Path, records: list[dict]) -> TaskData:
    """Rows with ``chosen`` and ``rejected`` texts as Bradley-Terry pairs (label 1: ``text`` is the chosen one)."""
    where, rows, same = path.name, [], 0
    for n, rec in enumerate(records, start=1):
        chosen, rejected = (_text(_field(rec, f, where, n, "--text-field"), where, n) for f in PAIR_FIELDS)
        if not chosen.strip() or not rejected.strip():
            raise DataError(f"{where} row {n}: empty chosen or rejected text; remove the row or fill it in")
        coin = random.Random(hashlib.sha256(f"{chosen}\x1e{rejected}".encode()).digest())
        pair = format_preference_pair(chosen, rejected, coin)
        same += not pair
        rows.extend({"id": f"{path.stem}/{n}", **row} for row in pair)
    if not rows:
        raise DataError(f"{where}: every row's chosen and rejected texts are identical; nothing to prefer")
    validate_rows(rows, where, 2)
    train, test = carve(rows, key=content, train_fraction=CUSTOM_TRAIN_FRACTION)
    notes = [f"{where}: preference pairs (chosen, rejected) for a Bradley-Terry reward model; carved train/test "
             f"pools {CUSTOM_TRAIN_FRACTION:.0%}/{1 - CUSTOM_TRAIN_FRACTION:.0%} by a hash of each pair "
             f"({len(train)}/{len(test)} pairs)"]
    if same:
        notes.append(f"{where}: dropped {same} rows whose chosen and rejected texts are identical")
    return TaskData(name=path.stem, train=train, test=test, notes=notes, num_classes=2)
