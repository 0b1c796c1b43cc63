"""Row validation: catch malformed rows at load time, with the row number, not deep inside training."""

from __future__ import annotations

from w2slab.errors import DataError

_FIX = "every row needs text and label (0 or 1)"


def validate_rows(rows: list[dict], where: str) -> None:
    """Raise :class:`DataError` naming ``where`` and the 1-based row for the first bad row.

    A valid row is a dict with a unique non-empty str ``id``, a str ``text`` that is non-empty after
    stripping, and an int ``label`` in {0, 1} (bools and strings are rejected here; only the custom
    file loader converts them, so that registered datasets cannot silently carry odd labels).
    """
    seen: dict[str, int] = {}
    for n, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise DataError(f"{where} row {n}: expected a mapping, got {type(row).__name__}; {_FIX}")
        for field in ("text", "label"):
            if field not in row or row[field] is None:
                raise DataError(f"{where} row {n}: missing {field!r} field; {_FIX}")
        text, label, row_id = row["text"], row["label"], row.get("id")
        if not isinstance(text, str):
            raise DataError(f"{where} row {n}: text is a {type(text).__name__}, not a string; {_FIX}")
        if not text.strip():
            raise DataError(f"{where} row {n}: empty text; remove the row or fill in its text")
        if type(label) is not int:
            raise DataError(
                f"{where} row {n}: label {label!r} is a {type(label).__name__}, not an int; use 0 or 1"
            )
        if label not in (0, 1):
            raise DataError(f"{where} row {n}: label {label} is outside {{0, 1}}; use 0 or 1")
        if not isinstance(row_id, str) or not row_id:
            raise DataError(f"{where} row {n}: missing or non-string 'id'; give every row a unique string id")
        if row_id in seen:
            raise DataError(
                f"{where} row {n}: duplicate id {row_id!r} (first at row {seen[row_id]}); ids must be unique"
            )
        seen[row_id] = n
