"""Every bad input ends in one line naming the problem and the fix, exit code 2, before any stage runs.

Data files, sweep files, config files and flags, table-driven. A run root holding an earlier finished run
must be byte-for-byte the same afterwards, and no stage may have started.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.helpers.tiny import write_tiny_model, write_toy_dataset
from w2slab.cli import main


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-inputs")
    weak = write_tiny_model(root / "weak", layers=1, hidden=16)
    strong = write_tiny_model(root / "strong", layers=1, hidden=32, seed=1)
    data = write_toy_dataset(root / "toy.jsonl", n=300)
    runs = root / "runs"
    common = ["--weak", str(weak), "--strong", str(strong), "--n-train", "64", "--n-test", "32", "--max-ctx", "16",
              "--loss", "xent", "--weak-mode", "probe", "--strong-mode", "probe", "--epochs", "1"]
    assert main(["run", "--dataset", str(data), *common, "--out-dir", str(runs)]) == 0  # the earlier good run
    return SimpleNamespace(root=root, runs=runs, data=data, common=common, weak=weak, strong=strong)


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def write(folder: Path, name: str, content: str | bytes) -> str:
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


GOOD = '{"text": "w5 w6", "label": 0}\n{"text": "w7 w8", "label": 1}\n'


@dataclass(frozen=True)
class Bad:
    """One bad input: ``argv(env, tmp)`` writes what it needs under ``tmp`` and returns the command line;
    ``needle`` must appear in the one-line error; ``patch`` (optional) sets up a monkeypatch first."""

    argv: Callable[[SimpleNamespace, Path], list[str]]
    needle: str
    patch: Callable[[pytest.MonkeyPatch], None] | None = None


def run_with(*flags: str) -> Callable[[SimpleNamespace, Path], list[str]]:
    """``w2s run`` of the good toy data with these flags added."""
    return lambda env, tmp: ["run", "--dataset", str(env.data), *env.common, *flags]


def data_file(name: str, content: str | bytes, *flags: str) -> Callable[[SimpleNamespace, Path], list[str]]:
    """``w2s run`` of a data file ``name`` holding ``content``."""
    return lambda env, tmp: ["run", "--dataset", write(tmp, name, content), *env.common, *flags]


def sweep_file(extra: str, datasets: list[str] | None = None) -> Callable[[SimpleNamespace, Path], list[str]]:
    """``w2s sweep`` of a good sweep file with ``extra`` YAML lines added (``datasets`` replaces its datasets)."""

    def argv(env: SimpleNamespace, tmp: Path) -> list[str]:
        base = {"datasets": [str(env.data)] if datasets is None else datasets, "weak": [str(env.weak)],
                "strong": [str(env.strong)]}
        return ["sweep", write(tmp, "s.yaml", _yaml(base) + "n_test: 32\nmax_ctx: 16\n" + extra),
                "--run-root", str(env.runs)]
    return argv


def file_at(tmp: Path, name: str, content: str | bytes | None) -> str:
    """A path under ``tmp``: ``name`` holding ``content``; None content: a path that does not exist; "/": the folder."""
    if name == "/":
        return str(tmp)
    return write(tmp, name, content) if content is not None else str(tmp / name)


def raw_sweep(name: str, content: str | bytes | None) -> Callable[[SimpleNamespace, Path], list[str]]:
    """``w2s sweep`` of a file ``name`` holding ``content`` (see :func:`file_at`)."""
    return lambda env, tmp: ["sweep", file_at(tmp, name, content), "--run-root", str(env.runs)]


def config_file(content: str | None, name: str = "c.json") -> Callable[[SimpleNamespace, Path], list[str]]:
    """``w2s run --config`` of a file holding ``content`` (see :func:`file_at`)."""
    return lambda env, tmp: ["run", "--config", file_at(tmp, name, content)]


def model_folder(config_json: str | None, *, nest: bool = False):
    """``--strong`` a folder that is not a model: a copy of the tiny model with this ``config.json`` (None: an
    empty folder; ``nest``: a folder of folders, as ``--weak .`` in a project)."""

    def argv(env: SimpleNamespace, tmp: Path) -> list[str]:
        folder = tmp / "model"
        if nest:
            shutil.copytree(env.strong, tmp / "inner" / "model")
            folder = tmp / "inner"
        elif config_json is None:
            folder.mkdir()
        else:
            shutil.copytree(env.strong, folder)
            (folder / "config.json").write_text(config_json)
        return ["run", "--dataset", str(env.data), *env.common, "--strong", str(folder)]
    return argv


def image_folder(env: SimpleNamespace, tmp: Path) -> list[str]:
    """An ImageFolder of 16x16 PNGs (2 classes x 200): with the limit patched below, each is over Pillow's limit."""
    from PIL import Image

    for label in ("cat", "dog"):
        (tmp / "imgs" / label).mkdir(parents=True)
        for i in range(200):
            Image.new("L", (16, 16), color=i % 256).save(tmp / "imgs" / label / f"{i}.png")
    return ["run", "--dataset", str(tmp / "imgs"), *env.common]


