"""Raw record (Hub schema) -> binary rows, following the OpenAI weak-to-strong recipes.

A formatter returns ``[{"text": str, "label": int}, ...]`` (usually one row); the loader adds the ids.
Randomness (which answer a QA row shows) comes only from the ``rng`` argument so that the same seed
always produces the same rows, offline or from the Hub.
"""

from __future__ import annotations

import random
from collections.abc import Callable

Formatter = Callable[[dict, random.Random], list[dict]]


def format_sciq(ex: dict, rng: random.Random) -> list[dict]:
    """OpenAI format_sciq: show the correct answer (label 1) or a random distractor (label 0)."""
    label = int(rng.random() < 0.5)
    distractors = [ex["distractor1"], ex["distractor2"], ex["distractor3"]]
    answer = ex["correct_answer"] if label else rng.choice(distractors)
    return [{"text": f"Q: {ex['question']} A: {answer}", "label": label}]


def format_boolq(ex: dict, rng: random.Random) -> list[dict]:
    """OpenAI format_boolq: the gold yes/no answer is the label."""
    return [{"text": f"Passage: {ex['passage']}\nQuestion: {ex['question']}", "label": int(ex["answer"])}]


_ASSISTANT = "\n\nAssistant:"


def _split_last_turn(transcript: str) -> tuple[str, str]:
    """(conversation up to the final Assistant turn, final assistant response)."""
    cut = transcript.rfind(_ASSISTANT)
    if cut < 0:
        return "", transcript.strip()
    return transcript[:cut].strip(), transcript[cut + len(_ASSISTANT) :].strip()


def format_anthropic_hh(ex: dict, rng: random.Random) -> list[dict]:
    """Pairwise preference: is response A (randomly chosen or rejected) the chosen one?

    OpenAI's single-transcript format (label = is this the chosen transcript) is at chance for any model,
    because the label depends on the unseen alternative. Showing both responses makes it learnable.
    Both transcripts share the conversation, so it is written once and only the final responses differ.
    Pairs whose final responses are identical carry no signal and are dropped (return []).
    """
    label = int(rng.random() < 0.5)
    prefix_c, resp_c = _split_last_turn(ex["chosen"])
    prefix_r, resp_r = _split_last_turn(ex["rejected"])
    first, second = (resp_c, resp_r) if label else (resp_r, resp_c)
    if prefix_c == prefix_r:
        if resp_c == resp_r:
            return []
        text = (
            f"{prefix_c}\n\nResponse A: {first}\n\nResponse B: {second}\n\n"
            "Is Response A better than Response B?"
        )
    else:  # conversations diverge earlier: show the two full transcripts
        if ex["chosen"].strip() == ex["rejected"].strip():
            return []
        a, b = (ex["chosen"], ex["rejected"]) if label else (ex["rejected"], ex["chosen"])
        text = (
            f"Response A:\n{a.strip()}\n\nResponse B:\n{b.strip()}\n\nIs Response A better than Response B?"
        )
    return [{"text": text, "label": label}]


_NONE_OF_THE_ABOVE = "None of the above choices ."


def format_cosmos_qa(ex: dict, rng: random.Random) -> list[dict]:
    """OpenAI format_cosmosqa: true answer (label 1) or another candidate (label 0).

    When the gold answer is "None of the above choices ." the row is always label 0 with a wrong
    candidate shown, exactly as the reference does (such a candidate is indeed not correct).
    """
    true_answer = ex[f"answer{int(ex['label'])}"]
    label = 0 if _NONE_OF_THE_ABOVE in true_answer else int(rng.random() < 0.5)
    if label:
        answer = true_answer
    else:
        others = [ex[f"answer{i}"] for i in range(4) if ex[f"answer{i}"] != true_answer]
        if not others:
            return []
        answer = rng.choice(others)
    return [
        {"text": f"Context: {ex['context']}\nQuestion: {ex['question']}\nAnswer: {answer}", "label": label}
    ]


def format_amazon_polarity(ex: dict, rng: random.Random) -> list[dict]:
    """OpenAI format_amazon_polarity: "{title} {content}", label 1 = positive."""
    return [{"text": f"{ex['title']} {ex['content']}".strip(), "label": int(ex["label"])}]


def format_imdb(ex: dict, rng: random.Random) -> list[dict]:
    """Review (or sentence) text, label 1 = positive: IMDB, and sentence-level SST-2 (``text``/``label`` rows
    offline and on the Hub alike)."""
    return [{"text": ex["text"], "label": int(ex["label"])}]


def format_sst2(ex: dict, rng: random.Random) -> list[dict]:
    """Sentence, label 1 = positive (EleutherAI w2s recipe)."""
    return [{"text": ex["sentence"].strip(), "label": int(ex["label"])}]


def format_amazon_fine_foods(ex: dict, rng: random.Random) -> list[dict]:
    """Review text, label 1 = score "great" (5 stars) vs "other" (1-4 stars)."""
    return [{"text": ex["review"].strip(), "label": int(ex["score"] == "great")}]
