"""Sweep files expand to experiments; identities are shared exactly where the stages are the same."""

import pytest

from w2slab.errors import W2SError
from w2slab.pipeline.graph import build_experiment, unique_stages
from w2slab.pipeline.sweep import load_sweep_file, parse_sweep

YAML = """
datasets: [sciq, sst2]
weak: [minilm-l3, minilm-l6]
strong: [mpnet-base, minilm-l6]
losses: [xent, logconf, product]
seeds: [0, 1]
n_train: 64
strong_train: {mode: lora, epochs: 1}
"""


def expand(spec):
    return list(parse_sweep(spec).configs)


def test_yaml_and_toml_sweeps_expand_alike(tmp_path):
    (tmp_path / "s.yaml").write_text(YAML)
    (tmp_path / "s.toml").write_text('datasets = ["sciq", "sst2"]\nweak = ["minilm-l3", "minilm-l6"]\n'
                                     'strong = ["mpnet-base", "minilm-l6"]\nlosses = ["xent", "logconf", "product"]\n'
                                     'seeds = [0, 1]\nn_train = 64\n[strong_train]\nmode = "lora"\nepochs = 1\n')
    from_yaml = expand(load_sweep_file(tmp_path / "s.yaml"))
    from_toml = expand(load_sweep_file(tmp_path / "s.toml"))
    assert from_yaml == from_toml and len(from_yaml) == 2 * 2 * 2 * 2
    assert all(c.strong_train.mode == "lora" and c.strong_train.epochs == 1 and c.n_train == 64 for c in from_yaml)
    assert all([loss.label for loss in c.losses] == ["xent", "logconf", "product"] for c in from_yaml)


def test_stage_sharing_follows_the_design(tmp_path):
    (tmp_path / "s.yaml").write_text(YAML)
    configs = expand(load_sweep_file(tmp_path / "s.yaml"))
    counts = {}
    for stage in unique_stages([build_experiment(c) for c in configs]):
        counts[stage.kind] = counts.get(stage.kind, 0) + 1
    # 2 datasets x 2 seeds splits; weak per (dataset, weak, seed); ceiling per (dataset, strong, seed);
    # students per (dataset, weak, strong, seed, loss); LoRA strong models need no cached features
    assert counts == {"split": 4, "weak_train": 8, "weak_label": 8, "ceiling": 8, "student": 48, "evaluate": 48}


def test_identity_changes_with_what_changes_results(tmp_path):
    (tmp_path / "s.yaml").write_text(YAML)
    base = expand(load_sweep_file(tmp_path / "s.yaml"))[0]
    graph = build_experiment(base)
    same = build_experiment(base)
    assert graph.ceiling.id == same.ceiling.id
    other_lr = build_experiment(type(base).from_dict({**base.to_dict(), "strong_train": {
        **base.to_dict()["strong_train"], "lr": 1e-3}}))
    assert other_lr.ceiling.id != graph.ceiling.id and other_lr.weak_train.id == graph.weak_train.id
    with pytest.raises(W2SError, match="data_root: unknown key"):  # locations live in RuntimeConfig, not here
        type(base).from_dict({**base.to_dict(), "data_root": "/elsewhere"})


@pytest.mark.parametrize("text, needle", [("datasets: [sciq]\nweak: [minilm-l3]\n", "strong"),
                                          ("datasets: [sciq]\nweak: [a]\nstrong: [b]\nlearning_rate: 3\n",
                                           "learning_rate")])
def test_bad_sweep_files_are_clear_errors(tmp_path, text, needle):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(W2SError, match=needle):
        expand(load_sweep_file(tmp_path / "bad.yaml"))