def small_pillow_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow refuses above twice this: 200 < 16 x 16


def offline_with_an_empty_hub_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", tempfile.mkdtemp())


def a_hub_without_that_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    def repo_info(self, repo_id, **_kwargs):
        error = RepositoryNotFoundError.__new__(RepositoryNotFoundError)  # as the Hub answers a 404
        Exception.__init__(error, f"404: {repo_id}")
        raise error

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(HfApi, "repo_info", repo_info)


def a_download_timeout_with_a_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("W2SLAB_DOWNLOAD_TIMEOUT", "30m")


def small_file(rows: int) -> Callable[[SimpleNamespace, Path], list[str]]:
    """``w2s run`` of a file of ``rows`` rows without --n-train / --n-test: the sizes are the tool's to choose."""
    content = "".join(json.dumps({"text": f"w{i} w{i % 5}", "label": i % 2}) + "\n" for i in range(rows))
    return lambda env, tmp: ["run", "--dataset", write(tmp, "small.jsonl", content), "--weak", str(env.weak),
                             "--strong", str(env.strong), "--max-ctx", "16"]


THREE_CLASSES = "".join(json.dumps({"text": f"w{i} w{i % 7}", "label": i % 3}) + "\n" for i in range(300))


def a_wrong_type_in_a_result(env: SimpleNamespace, tmp: Path) -> list[str]:
    (source,) = list((env.runs / "experiments").glob("*/result.json"))[:1]
    root = tmp / "root"
    (root / "experiments" / "x").mkdir(parents=True)
    (root / "experiments" / "x" / "result.json").write_text(json.dumps({**json.loads(source.read_text()),
                                                                         "seed": "zero"}))
    return ["report", str(root)]


def a_changed_result(command: str, **fields) -> Callable[[SimpleNamespace, Path], list[str]]:
    """``w2s report`` (or ``w2s compare`` of it with the good run) of a copy of the good result with ``fields``
    replaced; a field given as a function of the good record (``diagnostics``) is applied to it."""

    def argv(env: SimpleNamespace, tmp: Path) -> list[str]:
        (source,) = list((env.runs / "experiments").glob("*/result.json"))[:1]
        record = json.loads(source.read_text())
        record.update({key: value(record) if callable(value) else value for key, value in fields.items()})
        folder = tmp / "root" / "experiments" / "x"
        folder.mkdir(parents=True)
        (folder / "result.json").write_text(json.dumps(record))
        return ["report", str(tmp / "root")] if command == "report" else ["compare", str(env.runs), str(tmp / "root")]

    return argv


def _without_corrected(record: dict) -> dict:
    diagnostics = dict(record["diagnostics"])
    diagnostics["decomposition"] = {k: v for k, v in diagnostics["decomposition"].items() if k != "corrected"}
    return diagnostics


def another_config_under_a_used_name(env: SimpleNamespace, tmp: Path) -> list[str]:
    """``w2s run`` of another config (seed 1) under the name of the good run's folder (which also holds a file
    the user put there): it silently replaced the folder."""
    (folder,) = [p.parent for p in env.runs.glob("*/metrics.json")]
    (folder / "my-notes.txt").write_text("mine")
    return ["run", "--dataset", str(env.data), *env.common, "--seed", "1", "--name", folder.name]


