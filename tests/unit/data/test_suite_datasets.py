"""The multiple-choice datasets beyond sciq and cosmos_qa (piqa, social_i_qa, quail, dream) on their real offline
files, and registered datasets sized to their pools by ``w2s run`` the way a user's file is."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from w2slab.cli import build_config, main, make_parser
from w2slab.data import DATASETS, dataset_available_locally, load_task, make_splits
from w2slab.errors import DataError

NEW = ("piqa", "social_i_qa", "quail", "dream")

# (train pool, test pool) rows after binarisation; one row per question, none dropped
POOLS = {"piqa": (1292, 546), "social_i_qa": (1357, 597), "quail": (1512, 652), "dream": (6116, 2041)}
TOTAL_QUESTIONS = {"piqa": 1838, "social_i_qa": 1954, "quail": 2164, "dream": 6116 + 2041}


def _prefix(name: str) -> tuple[str, str]:
    """What a formatted text starts with, and what introduces the shown answer."""
    return ("Goal: ", "\nSolution: ") if name == "piqa" else ("Context: ", "\nAnswer: ")


def _question_and_candidates(name: str, rec: dict) -> tuple[str, str, list[str]]:
    """A raw (Hub-schema) record's question, its correct answer and all its candidates."""
    if name == "piqa":
        sols = [rec["sol1"], rec["sol2"]]
        return rec["goal"], sols[rec["label"]], sols
    if name == "social_i_qa":
        answers = [rec["answerA"], rec["answerB"], rec["answerC"]]
        return rec["question"], answers[int(rec["label"]) - 1], answers
    if name == "quail":
        return rec["question"], rec["answers"][rec["correct_answer_id"]], rec["answers"]
    return rec["question"], rec["answer"], rec["choice"]


@pytest.mark.parametrize("name", NEW)
def test_loads_offline_with_plausible_pools_and_balanced_labels(name: str, tasks, data_root: Path):
    assert dataset_available_locally(name, data_root)
    task = tasks(name)
    assert (len(task.train), len(task.test)) == POOLS[name]
    assert len(task.train) + len(task.test) == TOTAL_QUESTIONS[name]
    for rows in (task.train, task.test):
        share = sum(r["label"] for r in rows) / len(rows)
        assert abs(share - 0.5) < 0.04, (name, share)
    start, answer = _prefix(name)
    for row in task.train + task.test:
        text = row["text"]
        assert text.startswith(start) and answer in text and text == text.strip()
        if name != "piqa":
            assert "\nQuestion: " in text
    assert not {r["id"] for r in task.train} & {r["id"] for r in task.test}
    splits = make_splits(task, n_train=200, n_test=100, seed=0, n_val=50)
    assert (len(splits.weak_train), len(splits.transfer), len(splits.test), len(splits.validation)) == (
        100, 100, 100, 50)


@pytest.mark.parametrize("name", NEW)
def test_each_row_shows_its_question_and_the_right_answer_exactly_when_label_is_one(name: str, data_root: Path):
    spec = DATASETS[name]
    rng = random.Random(0)
    start, answer_tag = _prefix(name)
    question_tag = "Goal: " if name == "piqa" else "\nQuestion: "
    for split in spec.local_splits:
        for rec in spec.reader(data_root / spec.folder, split)[:300]:
            question, correct, candidates = _question_and_candidates(name, rec)
            (row,) = spec.formatter(rec, rng)
            text = row["text"]
            assert f"{question_tag}{question.strip()}" in text
            shown = text.rsplit(answer_tag, 1)[1]
            assert shown in [c.strip() for c in candidates]
            assert (shown == correct.strip()) == bool(row["label"]), (name, rec, row)


def test_passages_and_dialogues_are_in_the_text(data_root: Path):
    quail = DATASETS["quail"].reader(data_root / "quail", "test")[0]
    (row,) = DATASETS["quail"].formatter(quail, random.Random(0))
    assert row["text"].startswith(f"Context: {quail['context'][:200]}") and len(quail["context"]) > 500
    dream = DATASETS["dream"].reader(data_root / "dream", "train")[0]
    (row,) = DATASETS["dream"].formatter(dream, random.Random(0))
    assert row["text"].startswith("Context: " + "\n".join(dream["dialogue"]) + "\nQuestion: ")


def test_quail_pools_share_no_passage(data_root: Path):
    reader = DATASETS["quail"].reader
    train = {r["context_id"] for r in reader(data_root / "quail", "train")}
    test = {r["context_id"] for r in reader(data_root / "quail", "test")}
    assert not train & test and (len(train), len(test)) == (84, 36)


@pytest.mark.parametrize("name", NEW)
def test_deterministic_for_a_seed_and_the_notes_say_where_the_pools_come_from(name: str, tasks, data_root: Path):
    again = load_task(name, data_root=data_root, seed=0)
    assert again.train == tasks(name).train and again.test == tasks(name).test
    other = load_task(name, data_root=data_root, seed=1)
    assert [r["id"] for r in other.train] == [r["id"] for r in again.train]  # the pools do not depend on the seed
    assert [r["label"] for r in other.train] != [r["label"] for r in again.train]  # the coins do
    assert any(note.startswith(f"{name}: ") for note in again.notes)
    if name in ("piqa", "social_i_qa"):
        assert any("carved" in note for note in again.notes)