def test_ladder_pairs_keep_only_weak_models_smaller_than_the_strong_one():
    spec = {"datasets": ["sst2"], "weak": ["minilm-l3", "minilm-l6", "mpnet-base"],
            "strong": ["minilm-l6", "mpnet-base", "gemma3-270m"], "losses": ["xent"], "pairs": "ladder"}
    pairs = [(c.weak, c.strong) for c in parse_sweep(spec).configs]
    assert pairs == [("minilm-l3", "minilm-l6"), ("minilm-l3", "mpnet-base"), ("minilm-l3", "gemma3-270m"),
                     ("minilm-l6", "mpnet-base"), ("minilm-l6", "gemma3-270m"), ("mpnet-base", "gemma3-270m")]
    assert len(parse_sweep({**spec, "pairs": "all"}).configs) == 9
    with pytest.raises(W2SError, match="pairs: must be one of all, ladder"):
        parse_sweep({**spec, "pairs": "upward"})


def test_the_shipped_ladder_sweep_is_ten_pairs_on_five_datasets():
    from pathlib import Path

    sweep = parse_sweep(load_sweep_file(Path(__file__).resolve().parents[3] / "sweeps" / "ladder_probe.yaml"))
    assert len({(c.weak, c.strong) for c in sweep.configs}) == 10
    assert len({c.dataset for c in sweep.configs}) == 5 and {c.seed for c in sweep.configs} == {0, 1, 2}
    assert all(c.weak_train.mode == c.strong_train.mode == "probe" for c in sweep.configs)


GRID = """
datasets: [sciq]
weak: [minilm-l3]
strong: [minilm-l6]
seeds: [0, 1]
data_seed: [0, 1]
strong_train: {lr: [1e-5, 3e-5], epochs: 1}
weak.epochs: 2
methods: [none, {name: conf_filter, drop: [0.3, 0.4]}]
"""


def test_any_field_takes_a_grid_and_yaml_numbers_read_as_numbers(tmp_path):
    (tmp_path / "grid.yaml").write_text(GRID)
    configs = expand(load_sweep_file(tmp_path / "grid.yaml"))
    assert len(configs) == 2 * 2 * 2  # seeds x data_seed x strong lr
    assert {(c.seed, c.data_seed, c.strong_train.lr) for c in configs} == {
        (s, d, lr) for s in (0, 1) for d in (0, 1) for lr in (1e-5, 3e-5)}
    assert all(isinstance(c.strong_train.lr, float) and c.strong_train.epochs == 1 and c.weak_train.epochs == 2
               for c in configs)
    # a method parameter list: one student per value, in every experiment (they share its weak model and ceiling)
    assert all([m.label for m in c.methods] == ["none", "conf_filter[drop=0.3]", "conf_filter[drop=0.4]"]
               for c in configs)
    # sweep and run share one set of defaults: no losses key gives w2s run's losses
    assert all([loss.label for loss in c.losses] == ["xent", "logconf"] for c in configs)


def test_a_list_of_mappings_is_zipped_variants_and_list_valued_params_take_a_list_of_lists():
    configs = expand({"datasets": ["sciq"], "weak": ["minilm-l3"], "strong": ["minilm-l6"],
                      "variants": [{"strong.lr": 1e-5, "strong.epochs": 1}, {"strong.lr": 3e-5, "strong.epochs": 2}],
                      "weak_train": [{"batch_size": 8}, {"batch_size": 16}],
                      "methods": [{"name": "ensemble", "weights": [[1, 1, 1], [2, 1, 1]]}]})
    assert sorted((c.strong_train.lr, c.strong_train.epochs, c.weak_train.batch_size) for c in configs) == [
        (1e-5, 1, 8), (1e-5, 1, 16), (3e-5, 2, 8), (3e-5, 2, 16)]  # lr and epochs move together, not crossed
    assert [m.params()["weights"] for m in configs[0].methods] == [[1.0, 1.0, 1.0], [2.0, 1.0, 1.0]]
    # other fields of the same role beside the variants' own are fine
    both = expand({"datasets": ["sciq"], "weak": ["minilm-l3"], "strong": ["minilm-l6"], "strong.batch_size": 8,
                   "variants": [{"strong.lr": 1e-5}, {"strong.lr": 3e-5}]})
    assert sorted((c.strong_train.lr, c.strong_train.batch_size) for c in both) == [(1e-5, 8), (3e-5, 8)]
    one = expand({"datasets": ["sciq"], "weak": ["minilm-l3"], "strong": ["minilm-l6"],
                  "methods": [{"name": "ensemble", "weights": [1, 2, 1]}]})  # a list the parameter takes: one value
    assert len(one) == 1 and [m.params()["weights"] for m in one[0].methods] == [[1.0, 2.0, 1.0]]


