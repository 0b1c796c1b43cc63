"""Bad input gives a one-line error naming the problem, exit code 2, and writes nothing."""

import json

import pytest

from w2slab.cli import build_config, main, make_parser
from w2slab.pipeline.store import StageStore


def run_cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.err.strip()


@pytest.fixture
def out_dir(tmp_path):
    return str(tmp_path / "runs")


def assert_one_line_error(code, err, *needles):
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0]


def test_unknown_dataset(capsys, out_dir, data_root):
    code, err = run_cli(["run", "--dataset", "nosuchdata", "--data-root", str(data_root), "--out-dir", out_dir], capsys)
    assert_one_line_error(code, err, "nosuchdata", "sciq")


def test_unknown_model(capsys, out_dir, data_root):
    code, err = run_cli(["run", "--dataset", "sst2", "--weak", "no-such-model", "--n-train", "20", "--n-test", "10",
                         "--data-root", str(data_root), "--out-dir", out_dir], capsys)
    assert_one_line_error(code, err, "no-such-model", "w2s models")


def test_missing_data_root(capsys, out_dir, tmp_path):
    code, err = run_cli(["run", "--dataset", "sciq", "--data-root", str(tmp_path / "nowhere"), "--out-dir", out_dir],
                        capsys)
    assert_one_line_error(code, err, "nowhere", "W2SLAB_DATA_ROOT")


def test_n_train_larger_than_data(capsys, out_dir, data_root):
    code, err = run_cli(["run", "--dataset", "cosmos_qa", "--n-train", "100000", "--data-root", str(data_root),
                         "--out-dir", out_dir], capsys)
    assert_one_line_error(code, err, "100000", "--n-train")


@pytest.mark.parametrize("rows, needle", [
    ([{"text": "good", "label": 1}, {"text": "bad"}], "label"),
    ([{"text": "good", "label": 1}, {"text": "bad", "label": -1}], "-1"),
    ([{"text": "good", "label": 1}, {"text": "   ", "label": 0}], "empty"),
])
def test_bad_jsonl_rows(capsys, out_dir, tmp_path, rows, needle):
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows * 20))
    runs = tmp_path / "runs"
    earlier_stage = runs / "stages" / "split" / "0123456789abcdef"  # what an earlier run had finished
    earlier_stage.mkdir(parents=True)
    (earlier_stage / "splits.json").write_text("{}")
    (earlier_stage / "DONE").write_text("{}")
    (runs / "earlier_experiment").mkdir()
    (runs / "earlier_experiment" / "metrics.json").write_text('{"weak": 1}')
    code, err = run_cli(["run", "--dataset", str(path), "--out-dir", out_dir], capsys)
    assert_one_line_error(code, err, "mine.jsonl", "row", needle)
    # the file is checked before any stage runs: nothing started, nothing new, nothing earlier changed
    assert sorted(p.name for p in runs.iterdir()) == ["earlier_experiment", "stages"]
    assert list(runs.rglob("DONE")) == [earlier_stage / "DONE"] and not list(runs.rglob("result.json"))
    assert (runs / "earlier_experiment" / "metrics.json").read_text() == '{"weak": 1}'
    assert sorted(row["state"] for row in StageStore(runs).status()) == ["done"]


def test_unknown_loss(capsys, out_dir):
    code, err = run_cli(["run", "--loss", "xent,focal", "--out-dir", out_dir], capsys)
    assert_one_line_error(code, err, "focal")


def test_reference_code_flags_are_aliases():
    args = make_parser().parse_args([
        "run", "--ds_name", "boolq", "--weak_model_size", "minilm-l3", "--strong_model_size", "minilm-l6",
        "--n_docs", "600", "--n_test_docs", "200", "--loss", "logconf", "--batch_size", "8", "--max_ctx", "64",
        "--seed", "3"])
    cfg = build_config(args)
    labels = [loss.label for loss in cfg.losses]
    assert (cfg.dataset, cfg.weak, cfg.strong, cfg.n_train, cfg.n_test, labels, cfg.max_ctx, cfg.seed) == (
        "boolq", "minilm-l3", "minilm-l6", 600, 200, ["logconf"], 64, 3)
    assert cfg.weak_train.batch_size == cfg.strong_train.batch_size == 8