def _data_root_with(tmp_path: Path, data_root: Path, name: str, replace: dict[str, str | None]) -> Path:
    """A data root holding ``name``'s required files as links to the real ones, with ``replace``'s files written
    (None: left out)."""
    spec = DATASETS[name]
    folder = tmp_path / "root" / spec.folder
    folder.mkdir(parents=True)
    for file in spec.required_files:
        if file in replace:
            if replace[file] is not None:
                (folder / file).write_text(replace[file], encoding="utf-8")
        else:
            (folder / file).symlink_to(data_root / spec.folder / file)
    return tmp_path / "root"


BROKEN = {
    "piqa missing labels": ("piqa", {"TEAM_dev-labels.lst": None}, "raw files missing"),
    "piqa bad json row": ("piqa", {"TEAM_dev.jsonl": '{"goal": "g", "sol1": "a", "sol2": "b"}\n{"goal": \n'},
                          "TEAM_dev.jsonl row 2: not valid JSON"),
    "piqa labels not matching rows": ("piqa", {"TEAM_dev-labels.lst": "0\n1\n"}, "2 labels for 1838 questions"),
    "social_i_qa label out of range": ("social_i_qa", {"TEAM_dev-labels.lst": "4\n" * 1954},
                                       "line 1: label '4' is not one of 1, 2, 3"),
    "social_i_qa row lacking a field": ("social_i_qa", {"TEAM_dev.jsonl": '{"context": "c", "question": "q"}\n',
                                                        "TEAM_dev-labels.lst": "1\n"},
                                        "row 1: expected text fields"),
    "quail truncated xml": ("quail", {"quail_1.3_dev.xml": "<data><text id='f1'><text_body>x"},
                            "not well-formed XML"),
    "quail question without a correct answer": (
        "quail", {"quail_1.3_dev.xml": "<data><text id='f1'><text_body>p</text_body><questions><q id='1'>q?"
                                       "<a id='1' correct='False'>a</a><a id='2' correct='False'>b</a></q>"
                                       "</questions></text></data>"}, "exactly one correct"),
    "dream missing test": ("dream", {"test.json": None}, "raw files missing"),
    "dream truncated json": ("dream", {"test.json": '[[["M: hi"], [{"question": "q"'}, "test.json: not valid JSON"),
    "dream wrong shape": ("dream", {"test.json": '[["M: hi"]]'}, "dialogue 1: expected [turns"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_a_missing_or_malformed_file_is_one_line(case: str, tmp_path: Path, data_root: Path):
    name, replace, needle = BROKEN[case]
    root = _data_root_with(tmp_path, data_root, name, replace)
    with pytest.raises(DataError) as info:
        load_task(name, data_root=root, source="local")
    message = str(info.value)
    assert needle in message and "\n" not in message, message


def test_a_malformed_file_stops_the_command_in_one_line(tmp_path: Path, data_root: Path, capsys):
    root = _data_root_with(tmp_path, data_root, "quail", {"quail_1.3_dev.xml": "<data><text"})
    code = main(["run", "--dataset", "quail", "--data-root", str(root), "--out-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: quail_1.3_dev.xml: not well-formed XML")


# --- registered datasets sized to their pools ------------------------------------------------------------------


def _config(*flags: str):
    return build_config(make_parser().parse_args(["run", *flags]))


def test_a_registered_dataset_gets_the_test_set_its_pool_supports_with_a_note(data_root: Path, capsys):
    cfg = _config("--dataset", "sciq", "--data-root", str(data_root))
    out = capsys.readouterr().out
    assert (cfg.n_train, cfg.n_test) == (2000, 963)  # sciq's 1,000 test questions, balanced
    assert "note: sciq's test pool supports n_test=963" in out
    task = load_task("sciq", data_root=data_root)
    assert len(make_splits(task, n_train=cfg.n_train, n_test=cfg.n_test, seed=0).test) == 963


def test_both_sizes_are_fitted_where_both_pools_are_short_and_a_size_set_is_kept(data_root: Path, capsys):
    cfg = _config("--dataset", "cosmos_qa", "--data-root", str(data_root))
    out = capsys.readouterr().out
    assert cfg.n_test < 1800 and cfg.n_train < 2000
    assert f"supports n_test={cfg.n_test}" in out and f"supports n_train={cfg.n_train}" in out
    make_splits(load_task("cosmos_qa", data_root=data_root), n_train=cfg.n_train, n_test=cfg.n_test, seed=0)
    kept = _config("--dataset", "cosmos_qa", "--data-root", str(data_root), "--n-train", "200")
    assert (kept.n_train, kept.n_test) == (200, cfg.n_test)
    assert "supports n_train" not in capsys.readouterr().out
    roomy = _config("--dataset", "dream", "--data-root", str(data_root))  # pools large enough: the defaults
    assert (roomy.n_train, roomy.n_test) == (2000, 1800) and "note:" not in capsys.readouterr().out


def test_an_explicit_too_large_n_test_is_still_refused_with_the_size_that_fits(data_root: Path, tmp_path, capsys):
    code = main(["run", "--dataset", "sciq", "--n-test", "1800", "--data-root", str(data_root),
                 "--out-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ")
    assert "n_test=1800" in err[0] and "lower --n-test to at most 963" in err[0]
    assert not (tmp_path / "runs").exists()


def test_a_registered_dataset_that_cannot_be_read_keeps_the_defaults_and_the_run_says_why(tmp_path: Path, capsys):
    nowhere = str(tmp_path / "nowhere")
    cfg = _config("--dataset", "sciq", "--data-root", nowhere)
    assert (cfg.n_train, cfg.n_test) == (2000, 1800) and "note:" not in capsys.readouterr().out
    code = main(["run", "--dataset", "sciq", "--data-root", nowhere, "--out-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "nowhere" in err[0] and "W2SLAB_DATA_ROOT" in err[0]
