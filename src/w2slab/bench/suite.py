"""The benchmark suite: which tasks, which ladder of model pairs, at which sizes, and the configs that run them.

A *task* is a registered dataset (or a user's file) with the formatting its dataset spec declares: the
multiple-choice tasks are binarised as the weak-to-strong paper does (one row per question, the correct answer
or one random other candidate, a balanced coin), preference data are pairs for a Bradley-Terry reward model.

A *part* is how the models train. ``probe``: every model a linear probe on its frozen features, which are
extracted once per (model, task's rows) and kept in the example store, so every seed and every method reuses
them; the suite's seeds share one draw of the data (``data_seed`` 0: the pool, validation and test rows), and
vary the partition of the pool into weak-train and transfer, the initialisations and the shuffles, so seeds are
crossed with one test set and every interval is :mod:`w2slab.stats`'s crossed one. ``finetune``: the weak model
fine-tuned and the strong model fine-tuned (encoders) or trained with LoRA (decoders), the seed's own pairing
among them.

A student is benchmarked against its matched baseline (:func:`w2slab.report.methods.matched_baseline`): a loss
against xent on the same supervisor and rows; a method under xent against its own matched baseline where it
declares one (``select`` against ``subset``, an oracle against ``truth_swap``), else against plain xent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from w2slab.errors import ConfigError
from w2slab.registry import Registry

Part = Literal["probe", "finetune"]
PARTS: tuple[str, ...] = Part.__args__


@dataclass(frozen=True)
class SuiteTask:
    """One task of the suite: the dataset it reads and what the tables say of its formatting."""

    name: str
    dataset: str  # a registered dataset's name, or a user's .jsonl/.csv file
    formatting: str = ""
    modality: str = "text"
    #: the ladder this task always runs, whatever --ladder says (an image task: the text ladders' models cannot
    #: read it); None: the --ladder given
    ladder: str | None = None


@dataclass(frozen=True)
class Pair:
    """A weak -> strong pair of a part's ladder, and how each trains."""

    weak: str
    strong: str
    weak_mode: str = "probe"
    strong_mode: str = "probe"

    @property
    def label(self) -> str:
        return f"{self.weak} -> {self.strong}"


TASKS: Registry[SuiteTask] = Registry("suite task")

_BINARISED = "binarised as the paper: the correct answer or one random other candidate (balanced)"
_CHOICES = "answer choices scored as a pair: the correct answer against one random other, ranked by a scorer"
for _task in (
    SuiteTask("sst2_sentences", "sst2_sentences", "sentence sentiment"),
    SuiteTask("imdb", "imdb", "movie-review sentiment (the review's last 128 tokens)"),
    SuiteTask("amazon_multidomain", "amazon_multidomain",
              "Amazon review polarity (Blitzer et al.; the offline stand-in for amazon_polarity)"),
    SuiteTask("amazon_fine_foods", "amazon_fine_foods", "fine-food reviews: 5 stars vs 1-4"),
    SuiteTask("sciq", "sciq", f"science QA, {_BINARISED}"),
    SuiteTask("boolq", "boolq", "yes/no question about a passage (the gold answer is the label)"),
    SuiteTask("cosmos_qa", "cosmos_qa", f"commonsense reading comprehension, {_BINARISED}"),
    SuiteTask("piqa", "piqa", f"physical commonsense, {_BINARISED}"),
    SuiteTask("social_i_qa", "social_i_qa", f"social commonsense, {_BINARISED}"),
    SuiteTask("quail", "quail", f"reading comprehension, {_BINARISED}"),
    SuiteTask("dream", "dream", f"dialogue comprehension, {_BINARISED}"),
    SuiteTask("anthropic_hh", "anthropic_hh", "preference pairs (chosen vs rejected last exchange): a reward model"),
    SuiteTask("fashion_mnist", "fashion_mnist", "10 classes of 28x28 clothing images (the paper's vision setting)",
              modality="image", ladder="images"),
    *(SuiteTask(f"{name}_choices", f"{name}_choices", f"{what}, {_CHOICES}") for name, what in (
        ("sciq", "science QA"), ("cosmos_qa", "commonsense reading comprehension"), ("piqa", "physical commonsense"),
        ("social_i_qa", "social commonsense"), ("quail", "reading comprehension"), ("dream", "dialogue comprehension"),
    )),
):
    TASKS.register(_task.name, _task)

#: the text ladder of the probe part: three sizes of encoder (17M, 23M, 110M parameters), each pair a weak model
#: smaller than its strong one
PROBE_PAIRS: tuple[Pair, ...] = (Pair("minilm-l3", "minilm-l6"), Pair("minilm-l3", "mpnet-base"),
                                 Pair("minilm-l6", "mpnet-base"))
