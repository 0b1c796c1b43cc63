"""``make_splits``: formatted pools -> class-balanced, disjoint weak_train / transfer / validation / test splits.

Follows the reference code's ``n_docs``: ``n_train`` labelled documents split in half between the weak
supervisor's training set and the transfer set the weak model labels for the strong student. ``n_val`` more rows
of the train pool form the validation set, on which every recipe and default choice is made, so the test set is
read once, for the table. Any text shared between splits would leak labels, so duplicates are removed before
sampling and disjointness is checked again afterwards.
"""

from __future__ import annotations

import random

from w2slab.data.types import Splits, TaskData, content
from w2slab.errors import DataError


def _dedupe(
    rows: list[dict], banned: set[str] | frozenset[str] = frozenset()
) -> tuple[list[dict], int, int]:
    """Keep the first row per content (text or image); drop contents in ``banned``. Return (rows, n_dup, n_banned)."""
    seen: set[str] = set()
    kept: list[dict] = []
    n_dup = n_banned = 0
    for row in rows:
        value = content(row)
        if value in banned:
            n_banned += 1
        elif value in seen:
            n_dup += 1
        else:
            seen.add(value)
            kept.append(row)
    return kept, n_dup, n_banned


def _extras(remainder: int, left: list[int], rng: random.Random) -> list[int]:
    """Which ``remainder`` classes get one row more than ``k // K``: those with the most rows left, ties by ``rng``.

    For K=2 this is the rule binary splits always used: the class with more rows left, a coin flip on a tie.
    """
    chosen: list[int] = []
    candidates = list(range(len(left)))
    for _ in range(remainder):
        most = max(left[c] for c in candidates)
        tied = [c for c in candidates if left[c] == most]
        pick = tied[rng.randrange(len(tied))] if len(tied) > 1 else tied[0]
        chosen.append(pick)
        candidates.remove(pick)
    return chosen