def test_config_roundtrip_through_json(tmp_path):
    cfg = build_config(make_parser().parse_args(["run", "--dataset", "sst2", "--lora", "--strong-lr", "1e-4"]))
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg.to_dict()))
    again = build_config(make_parser().parse_args(["run", "--config", str(path)]))
    assert again == cfg and again.strong_train.mode == "lora" and again.strong_train.lr == 1e-4


@pytest.mark.parametrize("name", ["stages", "experiments", ".", "..", "/tmp/elsewhere", "a/b", ".hidden", ""])
def test_name_that_would_replace_another_folder_is_refused(capsys, tmp_path, data_root, name):
    """--name picks RUN_ROOT/<name>, which publishing replaces: a path, '.', '..' or the store's own entries
    would delete the stage cache, the run root or any folder; refused before work, and nothing is touched."""
    out_dir = tmp_path / "runs"
    sentinel = out_dir / "stages" / "split" / "keep.txt"
    sentinel.parent.mkdir(parents=True)
    sentinel.write_text("cached work")
    code, err = run_cli(["run", "--dataset", "sst2", "--n-train", "20", "--n-test", "10", "--name", name,
                         "--data-root", str(data_root), "--out-dir", str(out_dir)], capsys)
    assert_one_line_error(code, err, "name")
    assert sentinel.read_text() == "cached work"
    assert sorted(p.name for p in out_dir.iterdir()) == ["stages"]


def test_name_of_an_existing_folder_that_is_not_an_experiment_is_refused(capsys, tmp_path, data_root):
    out_dir = tmp_path / "runs"
    precious = out_dir / "notes"
    precious.mkdir(parents=True)
    (precious / "thesis.tex").write_text("days of work")
    code, err = run_cli(["run", "--dataset", "sst2", "--n-train", "20", "--n-test", "10", "--name", "notes",
                         "--data-root", str(data_root), "--out-dir", str(out_dir)], capsys)
    assert_one_line_error(code, err, "not an experiment folder", "--name")
    assert (precious / "thesis.tex").read_text() == "days of work"
    assert not (out_dir / "stages").exists()


def test_every_training_field_has_a_flag_per_role_and_it_sets_only_that_role(tmp_path):
    from w2slab.cli import build_config, make_parser
    from w2slab.config import TrainConfig
    from w2slab.typed import init_fields

    help_text = make_parser()._subparsers._group_actions[0].choices["run"].format_help()
    for role in ("weak", "strong"):
        for name in init_fields(TrainConfig):
            assert f"--{role}.{name}" in help_text, (role, name)
    cfg = build_config(make_parser().parse_args(["run", "--strong.lr", "1e-5", "--weak.epochs", "3",
                                                 "--strong.lora_targets", "[query, value]", "--epochs", "2"]))
    assert cfg.strong_train.lr == 1e-5 and cfg.weak_train.lr is None
    assert cfg.weak_train.epochs == 3 and cfg.strong_train.epochs == 2  # the role's flag wins over --epochs
    assert cfg.strong_train.lora_targets == ("query", "value")


def test_a_yaml_config_uses_the_sweep_spellings_and_a_result_config_json_reads_back(tmp_path):
    import json

    from w2slab.cli import build_config, make_parser
    from w2slab.config import ExperimentConfig

    (tmp_path / "c.yaml").write_text("dataset: sciq\nstrong.lr: 1e-5\nweak_train: {epochs: 1}\nlosses: [xent]\n")
    cfg = build_config(make_parser().parse_args(["run", "--config", str(tmp_path / "c.yaml")]))
    assert cfg.dataset == "sciq" and cfg.strong_train.lr == 1e-5 and cfg.weak_train.epochs == 1
    written = {**cfg.to_dict(), "resolved": {"weak": {"precision": "fp32"}}}  # what an experiment folder holds
    assert ExperimentConfig.from_dict(json.loads(json.dumps(written))) == cfg


def test_version_and_one_name_for_the_run_root(capsys, tmp_path):
    from w2slab import __version__
    from w2slab.cli import make_parser

    with pytest.raises(SystemExit):
        make_parser().parse_args(["--version"])
    assert __version__ in capsys.readouterr().out
    for flag in ("--run-root", "--out-dir"):  # --out-dir: the earlier name, kept
        assert make_parser().parse_args(["run", flag, str(tmp_path)]).run_root == str(tmp_path)
    assert make_parser().parse_args(["sweep", "s.yaml", "--run-root", str(tmp_path)]).run_root == str(tmp_path)


