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


def format_preference_pair(chosen: str, rejected: str, rng: random.Random) -> list[dict]:
    """A preference pair in random order: ``text`` and ``text_b`` the two responses, label 1 when ``text`` is the
    chosen one (so the classes are balanced and a model cannot win by position). Identical texts carry no
    preference and are dropped (return [])."""
    label = int(rng.random() < 0.5)
    if chosen.strip() == rejected.strip():
        return []
    first, second = (chosen, rejected) if label else (rejected, chosen)
    return [{"text": first.strip(), "text_b": second.strip(), "label": label}]


_HUMAN, _ASSISTANT = "\n\nHuman:", "\n\nAssistant:"


def last_exchange(transcript: str) -> str:
    """The final human turn and the assistant's answer to it (``Human: ...\n\nAssistant: ...``)."""
    text = "\n\n" + transcript.strip()
    answer = text.rfind(_ASSISTANT)
    question = text.rfind(_HUMAN, 0, answer) if answer >= 0 else -1
    return text[question if question >= 0 else 0:].strip()


def format_anthropic_hh(ex: dict, rng: random.Random) -> list[dict]:
    """A Bradley-Terry preference pair: the final human turn with the chosen answer, and with the rejected one.

    OpenAI's single-transcript format (label = is this the chosen transcript) is at chance for any model,
    because the label depends on the unseen alternative. As a pair, each text is scored alone by a reward model
    and the preferred one should score higher, which is how reward models are trained (Bai et al. 2022). Only the
    last exchange is kept: the earlier conversation is shared by both texts, and a small model's pooled features
    of the whole transcript barely differ between them (probes on them were at chance, .49, on 1,500 pairs).
    """
    return format_preference_pair(last_exchange(ex["chosen"]), last_exchange(ex["rejected"]), rng)


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


def _shown_answer(correct: str, candidates: list[str], rng: random.Random) -> tuple[str, int] | None:
    """The w2s binarisation of a multiple-choice question: a fair coin from ``rng`` shows the correct answer (label 1)
    or one other candidate drawn at random (label 0); None when no other candidate differs from the correct one."""
    label = int(rng.random() < 0.5)
    others = [c for c in candidates if c.strip() != correct.strip()]
    if not label:
        if not others:
            return None
        return rng.choice(others), 0
    return correct, 1


def _qa_row(context: str, question: str, shown: tuple[str, int] | None) -> list[dict]:
    if shown is None:
        return []
    answer, label = shown
    return [{"text": _qa_text(context, question)(answer), "label": label}]


def format_piqa(ex: dict, rng: random.Random) -> list[dict]:
    """PIQA (EleutherAI w2s format_piqa): the goal with the right solution (label 1) or the other one (label 0)."""
    solutions = [ex["sol1"], ex["sol2"]]
    shown = _shown_answer(solutions[int(ex["label"])], solutions, rng)
    if shown is None:
        return []
    return [{"text": f"Goal: {ex['goal'].strip()}\nSolution: {shown[0].strip()}", "label": shown[1]}]


def format_social_i_qa(ex: dict, rng: random.Random) -> list[dict]:
    """Social IQa (EleutherAI w2s format_social_i_qa): the correct answer (label "1"-"3" names answerA-C) or a
    random other one."""
    answers = [ex["answerA"], ex["answerB"], ex["answerC"]]
    return _qa_row(ex["context"], ex["question"], _shown_answer(answers[int(ex["label"]) - 1], answers, rng))


def format_quail(ex: dict, rng: random.Random) -> list[dict]:
    """QuAIL (EleutherAI w2s format_quail): the passage, the question and the correct answer or a random other one
    (one of the four is often "not enough information", shown like any other)."""
    answers = list(ex["answers"])
    return _qa_row(ex["context"], ex["question"], _shown_answer(answers[int(ex["correct_answer_id"])], answers, rng))


