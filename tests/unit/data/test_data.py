"""Registered datasets on their real offline files: loading, formatting, notes, determinism, errors."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from w2slab.data import (
    DATASETS,
    DatasetSpec,
    dataset_available_locally,
    list_datasets,
    load_task,
    make_splits,
    resolve_data_root,
    validate_rows,
)
from w2slab.data.formatters import format_anthropic_hh, format_cosmos_qa, format_sciq
from w2slab.errors import DataError

CORE = ("sciq", "boolq", "anthropic_hh", "cosmos_qa", "amazon_polarity", "imdb", "sst2")

# What a formatted text must look like, per dataset.
TEXT_CHECKS = {
    "sciq": lambda t: t.startswith("Q: ") and " A: " in t,
    "boolq": lambda t: t.startswith("Passage: ") and "\nQuestion: " in t,
    "anthropic_hh": lambda t: t.startswith("Human:") and "\n\nAssistant:" in t,  # the last exchange of a pair
    "cosmos_qa": lambda t: t.startswith("Context: ") and "\nQuestion: " in t and "\nAnswer: " in t,
    "amazon_polarity": lambda t: len(t) > 20,
    "amazon_multidomain": lambda t: len(t) > 20,
    "imdb": lambda t: len(t) > 20,
    "sst2": lambda t: t == t.strip(),
    "sst2_sentences": lambda t: t == t.strip() and " " in t,  # whole sentences, not phrases
    "amazon_fine_foods": lambda t: len(t) > 5,
    "piqa": lambda t: t.startswith("Goal: ") and "\nSolution: " in t,
    "social_i_qa": lambda t: t.startswith("Context: ") and "\nQuestion: " in t and "\nAnswer: " in t,
    "quail": lambda t: t.startswith("Context: ") and "\nQuestion: " in t and "\nAnswer: " in t,
    "dream": lambda t: t.startswith("Context: ") and "\nQuestion: " in t and "\nAnswer: " in t,
}
# a choice pair's texts look like the binarised dataset's
TEXT_CHECKS |= {f"{name}_choices": TEXT_CHECKS[name] for name in ("sciq", "cosmos_qa", "piqa", "social_i_qa", "quail",
                                                                  "dream")}


def test_registry_covers_core_datasets():
    assert set(CORE) <= set(DATASETS)
    assert all(isinstance(s, DatasetSpec) for s in list_datasets())
    assert DATASETS["sciq"].hub_id == "allenai/sciq"
    assert DATASETS["amazon_polarity"].hub_id == "fancyzhx/amazon_polarity"
    assert DATASETS["anthropic_hh"].hub_id == "Anthropic/hh-rlhf"


TEXT_DATASETS = [name for name, spec in DATASETS.items() if spec.modality == "text"]


@pytest.mark.parametrize("name", TEXT_DATASETS)
def test_dataset_loads_from_real_files(name: str, tasks, data_root: Path):
    assert dataset_available_locally(name, data_root)
    task = tasks(name)
    assert task.name == name
    for split, rows in (("train", task.train), ("test", task.test)):
        validate_rows(rows, f"{name} {split}")
        assert {r["label"] for r in rows} == {0, 1}, f"{name} {split} pool lacks a class"
        assert all(TEXT_CHECKS[name](r["text"]) for r in rows[:200]), rows[0]["text"][:200]
    assert not {r["id"] for r in task.train} & {r["id"] for r in task.test}
    splits = make_splits(task, n_train=200, n_test=100, seed=0)
    assert (len(splits.weak_train), len(splits.transfer), len(splits.test)) == (100, 100, 100)


@pytest.mark.parametrize("name", ["anthropic_hh", "cosmos_qa", "amazon_polarity", "amazon_multidomain"])
def test_carved_datasets_say_so(name: str, tasks):
    assert any("carved" in n for n in tasks(name).notes)


def test_amazon_polarity_stand_in_note(tasks):
    assert any(
        "amazon_polarity is not available offline" in n and "amazon_multidomain" in n
        for n in tasks("amazon_polarity").notes
    )


def test_expected_pool_sizes(tasks):
    assert (len(tasks("sciq").train), len(tasks("sciq").test)) == (11679, 1000)
    assert (len(tasks("boolq").train), len(tasks("boolq").test)) == (9427, 3270)
    assert (len(tasks("imdb").train), len(tasks("imdb").test)) == (25000, 25000)
    assert (len(tasks("sst2").train), len(tasks("sst2").test)) == (67349, 872)
    hh = tasks("anthropic_hh")
    assert 8400 < len(hh.train) + len(hh.test) <= 8552 and 0.6 < len(hh.train) / 8552 < 0.8


def _hh_raw(data_root: Path) -> list[dict]:
    return DATASETS["anthropic_hh"].reader(data_root / "anthropic_hh", "all")


def test_hh_pairs_hold_the_last_exchange_with_each_answer_and_label_marks_chosen(data_root: Path):
    import random

    rng = random.Random(0)
    labels = set()
    for rec in _hh_raw(data_root)[:300]:
        rows = format_anthropic_hh(rec, rng)
        if not rows:
            continue
        (row,) = rows
        chosen = rec["chosen"].rsplit("\n\nAssistant:", 1)[1].strip()
        rejected = rec["rejected"].rsplit("\n\nAssistant:", 1)[1].strip()
        first, second = (chosen, rejected) if row["label"] == 1 else (rejected, chosen)
        assert row["text"].endswith(first) and row["text_b"].endswith(second)
        for text in (row["text"], row["text_b"]):  # one exchange: the last human turn and its answer
            assert text.startswith("Human:") and text.count("\n\nAssistant:") == 1 and "\n\nHuman:" not in text
        labels.add(row["label"])
    assert labels == {0, 1}


def test_sciq_label_one_shows_correct_answer(data_root: Path):
    import random

    raw = DATASETS["sciq"].reader(data_root / "sciq", "test")
    rng = random.Random(0)
    for rec in raw[:200]:
        (row,) = format_sciq(rec, rng)
        prefix = f"Q: {rec['question']} A: "
        assert row["text"].startswith(prefix)
        answer = row["text"][len(prefix) :]
        if row["label"]:
            assert answer == rec["correct_answer"]
        else:
            assert answer in (rec["distractor1"], rec["distractor2"], rec["distractor3"])


def test_cosmos_none_of_the_above_is_label_zero(data_root: Path):
    import random

    raw = DATASETS["cosmos_qa"].reader(data_root / "cosmos_qa", "all")
    nota = [r for r in raw if "None of the above choices ." in r[f"answer{r['label']}"]]
    assert nota, "expected some 'None of the above' gold answers in cosmos_qa"
    rng = random.Random(0)
    for rec in nota[:50]:
        (row,) = format_cosmos_qa(rec, rng)
        assert row["label"] == 0 and not row["text"].endswith("Answer: " + rec[f"answer{rec['label']}"])


@pytest.mark.parametrize("name", ["sciq", "cosmos_qa", "anthropic_hh"])
def test_formatting_is_deterministic_in_seed(name: str, tasks, data_root: Path):
    again = load_task(name, data_root=data_root, seed=0)
    assert again.train == tasks(name).train and again.test == tasks(name).test
    other = load_task(name, data_root=data_root, seed=1)
    assert other.train != again.train
    assert [r["id"] for r in other.train] == [r["id"] for r in again.train]  # pools do not depend on the seed


def test_env_var_data_root(monkeypatch: pytest.MonkeyPatch, data_root: Path):
    monkeypatch.setenv("W2SLAB_DATA_ROOT", str(data_root))
    assert resolve_data_root(None) == data_root
    assert len(load_task("cosmos_qa").train) > 1000


# --- errors that need no data ---------------------------------------------------------------------


def test_missing_data_root_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv("W2SLAB_DATA_ROOT", raising=False)
    with pytest.raises(DataError, match="W2SLAB_DATA_ROOT or --data-root"):
        resolve_data_root(None)
    with pytest.raises(DataError, match="not found; set W2SLAB_DATA_ROOT"):
        resolve_data_root(tmp_path / "nope")
    with pytest.raises(DataError, match="not found"):
        load_task("sciq", data_root=tmp_path / "nope", source="local")


def test_incomplete_data_root(tmp_path: Path):
    assert not dataset_available_locally("sciq", tmp_path)
    assert not dataset_available_locally("no_such_dataset", tmp_path)
    with pytest.raises(DataError, match="raw files missing"):
        load_task("sciq", data_root=tmp_path)


def test_unknown_dataset_lists_names():
    with pytest.raises(DataError, match="unknown dataset 'nope'.*sciq.*boolq"):
        load_task("nope")
    with pytest.raises(DataError, match="not found"):
        load_task("missing_file.jsonl")
    with pytest.raises(DataError, match="unknown source"):
        load_task("sciq", source="web")


def test_hub_path_errors(tmp_path: Path):
    with pytest.raises(DataError, match="no Hugging Face Hub copy"):
        load_task("amazon_multidomain", source="hub")
    if importlib.util.find_spec("datasets") is None:
        with pytest.raises(DataError, match="pip install datasets"):
            load_task("sciq", source="hub")


def test_sst2_sentences_is_sentences_in_both_pools(tasks):
    """GLUE's SST-2 trains on treebank phrases and tests on sentences; sst2_sentences holds sentences in both, so
    transfer and test come from one distribution (similar length profiles)."""
    task = tasks("sst2_sentences")
    assert (len(task.train), len(task.test)) == (6920 + 872, 1821)  # stsa.binary train + dev, test
    mean_words = {name: np.mean([len(r["text"].split()) for r in rows]) for name, rows in
                  (("train", task.train), ("test", task.test))}
    assert 17 < mean_words["train"] < 23 and 17 < mean_words["test"] < 23
    assert abs(mean_words["train"] - mean_words["test"]) < 1.5


_CHOICE_DATASETS = ["sciq", "cosmos_qa", "piqa", "social_i_qa", "quail", "dream"]


@pytest.mark.parametrize("name", _CHOICE_DATASETS)
def test_choice_pairs_put_the_correct_answer_on_the_labelled_side(name: str, data_root: Path):
    """A ``<name>_choices`` row is the question with its correct answer against one other candidate: the two texts
    share the question and differ only in the answer, label 1 exactly when ``text`` holds the correct one, and the
    coin is balanced."""
    import random

    spec = DATASETS[f"{name}_choices"]
    raw = spec.reader(data_root / spec.folder, spec.local_splits[-1])[:200]
    rng = random.Random(0)
    labels = []
    for rec in raw:
        rows = spec.formatter(rec, rng)
        if not rows:
            continue
        (row,) = rows
        correct, other = (row["text"], row["text_b"]) if row["label"] else (row["text_b"], row["text"])
        assert correct != other and os.path.commonprefix([correct, other])  # one question, two answers
        binarised = DATASETS[name].formatter(rec, random.Random(7))  # the same question, as one shown answer
        if binarised and binarised[0]["label"] == 1:  # it shows the correct answer
            assert correct.split() == binarised[0]["text"].split()
        labels.append(row["label"])
    assert len(labels) > 150 and 0.35 < sum(labels) / len(labels) < 0.65


def test_choice_pairs_load_as_preference_pairs(tasks):
    task = tasks("piqa_choices")
    assert task.pairwise and all(row["text"] != row["text_b"] for row in task.train)
