"""Every bad input ends in one line naming the problem and the fix, exit code 2, before any stage runs.

Data files, sweep files, config files and flags, table-driven. A run root holding an earlier finished run
must be byte-for-byte the same afterwards, and no stage may have started.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.tiny import write_tiny_model, write_toy_dataset
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

#: name -> (files to write {name: content}, argv builder, needle in the one-line error)
DATA_FILES = {
    "non-utf8 jsonl": ({"d.jsonl": GOOD.encode() + b'{"text": "caf\xe9", "label": 1}\n'}, "not UTF-8"),
    "binary file": ({"d.jsonl": b"\x00\x01\x02PK\x03\x04" * 100}, "binary content"),
    "empty file": ({"d.jsonl": ""}, "no rows"),
    "bad json line": ({"d.jsonl": GOOD + '{"text": "w9", "label": \n'}, "row 3: not valid JSON"),
    "row is a list": ({"d.jsonl": GOOD + '["w9", 1]\n'}, "row 3: expected a JSON object"),
    "missing label": ({"d.jsonl": GOOD + '{"text": "w9"}\n'}, "row 3: missing 'label'"),
    "label with a gap": ({"d.jsonl": GOOD + '{"text": "w9", "label": 3}\n'}, "class 2 never occurs"),
    "negative label": ({"d.jsonl": GOOD + '{"text": "w9", "label": -1}\n'}, "row 3: label -1 is negative"),
    "empty text": ({"d.jsonl": GOOD + '{"text": "  ", "label": 1}\n'}, "row 3: empty text"),
    "text not a string": ({"d.jsonl": GOOD + '{"text": 12, "label": 1}\n'}, "row 3: text '12' is not a string"),
    "huge field": ({"d.jsonl": GOOD + json.dumps({"text": "w5 " * 400_000, "label": 1}) + "\n"}, "limit 1,000,000"),
    "csv without header": ({"d.csv": ""}, "no header row"),
    "csv ragged row": ({"d.csv": "text,label\nw5 w6,0\nw7,w8,1\n"}, "row 2: 2 columns in the header"),
    "csv other columns": ({"d.csv": "sentence,y\nw5 w6,0\n"}, "--text-field"),
    "csv word labels": ({"d.csv": "text,label\nw5 w6,positive\n"}, "--label-map"),
    "unsupported suffix": ({"d.txt": "w5 w6\t0\n"}, "unsupported file type '.txt'"),
    "too few rows": ({"d.jsonl": GOOD * 3}, "n_train"),
    # str.isdigit() accepts '²', int() does not
    "superscript digit label": ({"d.jsonl": GOOD + '{"text": "w9", "label": "²"}\n'},
                                "row 3: label ² is not a class id"),
    # a range(10**10) of classes took minutes, then MemoryError
    "label far beyond any class count": ({"d.jsonl": GOOD + '{"text": "w9", "label": 10000000000}\n'},
                                         "row 3: label 10000000000 is not a class id"),
}


@pytest.mark.parametrize("case", sorted(DATA_FILES))
def test_bad_data_files(env, tmp_path, capsys, case):
    files, needle = DATA_FILES[case]
    paths = [write(tmp_path, name, content) for name, content in files.items()]
    check(env, capsys, ["run", "--dataset", paths[0], *env.common], needle)


def test_a_directory_as_the_data_file(env, tmp_path, capsys):
    (tmp_path / "d.jsonl").mkdir()
    check(env, capsys, ["run", "--dataset", str(tmp_path / "d.jsonl"), *env.common],
          "a directory without class sub-folders")


def test_a_word_label_missing_from_the_label_map(env, tmp_path, capsys):
    path = write(tmp_path, "d.csv", "text,label\nw5 w6,positive\nw7 w8,neutral\n")
    check(env, capsys, ["run", "--dataset", path, *env.common, "--label-map", "positive=1,negative=0"],
          "row 2: label 'neutral' is not in --label-map")


SWEEPS = {
    "unknown loss": ("losses: [xent, focal]\n", "unknown loss 'focal'"),
    "unknown training key": ("weak_train: {learning_rate: 3}\n", "weak_train.learning_rate: unknown key"),
    "wrong type": ("strong_train: {epochs: two}\n", "strong_train.epochs: expected float"),
    "negative n_test": ("n_test: -4\n", "n_test: must be >= 2"),
    "bad label map value": ("label_map: {positive: -3}\n", "label_map: maps words to class ids"),
    "yaml syntax": ("weak_train: {epochs: 1\n", "not valid YAML"),
    "empty datasets": ("", "datasets: empty"),  # with datasets: []
    "text_field on a registered dataset": ("text_field: sentence\n", "for your own .jsonl/.csv files"),
}


@pytest.mark.parametrize("case", sorted(SWEEPS))
def test_bad_sweep_files(env, tmp_path, capsys, case):
    extra, needle = SWEEPS[case]
    base = {"datasets": [str(env.data)], "weak": [str(env.weak)], "strong": [str(env.strong)]}
    if case == "empty datasets":
        base["datasets"] = []
    if case == "text_field on a registered dataset":
        base["datasets"] = ["sst2"]
    path = write(tmp_path, "s.yaml", _yaml(base) + "n_test: 32\nmax_ctx: 16\n" + extra)
    check(env, capsys, ["sweep", path, "--run-root", str(env.runs)], needle)


def _yaml(mapping: dict) -> str:
    import yaml

    return yaml.safe_dump(mapping)


def test_sweep_file_edge_cases(env, tmp_path, capsys):
    cases = [
        (write(tmp_path, "a.toml", "datasets = [\n"), "not valid TOML"),
        (write(tmp_path, "b.yaml", "- just\n- a list\n"), "a sweep file is a mapping"),
        (write(tmp_path, "c.yaml", b"datasets: [\xff]\n"), "not UTF-8"),
        (str(tmp_path), "is a directory"),
        (str(tmp_path / "missing.yaml"), "not found"),
        (write(tmp_path, "d.yaml", "datasets: [sst2]\nweak: [minilm-l3]\n"), "strong: missing"),
    ]
    for path, needle in cases:
        check(env, capsys, ["sweep", path, "--run-root", str(env.runs)], needle)


def test_config_file_edge_cases(env, tmp_path, capsys):
    cases = [
        (str(tmp_path / "missing.json"), "file not found"),
        (write(tmp_path, "a.json", "{not json"), "not a readable JSON file"),
        (str(tmp_path), "not a readable JSON file"),
        (write(tmp_path, "b.json", "[1, 2]"), "expected a JSON object"),
        (write(tmp_path, "c.json", json.dumps({"n_trian": 5})), "n_trian: unknown key"),
        (write(tmp_path, "d.json", json.dumps({"seed": "zero"})), "seed: expected int"),
        (write(tmp_path, "e.json", json.dumps({"weak_train": "x"})), "weak_train: expected a mapping"),
        (write(tmp_path, "f.json", json.dumps({"weak_train": [1]})), "weak_train: expected a mapping"),
        (write(tmp_path, "g.json", json.dumps({"losses": None})), "losses: expected a list of losses"),
        (write(tmp_path, "h.json", json.dumps({"methods": 3})), "methods: expected a list of methods"),
    ]
    for path, needle in cases:
        check(env, capsys, ["run", "--config", path, "--out-dir", str(env.runs)], needle)


FLAGS = {
    "empty loss": (["--loss", ""], "name at least one loss"),
    "empty dataset": (["--dataset", ""], "dataset: must be a non-empty name"),
    "bad label map": (["--label-map", "positive:1"], "expected WORD=ID pairs"),
    "bad loss param": (["--loss-param", "aux_weight=0.3"], "expected LOSS.PARAM=VALUE"),
    "loss param for an absent loss": (["--loss-param", "logconf.aux_weight=0.3"], "not among the losses"),
    "loss param out of range": (["--loss", "logconf", "--loss-param", "logconf.aux_weight=2"],
                                "aux_weight: must be in [0, 1]"),
    "unknown recompute kind": (["--recompute", "studnet"], "unknown stage kind studnet"),
    "negative learning rate": (["--weak-lr", "-1"], "weak_train.lr: must be > 0"),
    "n_train too small": (["--n-train", "3"], "n_train: must be >= 4"),
    "unknown model": (["--strong", "no-such-model"], "unknown model 'no-such-model'"),
    "unknown tracker": (["--log", "mlflow"], "trackers: unknown mlflow"),
    "superscript digit in the label map": (["--label-map", "a=²,b=0"], "expected WORD=ID pairs"),
    "infinite epochs": (["--epochs", "inf"], "epochs: must be a finite number > 0"),  # was an OverflowError
    "nan epochs": (["--epochs", "nan"], "epochs: must be a finite number > 0"),
    "infinite learning rate": (["--weak-lr", "inf"], "weak_train.lr: must be finite"),  # trained, then failed
    "nan learning rate": (["--strong-lr", "nan"], "strong_train.lr: must be > 0"),
    "negative head learning rate": (["--weak-head-lr", "-1"], "weak_train.head_lr: must be > 0"),
    "zero batch size": (["--batch-size", "0"], "batch_size: must be >= 1"),
    "seed beyond 64 bits": (["--seed", "180000000000000000000"], "seed: must be in [0, 2^32)"),  # torch overflowed
    "negative data seed": (["--data-seed", "-1"], "data_seed: must be in [0, 2^32)"),
    "negative checkpoint interval": (["--checkpoint-every", "-1"], "checkpoint_every: must be an integer >= 0"),
    "image size below 8": (["--image-size", "3"], "image_size: must be >= 8 pixels"),
    "max_ctx beyond the model's positions": (["--max-ctx", "100000"], "positions (64); set --max-ctx 64 or less"),
    "infinite ensemble weight": (["--method", "ensemble", "--method-param", "ensemble.weights=[.inf, 1, 1]"],
                                 "weights: must be finite"),  # became NaN labels
}


@pytest.mark.parametrize("case", sorted(FLAGS))
def test_bad_flags(env, capsys, case):
    flags, needle = FLAGS[case]
    check(env, capsys, ["run", "--dataset", str(env.data), *env.common, *flags], needle)


def test_model_folders_that_are_not_model_folders(env, tmp_path, capsys):
    """Refused before anything hashes them: ``--weak .`` used to hash the whole tree, a broken config.json to
    raise JSONDecodeError from the graph."""
    import shutil

    broken, listed, empty = tmp_path / "broken", tmp_path / "listed", tmp_path / "empty"
    for folder in (broken, listed):
        shutil.copytree(env.strong, folder)
    (broken / "config.json").write_text("{broken")
    (listed / "config.json").write_text("[1, 2]")
    empty.mkdir()
    cases = [(broken, "config.json is not readable JSON"), (listed, "holds a list, not a JSON object"),
             (empty, "has no config.json, so it is not a Hugging Face model folder"),
             (tmp_path, "has no config.json")]  # a folder of folders, as `--weak .` in a project
    for folder, needle in cases:
        check(env, capsys, ["run", "--dataset", str(env.data), *env.common, "--strong", str(folder)], needle)


def test_output_locations_that_are_files(env, tmp_path, capsys):
    a_file = write(tmp_path, "a-file", "x")
    check(env, capsys, ["run", "--dataset", str(env.data), *env.common, "--out-dir", a_file],
          "is a file, not a folder")
    check(env, capsys, ["report", str(env.runs), "--out", a_file], "report: --out")
    check(env, capsys, ["report", a_file], "report: run root")


def test_a_result_file_with_a_wrong_type_in_the_report(env, tmp_path, capsys):
    (source,) = list((env.runs / "experiments").glob("*/result.json"))[:1]
    record = json.loads(source.read_text())
    root = tmp_path / "root"
    (root / "experiments" / "x").mkdir(parents=True)
    (root / "experiments" / "x" / "result.json").write_text(json.dumps({**record, "seed": "zero"}))
    check(env, capsys, ["report", str(root)], "seed must be an integer >= 0")


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