@pytest.mark.parametrize(("spec", "needle"), [
    ({"data_seed": []}, "data_seed: empty list"),
    ({"strong.lrr": 1e-5}, "strong_train.lrr: unknown key"),
    ({"learning_rate": 3}, "learning_rate: unknown key"),
    ({"variants": [1, 2]}, "variants: expected a list of mappings"),
    ({"strong_train": [1]}, "strong_train: expected a mapping of training settings"),
    # the variants' value silently replaced a grid axis or a top-level value of the same key
    ({"strong.lr": [1e-5, 3e-5], "variants": [{"strong.lr": 1e-4}, {"strong.lr": 2e-4}]},
     "variants: strong.lr also given outside variants"),
    ({"n_train": 64, "variants": [{"n_train": 32, "seed": 1}, {"seed": 2}]}, "variants: n_train also given outside"),
    ({"strong_train": {"lr": 1e-5}, "variants": [{"strong.lr": 1e-4}]}, "variants: strong.lr also given outside"),
    ({"strong_train": [{"epochs": 1}, {"epochs": 2}], "variants": [{"strong_train": {"epochs": 3}}]},
     "variants: strong.epochs also given outside"),
])
def test_bad_grids_are_one_line_naming_the_key(spec, needle):
    with pytest.raises(W2SError, match=needle.replace("[", r"\[")):
        expand({"datasets": ["sciq"], "weak": ["minilm-l3"], "strong": ["minilm-l6"], **spec})


def test_yaml_reads_every_spelling_of_a_number():
    from w2slab.configfile import safe_load

    assert safe_load("[1e-5, 3E+2, .5, 1., -2e3, 1.0e-5, 7, .inf]") == [1e-5, 300.0, 0.5, 1.0, -2000.0, 1e-5, 7,
                                                                        float("inf")]
    assert safe_load("1e5x") == "1e5x" and safe_load("v1.2") == "v1.2"  # words stay words


def test_one_reader_takes_json_yaml_and_toml_and_refuses_a_bad_file_in_one_line(tmp_path):
    """``--config`` files, sweep files and bench candidates go through :func:`read_config_file`: the same mapping
    from each format (a .toml config was read as JSON before), and every unreadable file is one ConfigError line."""
    from w2slab.configfile import read_config_file
    from w2slab.errors import ConfigError

    files = {"c.json": '{"n_train": 64, "strong_train": {"lr": 1e-05}}', "c.yaml": "n_train: 64\nstrong_train:\n"
             "  lr: 1e-5\n", "c.toml": "n_train = 64\n[strong_train]\nlr = 1e-5\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        assert read_config_file(tmp_path / name, label=name, holds="fields") == {"n_train": 64,
                                                                                "strong_train": {"lr": 1e-5}}
    (tmp_path / "noext").write_text("n_train: 64\n")
    assert read_config_file(tmp_path / "noext", label="x", holds="fields", default="YAML") == {"n_train": 64}
    bad = {"missing.json": None, "dir.yaml": "/", "syntax.toml": "n_train = [\n", "syntax.json": "{n_train: 1}",
           "syntax.yaml": "a: {b: 1\n", "latin1.yaml": b"a: caf\xe9\n", "list.yaml": "- 1\n- 2\n"}
    needles = {"missing.json": "file not found", "dir.yaml": "is a directory", "syntax.toml": "not valid TOML",
               "syntax.json": "not valid JSON", "syntax.yaml": "not valid YAML", "latin1.yaml": "not UTF-8 text",
               "list.yaml": "expected a YAML mapping of fields, got a list"}
    for name, content in bad.items():
        path = tmp_path / name
        if content == "/":
            path.mkdir()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            path.write_text(content)
        with pytest.raises(ConfigError) as info:
            read_config_file(path, label=f"--config {name}", holds="fields")
        message = str(info.value)
        assert message.startswith(f"--config {name}: ") and needles[name] in message and "\n" not in message
