"""The user-file loader (.jsonl / .csv): conversions, row-numbered errors, deterministic carving."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from w2slab.data import load_task, make_splits, validate_rows
from w2slab.errors import DataError


def _jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _good_rows(n: int = 100) -> list[dict]:
    return [{"text": f"sample number {i}", "label": i % 2} for i in range(n)]


def test_good_jsonl(tmp_path: Path):
    task = load_task(str(_jsonl(tmp_path / "mine.jsonl", _good_rows())))
    assert task.name == "mine"
    assert len(task.train) + len(task.test) == 100 and 60 <= len(task.train) <= 95
    validate_rows(task.train + task.test, "mine")
    assert any("carved" in n for n in task.notes)
    assert load_task(str(tmp_path / "mine.jsonl")) == task  # deterministic
    splits = make_splits(task, n_train=40, n_test=6, seed=0)
    assert len(splits.weak_train) == 20


def test_good_csv_with_label_spellings(tmp_path: Path):
    labels = ["0", "1", "true", "False", " 1 ", "TRUE"] * 5
    path = _csv(
        tmp_path / "mine.csv",
        ["text", "label"],
        [[f"row {i}, with comma", lab] for i, lab in enumerate(labels)],
    )
    task = load_task(str(path))
    rows = sorted(task.train + task.test, key=lambda r: int(r["id"].split("/")[1]))
    assert [r["label"] for r in rows] == [0, 1, 1, 0, 1, 1] * 5
    assert rows[0]["text"] == "row 0, with comma"


def test_bool_labels_and_custom_fields(tmp_path: Path):
    rows = [{"q": f"question {i}?", "a": f"answer {i}", "ok": bool(i % 2)} for i in range(20)]
    task = load_task(
        str(_jsonl(tmp_path / "qa.jsonl", rows)), question_field="q", answer_field="a", label_field="ok"
    )
    row = next(r for r in task.train + task.test if r["id"] == "qa/4")
    assert row == {"id": "qa/4", "text": "Q: question 3? A: answer 3", "label": 1}


def test_custom_text_field(tmp_path: Path):
    rows = [{"body": f"b {i}", "y": i % 2} for i in range(10)]
    task = load_task(str(_jsonl(tmp_path / "b.jsonl", rows)), text_field="body", label_field="y")
    assert {r["text"] for r in task.train + task.test} == {f"b {i}" for i in range(10)}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            {"text": "no label here"},
            r"bad.jsonl row 3: missing 'label' field; every row needs text and label \(a class id 0, 1, ..., K-1",
        ),
        ({"text": "two", "label": -2}, r"bad.jsonl row 3: label -2 is negative"),
        ({"text": "four", "label": 3}, r"bad.jsonl: labels run up to 3 but class 2 never occurs"),
        ({"text": "   ", "label": 1}, r"bad.jsonl row 3: empty text"),
        ({"label": 1}, r"bad.jsonl row 3: missing 'text' field"),
        ({"text": "x", "label": "maybe"}, r"bad.jsonl row 3: label maybe is not a class id"),
        ({"text": 5, "label": 1}, r"bad.jsonl row 3: text '5' is not a string"),
        ([1, 2], r"bad.jsonl row 3: expected a JSON object"),
    ],
)
def test_bad_jsonl_rows_name_the_row(tmp_path: Path, bad: object, message: str):
    path = _jsonl(tmp_path / "bad.jsonl", [{"text": "a", "label": 0}, {"text": "b", "label": 1}, bad])
    with pytest.raises(DataError, match=message):
        load_task(str(path))


def test_bad_csv_rows_name_the_row(tmp_path: Path):
    rows = [["fine", "0"], ["also fine", "1"], ["", "1"]]
    with pytest.raises(DataError, match=r"bad.csv row 3: empty text"):
        load_task(str(_csv(tmp_path / "bad.csv", ["text", "label"], rows)))
    with pytest.raises(DataError, match=r"bad2.csv: labels run up to 2 but class 1 never occurs"):
        load_task(str(_csv(tmp_path / "bad2.csv", ["text", "label"], [["a", "0"], ["b", "2"]])))
    with pytest.raises(DataError, match=r"bad3.csv row 1: missing 'label' field"):
        load_task(str(_csv(tmp_path / "bad3.csv", ["text", "y"], [["a", "0"]])))
    with pytest.raises(DataError, match=r"bad4.csv row 2: missing 'label' value"):
        load_task(str(_csv(tmp_path / "bad4.csv", ["text", "label"], [["a", "0"], ["b", ""]])))


def test_invalid_json_and_empty_file(tmp_path: Path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"text": "a", "label": 0}\n\n{"text": oops}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"broken.jsonl row 2: not valid JSON"):
        load_task(str(path))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(DataError, match="no rows"):
        load_task(str(empty))


def test_unsupported_suffix_and_half_qa_mapping(tmp_path: Path):
    txt = tmp_path / "data.txt"
    txt.write_text("hello\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"give a .jsonl or .csv file"):
        load_task(str(txt))
    path = _jsonl(tmp_path / "ok.jsonl", _good_rows(4))
    with pytest.raises(DataError, match="set both"):
        load_task(str(path), question_field="q")


def test_validate_rows_is_strict():
    validate_rows([{"id": "a", "text": "t", "label": 1}], "x")
    with pytest.raises(DataError, match=r"x row 1: label True is a bool"):
        validate_rows([{"id": "a", "text": "t", "label": True}], "x")
    with pytest.raises(DataError, match=r"x row 2: duplicate id 'a' \(first at row 1\)"):
        validate_rows([{"id": "a", "text": "t", "label": 1}, {"id": "a", "text": "u", "label": 0}], "x")
    with pytest.raises(DataError, match=r"x row 1: missing 'label' field"):
        validate_rows([{"id": "a", "text": "t"}], "x")


def test_a_data_file_is_not_read_whole_to_inspect_its_head(tmp_path, monkeypatch):
    """The binary check looks at 8 KB; reading a 4 GB file whole for it cost its size in memory first."""
    from w2slab.data import custom

    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "w5 w6", "label": 0}\n{"text": "w7 w8", "label": 1}\n')
    monkeypatch.setattr(Path, "read_bytes", lambda self: (_ for _ in ()).throw(AssertionError("read whole")))
    assert [r["label"] for r in custom._records(path)] == [0, 1]
