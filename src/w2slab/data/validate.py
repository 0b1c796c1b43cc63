"""Row validation: catch malformed rows at load time, with the row number, not deep inside training."""

from __future__ import annotations

from w2slab.data.types import PAIR_FIELD, content_field
from w2slab.errors import DataError


def _fix(num_classes: int) -> str:
    return f"every row needs text (or an image) and a label in 0..{num_classes - 1}"


def validate_rows(rows: list[dict], where: str, num_classes: int = 2) -> None:
    """Raise :class:`DataError` naming ``where`` and the 1-based row for the first bad row.

    A valid row is a dict with a unique non-empty str ``id``, one content field (``text``, ``image`` or ``vector``, a
    str that is non-empty after stripping; a preference pair's ``text_b`` too) and an int ``label`` in
    ``0..num_classes-1`` (bools and strings are rejected here; only the custom file loader converts them, so that
    registered datasets cannot silently carry odd labels).
    """
    seen: dict[str, int] = {}
    fix = _fix(num_classes)
    for n, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise DataError(f"{where} row {n}: expected a mapping, got {type(row).__name__}; {fix}")
        texts = (content_field(row), PAIR_FIELD) if PAIR_FIELD in row else (content_field(row),)
        for name in (*texts, "label"):
            if name not in row or row[name] is None:
                raise DataError(f"{where} row {n}: missing {name!r} field; {fix}")
        for field in texts:
            value = row[field]
            if not isinstance(value, str):
                raise DataError(f"{where} row {n}: {field} is a {type(value).__name__}, not a string; {fix}")
            if not value.strip():
                raise DataError(f"{where} row {n}: empty {field}; remove the row or fill in its {field}")
        label, row_id = row["label"], row.get("id")
        if type(label) is not int:
            raise DataError(f"{where} row {n}: label {label!r} is a {type(label).__name__}, not an int; "
                            f"use 0..{num_classes - 1}")
        if not 0 <= label < num_classes:
            raise DataError(f"{where} row {n}: label {label} is outside 0..{num_classes - 1}; use a class id in "
                            f"0..{num_classes - 1}")
        if not isinstance(row_id, str) or not row_id:
            raise DataError(f"{where} row {n}: missing or non-string 'id'; give every row a unique string id")
        if row_id in seen:
            raise DataError(
                f"{where} row {n}: duplicate id {row_id!r} (first at row {seen[row_id]}); ids must be unique"
            )
        seen[row_id] = n