#: Every bad input we know of, one row each: old ones and those the issues found as tracebacks.
BAD_INPUTS: dict[str, Bad] = {
    # --- data files
    "non-utf8 jsonl": Bad(data_file("d.jsonl", GOOD.encode() + b'{"text": "caf\xe9", "label": 1}\n'), "not UTF-8"),
    "binary file": Bad(data_file("d.jsonl", b"\x00\x01\x02PK\x03\x04" * 100), "binary content"),
    "empty file": Bad(data_file("d.jsonl", ""), "no rows"),
    "bad json line": Bad(data_file("d.jsonl", GOOD + '{"text": "w9", "label": \n'), "row 3: not valid JSON"),
    # a RecursionError traceback from the JSON parser
    "a row nested thousands of levels deep": Bad(
        data_file("d.jsonl", GOOD + '{"text": ' + "[" * 5000 + "]" * 5000 + ', "label": 0}\n'),
        "row 3: nested too deeply to read"),
    "row is a list": Bad(data_file("d.jsonl", GOOD + '["w9", 1]\n'), "row 3: expected a JSON object"),
    "missing label": Bad(data_file("d.jsonl", GOOD + '{"text": "w9"}\n'), "row 3: missing 'label'"),
    "label with a gap": Bad(data_file("d.jsonl", GOOD + '{"text": "w9", "label": 3}\n'), "class 2 never occurs"),
    "negative label": Bad(data_file("d.jsonl", GOOD + '{"text": "w9", "label": -1}\n'), "row 3: label -1 is negative"),
    "empty text": Bad(data_file("d.jsonl", GOOD + '{"text": "  ", "label": 1}\n'), "row 3: empty text"),
    "text not a string": Bad(data_file("d.jsonl", GOOD + '{"text": 12, "label": 1}\n'),
                             "row 3: text '12' is not a string"),
    "huge field": Bad(data_file("d.jsonl", GOOD + json.dumps({"text": "w5 " * 400_000, "label": 1}) + "\n"),
                      "limit 1,000,000"),
    "csv without header": Bad(data_file("d.csv", ""), "no header row"),
    "csv ragged row": Bad(data_file("d.csv", "text,label\nw5 w6,0\nw7,w8,1\n"), "row 2: 2 columns in the header"),
    "csv other columns": Bad(data_file("d.csv", "sentence,y\nw5 w6,0\n"), "--text-field"),
    "csv word labels": Bad(data_file("d.csv", "text,label\nw5 w6,positive\n"), "--label-map"),
    "unsupported suffix": Bad(data_file("d.txt", "w5 w6\t0\n"), "unsupported file type '.txt'"),
    "too few rows": Bad(data_file("d.jsonl", GOOD * 3), "n_train"),
    # str.isdigit() accepts '²', int() does not
    "superscript digit label": Bad(data_file("d.jsonl", GOOD + '{"text": "w9", "label": "²"}\n'),
                                   "row 3: label ² is not a class id"),
    # a range(10**10) of classes took minutes, then MemoryError
    "label far beyond any class count": Bad(data_file("d.jsonl", GOOD + '{"text": "w9", "label": 10000000000}\n'),
                                            "row 3: label 10000000000 is not a class id"),
    "a word label missing from the label map": Bad(
        data_file("d.csv", "text,label\nw5 w6,positive\nw7 w8,neutral\n", "--label-map", "positive=1,negative=0"),
        "row 2: label 'neutral' is not in --label-map"),
    "a directory as the data file": Bad(lambda env, tmp: ["run", "--dataset", str(tmp), *env.common],
                                        "a directory without class sub-folders"),
    # escaped mid-training as Pillow's DecompressionBombError
    "an image over Pillow's decompression-bomb limit": Bad(image_folder, "decompression-bomb limit",
                                                           patch=small_pillow_limit),
    # --- sweep files
    "sweep: unknown loss": Bad(sweep_file("losses: [xent, focal]\n"), "unknown loss 'focal'"),
    "sweep: unknown training key": Bad(sweep_file("weak_train: {learning_rate: 3}\n"),
                                       "weak_train.learning_rate: unknown key"),
    "sweep: wrong type": Bad(sweep_file("strong_train: {epochs: two}\n"), "strong_train.epochs: expected float"),
    "sweep: negative n_test": Bad(sweep_file("n_test: -4\n"), "n_test: must be >= 2"),
    "sweep: bad label map value": Bad(sweep_file("label_map: {positive: -3}\n"), "label_map: maps words to class ids"),
    "sweep: yaml syntax": Bad(sweep_file("weak_train: {epochs: 1\n"), "not valid YAML"),
    "sweep: empty datasets": Bad(sweep_file("", datasets=[]), "datasets: empty"),
    "sweep: text_field on a registered dataset": Bad(sweep_file("text_field: sentence\n", datasets=["sst2"]),
                                                     "for your own .jsonl/.csv files"),
    # one setting in two spellings was merged silently, the later one winning
    "sweep: a role's field set twice": Bad(sweep_file("strong.lr: 1e-5\nstrong_train: {lr: 2e-5}\n"),
                                           "lr given twice (in strong_train and as strong.lr)"),
    # the variants' learning rate replaced the grid's two silently: 2 experiments, neither of the grid's rates
    "sweep: a grid axis also set in variants": Bad(
        sweep_file("strong.lr: [1.0e-5, 3.0e-5]\nvariants: [{strong.lr: 1.0e-4}, {strong.lr: 2.0e-4}]\n"),
        "variants: strong.lr also given outside variants"),
    "sweep: a top-level value also set in variants": Bad(
        sweep_file("n_train: 64\nvariants: [{n_train: 32}, {n_train: 48}]\n"), "variants: n_train also given outside"),
    "sweep: variants inside a variant": Bad(sweep_file("variants: [{variants: 1}]\n"),
                                            "variants: variants: a key of a sweep file's top level, not inside"),
    "sweep: bad toml": Bad(raw_sweep("a.toml", "datasets = [\n"), "not valid TOML"),
    "sweep: a list, not a mapping": Bad(raw_sweep("b.yaml", "- just\n- a list\n"), "expected a YAML mapping"),
    "sweep: not utf-8": Bad(raw_sweep("c.yaml", b"datasets: [\xff]\n"), "not UTF-8"),
    "sweep: a directory": Bad(raw_sweep("/", None), "is a directory"),
    "sweep: missing file": Bad(raw_sweep("missing.yaml", None), "not found"),
    "sweep: no strong models": Bad(raw_sweep("d.yaml", "datasets: [sst2]\nweak: [minilm-l3]\n"), "strong: missing"),
    # --- config files
    "config: missing file": Bad(config_file(None), "file not found"),
    "config: not json": Bad(config_file("{not json"), "not valid JSON"),
    "config: a directory": Bad(config_file(None, name="/"), "is a directory"),
    # a .toml config was read as JSON
    "config toml: syntax": Bad(config_file("n_train = [\n", name="c.toml"), "not valid TOML"),
    "config toml: unknown key": Bad(config_file("n_trian = 5\n", name="c.toml"), "n_trian: unknown key"),
    "config yaml: not utf-8": Bad(config_file(b"seed: [\xff]\n", name="c.yaml"), "not UTF-8"),
    "config: a list": Bad(config_file("[1, 2]"), "expected a JSON object"),
    "config: unknown key": Bad(config_file(json.dumps({"n_trian": 5})), "n_trian: unknown key"),
    "config: seed of a wrong type": Bad(config_file(json.dumps({"seed": "zero"})), "seed: expected int"),
    "config: training block a string": Bad(config_file(json.dumps({"weak_train": "x"})),
                                           "weak_train: expected a mapping"),
    "config: training block a list": Bad(config_file(json.dumps({"weak_train": [1]})),
                                         "weak_train: expected a mapping"),
    "config: losses null": Bad(config_file(json.dumps({"losses": None})), "losses: expected a list of losses"),
    # a config.json of before losses had parameters: its aux_weight joined a losses value of any shape
    "config: legacy aux_weight with losses a number": Bad(config_file(json.dumps({"aux_weight": 0.3, "losses": 5})),
                                                          "losses: expected a list of losses"),  # was TypeError
    "config yaml: sweep-only key": Bad(config_file("variants: [{weak.lr: 1.0e-5}]\n", name="c.yaml"),
                                       "variants: a key of a sweep file's top level"),  # "did you mean 'variants'?"
    "config yaml: a role given whole after one of its fields": Bad(
        config_file("weak.lr: 1.0e-5\nweak_train: 5\n", name="c.yaml"),
        "weak_train: given twice (as weak.lr and weak_train)"),  # "(as weak_train and weak_train)"
    "config: methods a number": Bad(config_file(json.dumps({"methods": 3})), "methods: expected a list of methods"),
    # --- flags
    "empty loss": Bad(run_with("--loss", ""), "name at least one loss"),
    "empty dataset": Bad(lambda env, tmp: ["run", *env.common, "--dataset", ""], "dataset: must be a non-empty name"),
    "bad label map": Bad(run_with("--label-map", "positive:1"), "expected WORD=ID pairs"),
    "bad loss param": Bad(run_with("--loss-param", "aux_weight=0.3"), "expected LOSS.PARAM=VALUE"),
    "loss param for an absent loss": Bad(run_with("--loss-param", "logconf.aux_weight=0.3"), "not among the losses"),
    "loss param out of range": Bad(run_with("--loss", "logconf", "--loss-param", "logconf.aux_weight=2"),
                                   "aux_weight: must be in [0, 1]"),
    "--aux-weight and --loss-param for one parameter": Bad(
        run_with("--loss", "logconf", "--aux-weight", "0.2", "--loss-param", "logconf.aux_weight=0.4"),
        "logconf.aux_weight: given twice (--aux-weight sets logconf.aux_weight too)"),  # --aux-weight won silently
    "a loss parameter given twice": Bad(
        run_with("--loss", "gce", "--loss-param", "gce.q=0.5", "--loss-param", "gce.q=0.7"), "gce.q: given twice"),
    "a download timeout with a unit": Bad(run_with(), "W2SLAB_DOWNLOAD_TIMEOUT='30m': expected a number of seconds",
                                          patch=a_download_timeout_with_a_unit),  # was a traceback mid-download
    # sizes the tool chose itself, refused with a rule the user never set ("n_test: must be >= 2, got 1")
    "a file with one test row a class": Bad(small_file(3), "small.jsonl: its test pool supports only 1"),
    "a file too small for the least training set": Bad(small_file(5), "small.jsonl: too few rows of each class"),
    "a method parameter that does not fit the classes": Bad(
        data_file("three.jsonl", THREE_CLASSES, "--method", "synthetic_class_flip"),
        "three.jsonl: method synthetic_class_flip: rates: needs one rate per class (3)"),
    "unknown recompute kind": Bad(run_with("--recompute", "studnet"), "unknown stage kind studnet"),
    "negative learning rate": Bad(run_with("--weak-lr", "-1"), "weak_train.lr: must be > 0"),
    "n_train too small": Bad(run_with("--n-train", "3"), "n_train: must be >= 4"),
    "unknown model": Bad(run_with("--strong", "no-such-model"), "unknown model 'no-such-model'"),
    "unknown tracker": Bad(run_with("--log", "comet"), "trackers: unknown comet"),
    "superscript digit in the label map": Bad(run_with("--label-map", "a=²,b=0"), "expected WORD=ID pairs"),
    "infinite epochs": Bad(run_with("--epochs", "inf"), "epochs: must be a finite number > 0"),  # was OverflowError
    "nan epochs": Bad(run_with("--epochs", "nan"), "epochs: must be a finite number > 0"),
    "an empty role flag": Bad(run_with("--weak.epochs="), "weak_train.epochs: expected float"),  # was ignored
    "infinite learning rate": Bad(run_with("--weak-lr", "inf"), "weak_train.lr: must be finite"),  # trained, failed
    "nan learning rate": Bad(run_with("--strong-lr", "nan"), "strong_train.lr: must be > 0"),
    "negative head learning rate": Bad(run_with("--weak-head-lr", "-1"), "weak_train.head_lr: must be > 0"),
    "zero batch size": Bad(run_with("--batch-size", "0"), "batch_size: must be >= 1"),
    "seed beyond 64 bits": Bad(run_with("--seed", "180000000000000000000"), "seed: must be in [0, 2^32)"),
    "negative data seed": Bad(run_with("--data-seed", "-1"), "data_seed: must be in [0, 2^32)"),
    "a negative validation size": Bad(run_with("--n-val", "-1"), "n_val: must be >= 0"),
    "sweep: a negative validation size": Bad(sweep_file("n_val: -5\n"), "n_val: must be >= 0"),
    "a selection setting on select's baseline, which selects nothing": Bad(
        run_with("--method", "subset", "--method-param", "subset.every=2"), "subset selects no checkpoint"),
    "a label-matched baseline given no labels": Bad(
        run_with("--method", "truth_swap", "--method-param", "truth_swap.labelled=0"), "labelled: must be >= 1"),
    "a label-matched baseline holding out all of transfer": Bad(
        run_with("--method", "truth_swap", "--method-param", "truth_swap.holdout=1.5"), "holdout: must be in [0, 1)"),
    "negative checkpoint interval": Bad(run_with("--checkpoint-every", "-1"),
                                        "checkpoint_every: must be an integer >= 0"),
    "image size below 8": Bad(run_with("--image-size", "3"), "image_size: must be >= 8 pixels"),
    # failed at the first forward
    "max_ctx beyond the model's positions": Bad(run_with("--max-ctx", "100000"),
                                                "positions (64); set --max-ctx 64 or less"),
    "infinite ensemble weight": Bad(run_with("--method", "ensemble", "--method-param", "ensemble.weights=[.inf, 1, 1]"),
                                    "weights: must be finite"),  # became NaN labels
    # --- model folders: refused before anything hashes them
    "model config.json broken": Bad(model_folder("{broken"), "config.json is not readable JSON"),
    "model config.json a list": Bad(model_folder("[1, 2]"), "holds a list, not a JSON object"),
    "model folder empty": Bad(model_folder(None), "has no config.json, so it is not a Hugging Face model folder"),
    "model folder of folders": Bad(model_folder(None, nest=True), "has no config.json"),  # `--weak .` hashed the tree
    # an unknown Hub id failed only at weak_train, after the split had run
    "a Hub id not on the Hub": Bad(run_with("--strong", "nobody/no-such-model"), "is not on the Hub",
                                   patch=a_hub_without_that_repository),
    "a Hub id offline and not cached": Bad(run_with("--strong", "nobody/no-such-model"),
                                           "not in the local Hugging Face cache and HF_HUB_OFFLINE is set",
                                           patch=offline_with_an_empty_hub_cache),
    # --- output locations and reports
    "--out-dir a file": Bad(lambda env, tmp: ["run", "--dataset", str(env.data), *env.common, "--out-dir",
                                              write(tmp, "a-file", "x")], "is a file, not a folder"),
    "report --out a file": Bad(lambda env, tmp: ["report", str(env.runs), "--out", write(tmp, "a-file", "x")],
                               "report: --out"),
    "another config under a used --name": Bad(another_config_under_a_used_name,
                                              "holds another experiment (its config.json differs)"),
    "report of a file": Bad(lambda env, tmp: ["report", write(tmp, "a-file", "x")], "report: run root"),
    "report of a result with a wrong type": Bad(a_wrong_type_in_a_result, "seed must be an integer >= 0"),
    # tracebacks in w2s report / w2s compare: a list where a mapping belongs, a decomposition without a part, bad hex
    "report of a result whose config is a list": Bad(a_changed_result("report", config=[]),
                                                     "result.json: config must be a mapping"),
    "report of a result whose diagnostics are a string": Bad(a_changed_result("report", diagnostics="x"),
                                                             "result.json: diagnostics must be a mapping"),
    "compare of a result whose ground-truth counts are a list": Bad(
        a_changed_result("compare", ground_truth_labels=[]), "result.json: ground_truth_labels must be a mapping"),
    "report of a result whose decomposition lacks a part": Bad(
        a_changed_result("report", diagnostics=_without_corrected), "diagnostics.decomposition must map"),
    "compare of a result with bad hex in test_correct": Bad(
        a_changed_result("compare", test_correct={"weak": "zz", "ceiling": "00", "student": "00"}),
        "result.json: test_correct.weak must be a hex string"),
    # --- preference pairs and vectors
    "preference row with an empty rejected text": Bad(
        data_file("d.jsonl", '{"chosen": "w7 w9", "rejected": "w8"}\n{"chosen": "w7", "rejected": " "}\n'),
        "row 2: empty chosen or rejected"),
    "coordinates in the wrong order": Bad(lambda env, tmp: ["run", "--dataset", "gaussian_w2s", "--weak",
                                                             "coords:5-4", "--strong", "coords:0-3"],
                                          "write coords:FIRST-LAST with FIRST <= LAST"),
    "a linear model of coordinates on texts": Bad(lambda env, tmp: ["run", "--dataset", str(env.data), *env.common,
                                                                     "--strong", "coords:0-3"],
                                                  "reads vector but"),
    "coordinates past the vectors' width": Bad(lambda env, tmp: ["run", "--dataset", "gaussian_w2s", "--weak",
                                                                 "coords:4-9", "--strong", "coords:0-3"],
                                               "reads coordinate 9 but 'gaussian_w2s' has vectors of 6"),
    # `$` in re.match accepted a trailing newline, which then named a stage and a folder
    "a coordinates model name with a trailing newline": Bad(
        lambda env, tmp: ["run", "--dataset", "gaussian_w2s", "--weak", "coords:4-5", "--strong", "coords:0-3\n"],
        "write coords:FIRST-LAST"),
    "a torchhub model pinned to a short commit": Bad(
        run_with("--strong", "torchhub:facebookresearch/dino:7c446df/dino_resnet50"), "full 40 hex digits"),
    # models named in method parameters passed --dry-run and failed inside a stage after the weak model and the
    # ceiling had trained
    "a coordinates model as bootstrap's intermediate on texts": Bad(
        run_with("--method", "bootstrap", "--method-param", "bootstrap.via=coords:0-50"),
        "method bootstrap: 'coords:0-50' reads vector but"),
    "an unknown model among an ensemble's members": Bad(
        run_with("--method", "ensemble", "--method-param", "ensemble.models=[nosuchmodel]"),
        "unknown model 'nosuchmodel'"),
    "bootstrap's default text intermediate on vectors": Bad(
        lambda env, tmp: ["run", "--dataset", "gaussian_w2s", "--weak", "coords:4-5", "--strong", "coords:0-3",
                          "--method", "bootstrap"], "method bootstrap: 'minilm-l6' reads text but"),
    "bootstrap's intermediate past the vectors' width": Bad(
        lambda env, tmp: ["run", "--dataset", "gaussian_w2s", "--weak", "coords:4-5", "--strong", "coords:0-3",
                          "--method", "bootstrap", "--method-param", "bootstrap.via=coords:0-50"],
        "method bootstrap: 'coords:0-50' reads coordinate 50 but 'gaussian_w2s' has vectors of 6"),
    "a text model on vectors": Bad(lambda env, tmp: ["run", "--dataset", "gaussian_w2s", "--weak", "coords:4-5",
                                                      "--strong", str(env.strong)], "reads text but"),
}


