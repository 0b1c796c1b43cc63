"""Readers for the offline raw files, each yielding records with the Hugging Face Hub field names.

Keeping the Hub schema means one formatter serves both the offline files and ``datasets.load_dataset``,
so an offline run and a Hub run format examples identically.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

from w2slab.data.carve import hash_fraction
from w2slab.errors import DataError

ALL = "all"  # split name for datasets that ship a single labelled split offline (carved later)


def require_file(path: Path) -> Path:
    """``path`` if it is a file, else the one-line error that names the data root to fix."""
    if not path.is_file():
        raise DataError(
            f"raw file {str(path)!r} not found; point --data-root / W2SLAB_DATA_ROOT at a complete copy "
            "of the shared datasets folder"
        )
    return path


def _read_jsonl(path: Path) -> list[dict]:
    """The rows of a raw JSONL file; a row the parser cannot read (bad JSON, nested thousands of levels deep,
    which ends the parser in a RecursionError) is one line naming the file and the row."""
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(require_file(path), "rt", encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except (json.JSONDecodeError, RecursionError) as exc:
                why = "nested too deeply to read" if isinstance(exc, RecursionError) else f"not valid JSON ({exc.msg})"
                raise DataError(f"{path.name} row {len(rows) + 1}: {why}; replace the file with a complete copy of "
                                "the shared datasets folder") from None
    return rows


def read_sciq(folder: Path, split: str) -> list[dict]:
    """SciQ.zip -> ``{train,test}.json`` read in memory (the archive is never extracted to disk)."""
    with zipfile.ZipFile(require_file(folder / "SciQ.zip")) as zf:
        member = next(
            n for n in zf.namelist() if n.endswith(f"/{split}.json") and not n.startswith("__MACOSX")
        )
        records = json.loads(zf.read(member).decode("utf-8"))
    keys = ("question", "distractor1", "distractor2", "distractor3", "correct_answer", "support")
    return [{k: r.get(k, "") for k in keys} for r in records]


def read_boolq(folder: Path, split: str) -> list[dict]:
    """``derived/{train,validation}.jsonl`` already match google/boolq (answer is a bool)."""
    name = {"train": "train.jsonl", "test": "validation.jsonl"}[split]
    return [
        {"question": r["question"], "passage": r["passage"], "answer": bool(r["answer"])}
        for r in _read_jsonl(folder / "derived" / name)
    ]


HH_FILES = (
    "harmless-base_test.jsonl.gz",
    "helpful-base_test.jsonl.gz",
    "helpful-online_test.jsonl.gz",
    "helpful-rejection-sampled_test.jsonl.gz",
)


def read_anthropic_hh(folder: Path, split: str) -> list[dict]:
    """All four test subsets concatenated in a fixed order (only test files exist offline)."""
    records: list[dict] = []
    for name in HH_FILES:
        records.extend({"chosen": r["chosen"], "rejected": r["rejected"]} for r in _read_jsonl(folder / name))
    return records


def read_cosmos_qa(folder: Path, split: str) -> list[dict]:
    """``valid.csv`` (the only labelled split offline); label becomes an int like on the Hub."""
    with open(require_file(folder / "valid.csv"), newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    keys = ("context", "question", "answer0", "answer1", "answer2", "answer3")
    return [{**{k: r[k] for k in keys}, "label": int(r["label"])} for r in rows]


_REVIEW = re.compile(r"<review>(.*?)</review>", re.DOTALL)
_TITLE = re.compile(r"<title>(.*?)</title>", re.DOTALL)
_BODY = re.compile(r"<review_text>(.*?)</review_text>", re.DOTALL)
AMAZON_DOMAINS = ("books", "dvd", "electronics", "kitchen")


def read_amazon_multidomain(folder: Path, split: str) -> list[dict]:
    """Blitzer et al. pseudo-XML (not well-formed, hence regex) -> amazon_polarity's title/content/label."""
    records: list[dict] = []
    for domain in AMAZON_DOMAINS:
        for polarity, label in (("negative", 0), ("positive", 1)):
            raw = require_file(folder / f"{domain}.{polarity}.review").read_text(encoding="utf-8", errors="replace")
            for block in _REVIEW.findall(raw):
                title, body = _TITLE.search(block), _BODY.search(block)
                records.append(
                    {
                        "title": title.group(1).strip() if title else "",
                        "content": body.group(1).strip() if body else "",
                        "label": label,
                    }
                )
    return records