#: ``--ladder decoders``: the two packaged decoders as probes, smollm2-135m supervising gemma3-270m. On the question
#: answering tasks every encoder probe is at chance, so no encoder can be the weak model there; the decoders' last
#: token reads a question with its candidate answer better (docs/results.md, sciq: .60 and .66)
DECODER_PROBE_PAIRS: tuple[Pair, ...] = (Pair("smollm2-135m", "gemma3-270m"),)
#: ``--ladder gemma``: every other packaged model supervising gemma3-270m (the seed's strong model) as probes
GEMMA_PROBE_PAIRS: tuple[Pair, ...] = tuple(Pair(weak, "gemma3-270m")
                                            for weak in ("minilm-l3", "minilm-l6", "mpnet-base", "smollm2-135m"))
#: the fine-tuned part: the default experiment's pair (both fine-tuned), and the seed's own (a BERT-type weak model
#: fine-tuned, a Gemma strong model under LoRA)
DEFAULT_PAIR = Pair("minilm-l3", "mpnet-base", "full", "full")
SEED_PAIR = Pair("minilm-l3", "gemma3-270m", "full", "lora")
#: images: the weak CNN from scratch, a pretrained backbone frozen under a linear probe (the image defaults), at two
#: backbone sizes so the figures have a size axis: EfficientNet-Lite0 (3.4M parameters without its ImageNet
#: classifier, 224 px) and -Lite2 (4.8M, 260 px), the packaged ImageNet backbones
IMAGE_PAIRS: tuple[Pair, ...] = tuple(Pair("cnn-small", strong, "full", "probe")
                                      for strong in ("efficientnet-lite0", "efficientnet-lite2"))
LADDERS: dict[str, dict[str, tuple[Pair, ...]]] = {
    "encoders": {"probe": PROBE_PAIRS, "finetune": (DEFAULT_PAIR,)},
    # the seed's experiment as the fine-tuned part, beside the encoder probes
    "seed": {"probe": PROBE_PAIRS, "finetune": (SEED_PAIR,)},
    "decoders": {"probe": DECODER_PROBE_PAIRS, "finetune": (SEED_PAIR,)},
    "gemma": {"probe": GEMMA_PROBE_PAIRS, "finetune": (SEED_PAIR,)},
    # one small pair (a quick look, and the tests): the two MiniLMs
    "minilm": {"probe": PROBE_PAIRS[:1], "finetune": (Pair("minilm-l3", "minilm-l6", "full", "full"),)},
}

#: the ladders a task runs whatever --ladder says (:attr:`SuiteTask.ladder`). ``images``: a small CNN trained from
#: scratch (the AlexNet role) labels for a linear probe on a frozen ImageNet backbone (the DINO role), as ``w2s run``
#: trains them on images; no probe part (a CNN from scratch has no features to probe)
OWN_LADDERS: dict[str, dict[str, tuple[Pair, ...]]] = {"images": {"probe": (), "finetune": IMAGE_PAIRS}}

#: rows per task and seed: 1,000 weak-train + 1,000 transfer, 500 validation, 1,000 test (fitted down, with a note,
#: where a task's pool is smaller); the probe part's cost is the features of these 3,500 rows per model
SIZES: dict[str, int] = {"n_train": 2000, "n_val": 500, "n_test": 1000}
#: the baseline every student is compared with (its matched form: same method, same supervisor, same rows)
BASELINE = "xent"


@dataclass(frozen=True)
class Candidate:
    """What is benchmarked: a registered loss (against xent) or a registered method (under xent, against its
    matched baseline)."""

    kind: Literal["loss", "method"]
    spec: Any  # the typed Loss or Method

    @property
    def label(self) -> str:
        return self.spec.label

    def losses(self) -> tuple:
        return (BASELINE,) if self.kind == "method" or self.spec.label == BASELINE else (BASELINE, self.spec)

    def methods(self) -> tuple:
        if self.kind == "loss":
            return ({"name": "none"},)
        matched = self.spec.matched_baseline()
        return ({"name": "none"}, self.spec, *([matched] if matched is not None else []))

    def student(self) -> str:
        """The label of the student the leaderboard ranks."""
        return self.spec.label if self.kind == "loss" else self.spec.student_label(BASELINE)


def candidate(spec: str | dict) -> Candidate:
    """A loss or method by name (or ``{name: ..., param: ...}``); a name both registries know is refused."""
    from w2slab.losses import LOSSES, make_loss
    from w2slab.methods import make_method
    from w2slab.methods.base import METHODS

    name = spec["name"] if isinstance(spec, dict) else spec
    is_loss, is_method = LOSSES.find(name) is not None, METHODS.find(name) is not None
    if is_loss and is_method:  # pragma: no cover - the registries keep their names apart today
        raise ConfigError(f"{name!r} names both a loss and a method; pass a mapping with its kind")
    if is_loss:
        return Candidate("loss", make_loss(spec))
    if is_method:
        return Candidate("method", make_method(spec))
    known = ", ".join(sorted({*LOSSES.names(), *METHODS.names()}))
    raise ConfigError(f"w2s bench: {name!r} is neither a registered loss nor a method; choose one of {known}")