def test_the_table_holds_every_bad_input_we_know():
    assert len(BAD_INPUTS) >= 70


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_a_bad_input_is_one_line_exit_2_and_touches_nothing(env, tmp_path, capsys, monkeypatch, case):
    bad = BAD_INPUTS[case]
    if bad.patch is not None:
        bad.patch(monkeypatch)
    check(env, capsys, bad.argv(env, tmp_path), bad.needle)


def _yaml(mapping: dict) -> str:
    import yaml

    return yaml.safe_dump(mapping)


def check(env, capsys, argv: list[str], needle: str) -> None:
    if "--out-dir" not in argv and argv[0] == "run":
        argv = [*argv, "--out-dir", str(env.runs)]
    before = snapshot(env.runs)
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, (argv, captured.err[-500:])
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in captured.err + captured.out
    assert snapshot(env.runs) == before  # nothing finished was touched, no stage started


def test_a_small_file_gets_the_test_set_its_pool_supports_and_an_explicit_n_test_is_kept(env, tmp_path, capsys):
    from w2slab.cli import build_config, make_parser
    from w2slab.data import load_task
    from w2slab.data.splits import make_splits

    path = str(env.data)  # 300 rows: a test pool of about 60, far below the default n_test of 1,800
    cfg = build_config(make_parser().parse_args(["run", "--dataset", path]))
    out = capsys.readouterr().out
    assert 40 <= cfg.n_test < 1800 and f"supports n_test={cfg.n_test}" in out
    task = load_task(path)
    splits = make_splits(task, n_train=cfg.n_train, n_test=cfg.n_test, seed=0)  # both sizes fit together
    assert len(splits.test) == cfg.n_test and cfg.n_train >= 100
    with pytest.raises(Exception, match="lower --n-test to at most"):  # one size more does not
        make_splits(task, n_train=2, n_test=cfg.n_test + 2, seed=0)
    # what the user set is not changed: refused in one line naming the size that fits
    with pytest.raises(Exception, match=f"lower --n-test to at most {cfg.n_test}"):
        build_config(make_parser().parse_args(["run", "--dataset", path, "--n-test", "1800"]))