def read_imdb(folder: Path, split: str) -> list[dict]:
    """Full aclImdb train/test as gzip JSON lines (text, label)."""
    return [
        {"text": r["text"], "label": int(r["label"])}
        for r in _read_jsonl(folder / f"aclImdb_{split}.jsonl.gz")
    ]


def _read_sst2_tsv(path: Path) -> list[dict]:
    # Plain tab split, not csv: sentences contain quote characters that csv would treat specially.
    with open(require_file(path), encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    records = []
    for line in lines[1:]:
        if not line.strip():
            continue
        sentence, _, label = line.rpartition("\t")
        records.append({"sentence": sentence, "label": int(label)})
    return records


def read_sst2(folder: Path, split: str) -> list[dict]:
    """GLUE SST-2: train = part + heldout (= full GLUE train), test = GLUE validation."""
    if split == "train":
        return _read_sst2_tsv(folder / "glue_train_part.tsv") + _read_sst2_tsv(
            folder / "glue_train_heldout.tsv"
        )
    return _read_sst2_tsv(folder / "glue_validation.tsv")


def _read_stsa(path: Path) -> list[dict]:
    # "<label> <tokenised, lower-cased sentence>" per line (Kim 2014's sentence-level SST-2)
    records = []
    with open(require_file(path), encoding="utf-8") as fh:
        for line in fh:
            label, _, sentence = line.strip().partition(" ")
            if sentence:
                records.append({"text": sentence, "label": int(label)})
    return records


def read_sst2_sentences(folder: Path, split: str) -> list[dict]:
    """Sentence-level SST-2 (``stsa.binary``): train pool = train + dev (6,920 + 872), test = test (1,821).

    Unlike GLUE's SST-2, whose train split is the treebank's *phrases* and whose validation split is full
    sentences, every pool here holds whole sentences: transfer and test come from one distribution.
    """
    if split == "train":
        return _read_stsa(folder / "stsa.binary.train") + _read_stsa(folder / "stsa.binary.dev")
    return _read_stsa(folder / "stsa.binary.test")


def read_amazon_fine_foods(folder: Path, split: str) -> list[dict]:
    """modeldata small_fine_foods: review text with score "great" (5 stars) vs "other"."""
    name = {"train": "fine_foods_training_data.jsonl", "test": "fine_foods_testing_data.jsonl"}[split]
    return [{"review": r["review"], "score": r["score"]} for r in _read_jsonl(folder / name)]


def _malformed(path: Path, why: str) -> DataError:
    """The one-line error for a raw file whose content is not what its dataset ships."""
    return DataError(f"{path.name}: {why}; replace the file with a complete copy of the shared datasets folder")


def _read_label_lines(path: Path, allowed: tuple[str, ...], rows: int) -> list[str]:
    """A ``*-labels.lst`` file: one label per line, one line per question row of its ``.jsonl``."""
    with open(require_file(path), encoding="utf-8") as fh:
        labels = [line.strip() for line in fh if line.strip()]
    if len(labels) != rows:
        raise _malformed(path, f"{len(labels)} labels for {rows} questions")
    bad = next((i for i, label in enumerate(labels) if label not in allowed), None)
    if bad is not None:
        raise _malformed(path, f"line {bad + 1}: label {labels[bad][:20]!r} is not one of {', '.join(allowed)}")
    return labels


def _fields(path: Path, row: int, record: object, keys: tuple[str, ...]) -> dict:
    """``record``'s ``keys`` as strings, or the one-line error naming the row that lacks one."""
    if not isinstance(record, dict) or any(not isinstance(record.get(k), str) for k in keys):
        raise _malformed(path, f"row {row}: expected text fields {', '.join(keys)}")
    return {k: record[k] for k in keys}


def read_piqa(folder: Path, split: str) -> list[dict]:
    """The PIQA validation split (TEAM's ``dev.jsonl`` + ``dev-labels.lst``, 1,838 rows; the only labelled split
    offline) as ybisk/piqa records: goal, sol1, sol2 and label (0 or 1: which solution is right)."""
    path = folder / "TEAM_dev.jsonl"
    rows = _read_jsonl(path)
    labels = _read_label_lines(folder / "TEAM_dev-labels.lst", ("0", "1"), len(rows))
    return [{**_fields(path, i + 1, r, ("goal", "sol1", "sol2")), "label": int(label)}
            for i, (r, label) in enumerate(zip(rows, labels, strict=True))]


def read_social_i_qa(folder: Path, split: str) -> list[dict]:
    """The Social IQa dev split (TEAM's ``dev.jsonl`` + ``dev-labels.lst``, 1,954 rows; the only labelled split
    offline) as allenai/social_i_qa records: context, question, answerA-C and label "1"-"3" (a string, as there)."""
    path = folder / "TEAM_dev.jsonl"
    rows = _read_jsonl(path)
    labels = _read_label_lines(folder / "TEAM_dev-labels.lst", ("1", "2", "3"), len(rows))
    keys = ("context", "question", "answerA", "answerB", "answerC")
    return [{**_fields(path, i + 1, r, keys), "label": label}
            for i, (r, label) in enumerate(zip(rows, labels, strict=True))]


QUAIL_TRAIN_FRACTION = 0.7  # of the dev split's passages, as the loader carves single-split datasets


def _words(text: str | None) -> str:
    """A question's or answer's text without the XML's indentation."""
    return " ".join((text or "").split())


def read_quail(folder: Path, split: str) -> list[dict]:
    """QuAIL v1.3 dev (``quail_1.3_dev.xml``: 120 passages, 2,164 questions; == the Hub's validation split) as
    textmachinelab/quail records, cut into train/test by *passage*: the 70% of the passages whose ids hash lowest
    (with all their questions) form the train pool, so no test question is about a passage seen in training (a carve
    by question, as the loader does for one-split datasets, would put the ~18 questions of each passage on both
    sides)."""
    path = require_file(folder / "quail_1.3_dev.xml")
    try:
        texts = ET.parse(path).getroot().findall("text")
    except ET.ParseError as exc:
        raise _malformed(path, f"not well-formed XML ({exc})") from None
    if not texts:
        raise _malformed(path, "no <text> passages")
    by_hash = sorted((t.get("id", "") for t in texts), key=lambda i: (hash_fraction(f"quail|{i}"), i))
    train_ids = set(by_hash[:round(QUAIL_TRAIN_FRACTION * len(by_hash))])
    records = []
    for text in texts:
        context_id = text.get("id", "")
        if (context_id in train_ids) != (split == "train"):
            continue
        context = (text.findtext("text_body") or "").strip()
        for k, q in enumerate(text.findall("questions/q")):
            answers = [_words(a.text) for a in q.findall("a")]
            correct = [i for i, a in enumerate(q.findall("a")) if a.get("correct") == "True"]
            if not context or len(answers) < 2 or len(correct) != 1:
                raise _malformed(path, f"passage {context_id} question {q.get('id')}: expected a passage and "
                                       "answers with exactly one correct=\"True\"")
            records.append({"id": f"{context_id}_{k}", "context_id": context_id,
                            "context": context, "question": _words(q.text), "answers": answers,
                            "correct_answer_id": correct[0]})
    return records


def read_dream(folder: Path, split: str) -> list[dict]:
    """DREAM ``train.json`` / ``test.json`` (``[turns, questions, dialogue id]`` per dialogue) as one record per
    question with the Hub's fields: dialogue_id, dialogue (the turns), question, choice (3), answer (a choice's
    text). The dev split (``dev.json``) is not used: the test pool is the test split alone, on the Hub too."""
    path = require_file(folder / f"{split}.json")
    try:
        dialogues = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, RecursionError, UnicodeDecodeError) as exc:
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise _malformed(path, f"not valid JSON ({why})") from None
    records = []
    for i, item in enumerate(dialogues if isinstance(dialogues, list) else [None]):
        try:
            turns, questions, dialogue_id = item
            for q in questions:
                records.append({"id": len(records), "dialogue_id": str(dialogue_id), "dialogue": list(turns),
                                "question": q["question"], "choice": list(q["choice"]), "answer": q["answer"]})
        except (TypeError, ValueError, KeyError):
            raise _malformed(path, f"dialogue {i + 1}: expected [turns, [{{question, choice, answer}}...], id]"
                             ) from None
    return records