def format_dream(ex: dict, rng: random.Random) -> list[dict]:
    """DREAM: the dialogue (one turn a line), the question and the correct choice or a random other one."""
    return _qa_row("\n".join(turn.strip() for turn in ex["dialogue"]), ex["question"],
                   _shown_answer(ex["answer"], list(ex["choice"]), rng))


# Answer choices scored by the model: the same questions as pairs. A binarised row asks a model whether one shown
# answer is right, which it must judge without the alternatives; a choice pair shows the question with the correct
# answer and with one other candidate, and a Bradley-Terry scorer must rank them (how language models are evaluated
# on multiple choice: each choice scored alone, the higher one picked). The pair order is a balanced coin from
# ``rng`` (label 1 when ``text`` holds the correct answer). BoolQ has no such form: its two answers are "yes" and
# "no", so a pair of them holds nothing its binarised row does not, and every model ranked it by the prior of "yes"
# alone (.65, the share of yes answers; docs/results.md).


def choice_pair(render: Callable[[str], str], correct: str, candidates: list[str],
                rng: random.Random) -> list[dict]:
    """The question rendered with the correct answer and with one other candidate drawn at random, as a preference
    pair in random order; [] when no candidate differs from the correct one."""
    others = [c for c in candidates if c.strip() != correct.strip()]
    if not others:
        return []
    return format_preference_pair(render(correct), render(rng.choice(others)), rng)


def _qa_text(context: str, question: str) -> Callable[[str], str]:
    return lambda answer: f"Context: {context.strip()}\nQuestion: {question.strip()}\nAnswer: {answer.strip()}"


def format_sciq_choices(ex: dict, rng: random.Random) -> list[dict]:
    """SciQ as choices: the question with the correct answer against one of the three distractors."""
    candidates = [ex["correct_answer"], ex["distractor1"], ex["distractor2"], ex["distractor3"]]
    return choice_pair(lambda a: f"Q: {ex['question']} A: {a}", ex["correct_answer"], candidates, rng)


def format_cosmos_qa_choices(ex: dict, rng: random.Random) -> list[dict]:
    """Cosmos QA as choices: the true answer against another of the four (a true "None of the above" included)."""
    answers = [ex[f"answer{i}"] for i in range(4)]
    return choice_pair(_qa_text(ex["context"], ex["question"]), answers[int(ex["label"])], answers, rng)


def format_piqa_choices(ex: dict, rng: random.Random) -> list[dict]:
    """PIQA as choices: the goal with the right solution against the goal with the other one."""
    solutions = [ex["sol1"], ex["sol2"]]
    return choice_pair(lambda s: f"Goal: {ex['goal'].strip()}\nSolution: {s.strip()}", solutions[int(ex["label"])],
                       solutions, rng)


def format_social_i_qa_choices(ex: dict, rng: random.Random) -> list[dict]:
    """Social IQa as choices: the correct answer against one of the two others."""
    answers = [ex["answerA"], ex["answerB"], ex["answerC"]]
    return choice_pair(_qa_text(ex["context"], ex["question"]), answers[int(ex["label"]) - 1], answers, rng)


def format_quail_choices(ex: dict, rng: random.Random) -> list[dict]:
    """QuAIL as choices: the correct answer against one of the three others."""
    answers = list(ex["answers"])
    return choice_pair(_qa_text(ex["context"], ex["question"]), answers[int(ex["correct_answer_id"])], answers, rng)


def format_dream_choices(ex: dict, rng: random.Random) -> list[dict]:
    """DREAM as choices: the dialogue and question with the correct choice against one of the two others."""
    dialogue = "\n".join(turn.strip() for turn in ex["dialogue"])
    return choice_pair(_qa_text(dialogue, ex["question"]), ex["answer"], list(ex["choice"]), rng)


#: the multiple-choice datasets' choice-pair formatters, by the binarised dataset's name
CHOICE_FORMATTERS: dict[str, Formatter] = {
    "sciq": format_sciq_choices, "cosmos_qa": format_cosmos_qa_choices,
    "piqa": format_piqa_choices, "social_i_qa": format_social_i_qa_choices, "quail": format_quail_choices,
    "dream": format_dream_choices,
}