def task_names(names: str | None, files: Sequence[str] = ()) -> list[SuiteTask]:
    """The suite's tasks (``names``: a comma list, None for every task, ``none`` for none), then the user's files."""
    if names is None:
        tasks = TASKS.values()
    else:
        tasks = [TASKS.get(name.strip()) for name in names.split(",") if name.strip() and name.strip() != "none"]
    for file in files:
        path = Path(file)
        if not path.is_file():
            raise ConfigError(f"--task {file}: no such file; give a .jsonl or .csv file with text and label columns")
        tasks.append(SuiteTask(path.stem, str(path), "a user's file"))
    if not tasks:
        raise ConfigError("w2s bench: no task; name suite tasks with --tasks or a file with --task my.jsonl")
    return tasks


def configs(cand: Candidate, tasks: Iterable[SuiteTask], part: str, seeds: Sequence[int], ladder: str = "encoders",
            sizes: dict[str, int] | None = None, fit=None) -> list:
    """The experiments of one part: every task x pair x seed, students ``cand``'s and its matched baseline's.

    ``fit(config) -> config`` sizes a config to its task's pool (the CLI's rule for a dataset without --n-test);
    ``sizes`` overrides :data:`SIZES`.
    """
    from w2slab.config import ExperimentConfig, TrainConfig

    if part not in PARTS:
        raise ConfigError(f"--parts: unknown part {part!r}; choose from {', '.join(PARTS)}")
    if ladder not in LADDERS:
        raise ConfigError(f"--ladder: unknown ladder {ladder!r}; choose from {', '.join(LADDERS)}")
    sizes = {**SIZES, **(sizes or {})}
    out = []
    for task in tasks:
        fitted = None  # the sizes depend on the task's pool and the seeds, not on the pair: fitted once per task
        for pair in (OWN_LADDERS[task.ladder] if task.ladder else LADDERS[ladder])[part]:
            base = ExperimentConfig(dataset=task.dataset, weak=pair.weak, strong=pair.strong, seed=seeds[0],
                                    data_seed=0, losses=cand.losses(), methods=cand.methods(),
                                    weak_train=_train(pair.weak_mode, TrainConfig, "weak", task.modality),
                                    strong_train=_train(pair.strong_mode, TrainConfig, "strong", task.modality),
                                    **sizes)
            if fit is not None:
                fitted = fitted or fit(base)
                base = replace(base, n_train=fitted.n_train, n_test=fitted.n_test, n_val=fitted.n_val)
            out += [replace(base, seed=int(seed)) for seed in seeds]
    return out


#: the probe roles' training: lr 1e-3 for 40 epochs (2,500 AdamW steps at batch 16, about a millisecond each),
#: chosen on validation by ``benchmarks/probe_recipe.py`` (``results/recipe/probe_recipe.json``: the weak models'
#: and ceilings' validation accuracy pooled over sst2_sentences, imdb and amazon_multidomain, .793 against .774 for
#: the fine-tuning roles' 2 epochs, which left 7 of 12 runs SUSPECT and logconf students below their teacher)
#: ``length: auto`` may retry an unconverged probe once at 80 epochs (then at 3x lr), not up to its default 160
PROBE_TRAINING: dict[str, Any] = {"lr": 1e-3, "epochs": 40.0, "max_epochs": 80.0}


def _train(mode: str, cls, role: str, modality: str = "text"):
    """Text probe roles train a linear head to convergence (:data:`PROBE_TRAINING`); other roles keep the
    modality's defaults but for the mode (an image task's: what ``w2s run`` trains on images)."""
    from w2slab.config import role_default

    if mode == "probe" and modality == "text":
        return cls(mode="probe", **PROBE_TRAINING)
    default = role_default(modality, role)
    return default if default.mode == mode else replace(default, mode=mode)


def part_of(record: dict) -> str:
    """``probe`` when both models of a record were probes, else ``finetune``."""
    config = record.get("config") or {}
    modes = {(config.get(f"{role}_train") or {}).get("mode") for role in ("weak", "strong")}
    return "probe" if modes == {"probe"} else "finetune"


def task_of(record: dict) -> str:
    """The suite task a record belongs to (a user's file: its stem)."""
    dataset = record["dataset"]
    return TASKS.find(dataset).name if TASKS.find(dataset) is not None else Path(dataset).stem