def test_a_csv_with_other_columns_and_word_labels_reads_with_the_flags(env, tmp_path, capsys):
    from w2slab.cli import build_config, make_parser
    from w2slab.data import load_task
    from w2slab.pipeline.sweep import check_sources

    rows = [json.loads(line) for line in env.data.read_text().splitlines()]
    csv = "sentence,sentiment\n" + "".join(f"{r['text']},{'positive' if r['label'] else 'negative'}\n" for r in rows)
    path = write(tmp_path, "reviews.csv", csv)
    args = make_parser().parse_args(["run", "--dataset", path, "--text-field", "sentence", "--label-field",
                                     "sentiment", "--label-map", "positive=1,negative=0", "--n-test", "32"])
    cfg = build_config(args)
    assert cfg.label_map == {"positive": 1, "negative": 0} and cfg.text_field == "sentence"
    check_sources([cfg])  # reads and splits the file: no error
    task = load_task(path, text_field="sentence", label_field="sentiment", label_map=cfg.label_map)
    assert {r["label"] for r in task.train} == {0, 1}
    # without --n-train the file's own size is used, with a note; the default would not fit
    assert cfg.n_train < 2000 and f"supports n_train={cfg.n_train}" in capsys.readouterr().out
    explicit = build_config(make_parser().parse_args(["run", "--dataset", path, "--text-field", "sentence",
                                                      "--label-field", "sentiment", "--label-map",
                                                      "positive=1,negative=0", "--n-train", "2000"]))
    assert explicit.n_train == 2000
    check(env, capsys, ["run", "--dataset", path, "--text-field", "sentence", "--label-field", "sentiment",
                        "--label-map", "positive=1,negative=0", "--n-train", "2000", "--n-test", "32", *env.common[:4],
                        "--max-ctx", "16"],
          "lower --n-train to at most")


