"""make_splits on synthetic pools: sizes, balance, disjointness, determinism, leakage, errors."""

from __future__ import annotations

import pytest

from w2slab.data import Splits, TaskData, make_splits
from w2slab.errors import DataError


def _pool(prefix: str, n0: int, n1: int) -> list[dict]:
    rows = [{"id": f"{prefix}/{i}", "text": f"{prefix} text {i}", "label": 0} for i in range(n0)]
    rows += [{"id": f"{prefix}/{n0 + i}", "text": f"{prefix} text {n0 + i}", "label": 1} for i in range(n1)]
    return rows


@pytest.fixture()
def task() -> TaskData:
    return TaskData(
        name="toy", train=_pool("train", 300, 500), test=_pool("test", 120, 80), notes=["toy note"]
    )


def _all(s: Splits) -> dict[str, list[dict]]:
    return {"weak_train": s.weak_train, "transfer": s.transfer, "test": s.test}


def test_sizes_balance_and_notes(task: TaskData):
    s = make_splits(task, n_train=400, n_test=100, seed=0)
    assert (len(s.weak_train), len(s.transfer), len(s.test)) == (200, 200, 100)
    for rows in _all(s).values():
        assert sum(r["label"] for r in rows) * 2 == len(rows)
    assert s.notes[0] == "toy note"


def test_odd_sizes_differ_by_at_most_one(task: TaskData):
    s = make_splits(task, n_train=203, n_test=51, seed=3)
    assert (len(s.weak_train), len(s.transfer), len(s.test)) == (101, 102, 51)
    for rows in _all(s).values():
        ones = sum(r["label"] for r in rows)
        assert abs(ones - (len(rows) - ones)) == len(rows) % 2


def test_disjoint_by_id_and_text(task: TaskData):
    s = make_splits(task, n_train=600, n_test=160, seed=1)
    parts = list(_all(s).values())
    for key in ("id", "text"):
        seen = [{r[key] for r in rows} for rows in parts]
        assert sum(map(len, seen)) == len(set().union(*seen)) == sum(map(len, parts))
    assert all(r["id"].startswith("train/") for r in s.weak_train + s.transfer)
    assert all(r["id"].startswith("test/") for r in s.test)


def test_deterministic_in_seed(task: TaskData):
    a = make_splits(task, n_train=300, n_test=80, seed=7)
    b = make_splits(task, n_train=300, n_test=80, seed=7)
    c = make_splits(task, n_train=300, n_test=80, seed=8)
    assert _all(a) == _all(b)
    assert [r["id"] for r in a.weak_train] != [r["id"] for r in c.weak_train]


def test_seeds_of_one_data_seed_share_pool_and_test_set(task: TaskData):
    """The seed repartitions one pool (so per-example caches serve every seed); data_seed draws new rows."""
    ids = lambda rows: {r["id"] for r in rows}  # noqa: E731
    a = make_splits(task, n_train=300, n_test=80, seed=0)
    b = make_splits(task, n_train=300, n_test=80, seed=1)
    c = make_splits(task, n_train=300, n_test=80, seed=0, data_seed=1)
    assert ids(a.weak_train) | ids(a.transfer) == ids(b.weak_train) | ids(b.transfer)
    assert ids(a.weak_train) != ids(b.weak_train)
    assert [r["id"] for r in a.test] == [r["id"] for r in b.test]
    assert ids(a.weak_train) | ids(a.transfer) != ids(c.weak_train) | ids(c.transfer)
    assert ids(a.test) != ids(c.test)
    for split in (b.weak_train, b.transfer):  # the repartition stays class-balanced
        assert abs(2 * sum(r["label"] for r in split) - len(split)) <= 1


def test_splits_are_shuffled_not_sorted_by_label(task: TaskData):
    s = make_splits(task, n_train=400, n_test=100, seed=0)
    labels = [r["label"] for r in s.weak_train]
    assert labels != sorted(labels)


def test_rows_are_copies(task: TaskData):
    s = make_splits(task, n_train=10, n_test=10, seed=0)
    s.weak_train[0]["text"] = "mutated"
    assert all(r["text"] != "mutated" for r in task.train)


def test_too_large_n_train_names_the_limit(task: TaskData):
    # 300 label-0 rows -> at most 600 balanced (+1 odd extra from the 500 label-1 rows per half).
    with pytest.raises(DataError, match=r"toy: n_train=900 .* 300 label-0 .* lower --n-train to at most 602"):
        make_splits(task, n_train=900, n_test=10, seed=0)
    make_splits(task, n_train=602, n_test=10, seed=0)


def test_too_large_n_test_names_the_limit(task: TaskData):
    with pytest.raises(DataError, match=r"lower --n-test to at most 161"):
        make_splits(task, n_train=10, n_test=500, seed=0)


def test_bad_sizes(task: TaskData):
    with pytest.raises(DataError, match="n-train"):
        make_splits(task, n_train=1, n_test=10, seed=0)
    with pytest.raises(DataError, match="n-test"):
        make_splits(task, n_train=10, n_test=0, seed=0)


def test_duplicate_texts_are_dropped_and_noted():
    train = _pool("train", 50, 50)
    test = _pool("test", 20, 20)
    train.append({"id": "train/dup", "text": train[0]["text"], "label": 0})  # duplicate inside train
    train.append({"id": "train/leak", "text": test[0]["text"], "label": 0})  # leaks into test
    task = TaskData(name="dups", train=train, test=test, notes=[])
    s = make_splits(task, n_train=100, n_test=40, seed=0)
    ids = {r["id"] for r in s.weak_train + s.transfer}
    assert "train/dup" not in ids and "train/leak" not in ids
    assert any("1 duplicate texts in the train pool" in n for n in s.notes)
    assert any("1 train-pool rows whose text is also in the test pool" in n for n in s.notes)
    with pytest.raises(DataError, match="at most 100"):
        make_splits(task, n_train=101, n_test=40, seed=0)