def _class_counts(sizes: list[int], avail: list[int], rng: random.Random) -> list[tuple[int, ...]] | None:
    """Per split, the rows of each class: k // K each, the remainder to the classes with more left; None if short."""
    num_classes = len(avail)
    left = list(avail)
    plan = []
    for k in sizes:
        counts = [k // num_classes] * num_classes
        for c in _extras(k % num_classes, left, rng):
            counts[c] += 1
        if any(counts[c] > left[c] for c in range(num_classes)):
            return None
        left = [left[c] - counts[c] for c in range(num_classes)]
        plan.append(tuple(counts))
    return plan


def _available(pool: list[dict], num_classes: int) -> list[int]:
    counts = [0] * num_classes
    for row in pool:
        counts[row["label"]] += 1
    return counts


def _max_feasible(halves: bool, requested: int, avail: list[int]) -> int:
    """Largest n <= requested the pool can supply balanced (fixed rng: only feasibility matters)."""
    for n in range(min(requested, sum(avail)), 0, -1):
        sizes = [n // 2, n - n // 2] if halves else [n]
        if _class_counts(sizes, avail, random.Random(0)) is not None:
            return n
    return 0


def _sample(pool: list[dict], sizes: list[int], rng: random.Random, num_classes: int) -> list[list[dict]] | None:
    by_label: list[list[dict]] = [[r for r in pool if r["label"] == c] for c in range(num_classes)]
    plan = _class_counts(sizes, [len(rows) for rows in by_label], rng)
    if plan is None:
        return None
    for rows in by_label:
        rng.shuffle(rows)
    used = [0] * num_classes
    out = []
    for counts in plan:
        split: list[dict] = []
        for label in range(num_classes):
            split.extend(dict(r) for r in by_label[label][used[label] : used[label] + counts[label]])
            used[label] += counts[label]
        rng.shuffle(split)
        out.append(split)
    return out


def _too_few(task: TaskData, pool: list[dict], what: str, requested: int, halves: bool) -> DataError:
    avail = _available(pool, task.num_classes)
    most = _max_feasible(halves, requested, avail)
    unit = {"image": "images", "vector": "vectors"}.get(task.modality, "texts")
    if task.num_classes == 2:
        have = f"only {avail[0]} label-0 and {avail[1]} label-1 unique {unit}"
    else:
        rarest = min(range(task.num_classes), key=lambda c: avail[c])
        have = f"only {avail[rarest]} unique {unit} of class {rarest} (its rarest of {task.num_classes} classes)"
    return DataError(
        f"{task.name}: {what}={requested} class-balanced examples requested but the {what[2:]} pool has "
        f"{have}; lower --{what.replace('_', '-')} to at most {most}"
    )


def _check_disjoint(splits: dict[str, list[dict]], name: str) -> None:
    for key, value_of in (("id", lambda row: row["id"]), ("content", content)):
        owner: dict[str, str] = {}
        for split_name, rows in splits.items():
            for row in rows:
                value = value_of(row)
                prev = owner.setdefault(value, split_name)
                if prev != split_name:
                    raise DataError(
                        f"{name}: {key} {value[:60]!r} is in both {prev} and {split_name} (leakage); "
                        "remove duplicate rows from the dataset"
                    )
        if sum(len(rows) for rows in splits.values()) != len(owner):
            raise DataError(
                f"{name}: duplicate {key}s inside a split; remove duplicate rows from the dataset"
            )


def make_splits(task: TaskData, *, n_train: int, n_test: int, seed: int, data_seed: int = 0, n_val: int = 0
                ) -> Splits:
    """Sample weak_train (n_train // 2), transfer (the rest), test (n_test) and validation (n_val), each
    class-balanced.

    Validation is drawn by ``data_seed`` from the train pool's rows outside the pool, after the test set, so the
    pool and the test set are those of a split without validation, and every seed of a data_seed shares one
    validation set (choices compare across seeds). A train pool with fewer spare rows gives a smaller validation
    set, with a note.

    ``data_seed`` draws the *pool*, the n_train rows of ``task.train`` that weak_train and transfer
    share, and the test set from ``task.test``; ``seed`` partitions the pool into weak_train and
    transfer. So seeds of one data_seed see the same examples in different roles and the same test set
    (paired comparisons across seeds, and every per-example cache reused), while a new data_seed draws
    new rows. The same (seed, data_seed) gives identical splits. Raises :class:`DataError` when a pool
    is too small, naming the largest feasible n.
    """
    if not isinstance(n_train, int) or n_train < 2:
        raise DataError(
            f"n_train={n_train!r} is too small; set --n-train to at least 2 (half weak, half transfer)"
        )
    if not isinstance(n_test, int) or n_test < 1:
        raise DataError(f"n_test={n_test!r} is too small; set --n-test to at least 1")
    notes = list(task.notes)
    test_pool, test_dups, _ = _dedupe(task.test)
    test_contents = {content(r) for r in test_pool}
    test_ids = {r["id"] for r in test_pool}
    train_pool, train_dups, leaked = _dedupe([r for r in task.train if r["id"] not in test_ids], test_contents)
    unit = {"image": "images", "vector": "vectors"}.get(task.modality, "texts")
    if test_dups or train_dups:
        notes.append(
            f"{task.name}: dropped {train_dups} duplicate {unit} in the train pool and {test_dups} in the "
            "test pool"
        )
    if leaked:
        notes.append(
            f"{task.name}: dropped {leaked} train-pool rows whose {unit[:-1]} is also in the test pool (leakage)"
        )

    rng = random.Random(f"splits|{task.name}|{data_seed}")
    n_weak = n_train // 2
    k = task.num_classes
    train_parts = _sample(train_pool, [n_weak, n_train - n_weak], rng, k)
    if train_parts is None:
        raise _too_few(task, train_pool, "n_train", n_train, halves=True)
    test_parts = _sample(test_pool, [n_test], rng, k)
    if test_parts is None:
        raise _too_few(task, test_pool, "n_test", n_test, halves=False)
    # the pool's rows in a fixed order, then partitioned by the seed (always feasible: each half of the pool
    # is balanced to within one row, so any balanced halving of it is too)
    pool = sorted(train_parts[0] + train_parts[1], key=lambda r: r["id"])
    partition = random.Random(f"partition|{task.name}|{data_seed}|{seed}")
    train_parts = _sample(pool, [n_weak, n_train - n_weak], partition, k)
    if train_parts is None:  # pragma: no cover - see above
        raise DataError(f"{task.name}: could not partition the pool of {n_train} rows class-balanced")
    validation = _validation(train_pool, pool, n_val, rng, task, notes)
    splits = {"weak_train": train_parts[0], "transfer": train_parts[1], "validation": validation,
              "test": test_parts[0]}
    _check_disjoint(splits, task.name)
    return Splits(weak_train=splits["weak_train"], transfer=splits["transfer"], test=splits["test"], notes=notes,
                  num_classes=k, class_names=task.class_names, validation=validation)


def _validation(train_pool: list[dict], pool: list[dict], n_val: int, rng: random.Random, task: TaskData,
                notes: list[str]) -> list[dict]:
    """``n_val`` class-balanced rows of the train pool outside ``pool`` (fewer, with a note, when it is short)."""
    if n_val <= 0:
        return []
    used = {row["id"] for row in pool}
    spare = [row for row in train_pool if row["id"] not in used]
    size = _max_feasible(False, n_val, _available(spare, task.num_classes))
    if size < n_val:
        notes.append(f"{task.name}: validation has {size} class-balanced rows (of n_val={n_val} requested): the "
                     "train pool has no more beside weak_train and transfer")
    if size == 0:
        return []
    return _sample(spare, [size], rng, task.num_classes)[0]


def largest_n_train(task: TaskData, *, n_test: int, seed: int, cap: int, data_seed: int = 0) -> int:
    """The largest even n_train <= ``cap`` that :func:`make_splits` can serve class-balanced from ``task``.

    Found by bisection over make_splits itself (feasibility grows monotonically with the pool), so it can never
    disagree with the split stage. A test pool too small for ``n_test`` raises that error unchanged.
    """
    def feasible(n: int) -> bool:
        try:
            make_splits(task, n_train=n, n_test=n_test, seed=seed, data_seed=data_seed)
        except DataError as exc:
            if "n_test" in str(exc):
                raise
            return False
        return True

    if feasible(cap):
        return cap
    low, high = 2, cap // 2  # in units of 2 examples
    if not feasible(2 * low):  # raises the precise "too few" message below
        make_splits(task, n_train=2 * low, n_test=n_test, seed=seed, data_seed=data_seed)
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if feasible(2 * mid) else (low, mid - 1)
    return 2 * low


def largest_n_test(task: TaskData, *, cap: int) -> int:
    """The largest n_test <= ``cap`` that :func:`make_splits` can serve class-balanced from ``task``'s test pool.

    The test pool does not depend on the seeds (only its duplicates are dropped), so neither does this; 0 when
    some class has no test row at all.
    """
    test_pool, _, _ = _dedupe(task.test)
    return _max_feasible(False, cap, _available(test_pool, task.num_classes))