def test_a_legacy_aux_weight_applies_to_logconf_given_on_its_own(tmp_path):
    from w2slab.cli import build_config, make_parser

    path = write(tmp_path, "old.json", json.dumps({"aux_weight": 0.3, "losses": "logconf"}))  # was "unknown loss 'l'"
    cfg = build_config(make_parser().parse_args(["run", "--config", path]))
    assert [loss.label for loss in cfg.losses] == ["logconf[aux_weight=0.3]"]


@pytest.mark.parametrize(("file", "name"), [("my data.jsonl", "my_data_"), ("données.jsonl", "donnees_")])
def test_a_data_file_name_outside_the_safe_set_gets_a_safe_default_folder_name(env, tmp_path, capsys, file, name):
    """Refused by the run (after the dry run had accepted it): the default name is now made safe for both."""
    from w2slab.config import ExperimentConfig, check_experiment_name

    path = write(tmp_path, file, env.data.read_text())
    default = ExperimentConfig(dataset=path).default_name()
    check_experiment_name(default)
    assert default.startswith(name)
    assert ExperimentConfig(dataset=str(env.data)).default_name().startswith("toy_minilm")  # safe names unchanged
    assert main(["run", "--dataset", path, *env.common, "--out-dir", str(tmp_path / "runs"), "--dry-run"]) == 0
    assert f"  {name}" in capsys.readouterr().out