def test_dry_run_prints_the_plan_and_computes_nothing(tiny_pair, tmp_path, capsys):
    sweep_file = tmp_path / "grid.yaml"
    sweep_file.write_text(f"datasets: [{tiny_pair.data}]\nweak: [{tiny_pair.weak}]\nstrong: [{tiny_pair.strong}]\n"
                          "n_train: 64\nn_test: 32\nmax_ctx: 16\nlosses: [xent]\n"
                          "weak_train: {mode: probe, epochs: 1}\nstrong_train: {mode: probe, epochs: 1}\n"
                          "strong.lr: [1e-3, 3e-3]\ndata_seed: [0, 1]\n"
                          "methods: [none, {name: conf_filter, drop: [0.3, 0.4]}]\n")
    root = tmp_path / "runs"
    assert main(["sweep", str(sweep_file), "--run-root", str(root), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 experiment(s), 12 student(s)" in out and "conf_filter[drop=0.4]" in out
    assert "dry run: nothing computed" in out and not root.exists()
    args = ["run", "--dataset", tiny_pair.data, "--weak", tiny_pair.weak, "--strong", tiny_pair.strong, "--n-train",
            "64", "--n-test", "32", "--max-ctx", "16", "--loss", "xent", "--weak.mode", "probe", "--strong.mode",
            "probe", "--epochs", "1", "--strong.lr", "1e-3", "--run-root", str(root)]
    assert main(args) == 0
    capsys.readouterr()
    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "(0 new," in out and "0 stage(s) would run" in out  # everything cached now
    assert main(["sweep", str(sweep_file), "--run-root", str(root), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "split          2  (1 new, 1 cached)" in out  # the run's split is the sweep's data_seed 0 split


def test_help_and_version_import_neither_torch_nor_transformers():
    """`w2s --help` took 4 s importing torch; a new process shows what the help path imports."""
    import subprocess
    import sys

    code = ("import sys\nfrom w2slab.cli import main\nfor argv in (['--help'], ['run', '--help'], ['--version']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print('heavy:', sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "heavy: []" in done.stdout, done.stdout[-300:] + done.stderr[-300:]


@pytest.mark.parametrize("name,text", [("c.yaml", "name: conf_filter\ndrop: 0.3\n"),
                                       ("c.toml", 'name = "conf_filter"\ndrop = 0.3\n'),
                                       ("c.json", '{"name": "logconf", "aux_weight": 0.3}')])
def test_a_bench_candidate_file_is_read_in_its_own_format(capsys, tmp_path, name, text):
    """A YAML candidate was refused as a sweep ("name: unknown key"), a TOML one read as JSON, and a JSON one lost
    its aux_weight to the legacy-config rule; each now reaches the task list (here a task that does not exist)."""
    (tmp_path / name).write_text(text)
    code, err = run_cli(["bench", str(tmp_path / name), "--tasks", "nope", "--run-root", str(tmp_path / "runs")],
                        capsys)
    assert_one_line_error(code, err, "nope")
    assert not (tmp_path / "runs").exists()


def test_a_bench_records_the_command_as_typed_however_main_is_called(tmp_path, monkeypatch, capsys):
    """The bench's meta named `w2s bench ` (no arguments) for a run started by `python -c "main()"` or main(argv):
    the command is now the argv main parsed."""
    import w2slab.bench.run as bench_run

    seen = {}

    def fake_bench(spec, **kwargs):
        seen["command"] = kwargs["command"]
        return "table"

    monkeypatch.setattr(bench_run, "run_bench", fake_bench)
    root = str(tmp_path / "runs")
    code, _ = run_cli(["bench", "logconf", "--tasks", "sst2_sentences", "--seeds", "0,1", "--run-root", root], capsys)
    assert code == 0
    assert seen["command"] == f"w2s bench logconf --tasks sst2_sentences --seeds 0,1 --run-root {root}"
    monkeypatch.setattr("sys.argv", ["-c", "bench", "logconf", "--seeds", "2", "--run-root", root])
    assert main() == 0 and seen["command"] == f"w2s bench logconf --seeds 2 --run-root {root}"
