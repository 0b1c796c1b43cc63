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

    sweep = parse_sweep(load_sweep_file(Path(__file__).resolve().parent.parent / "sweeps" / "ladder_probe.yaml"))
    assert len({(c.weak, c.strong) for c in sweep.configs}) == 10
    assert len({c.dataset for c in sweep.configs}) == 5 and {c.seed for c in sweep.configs} == {0, 1, 2}
    assert all(c.weak_train.mode == c.strong_train.mode == "probe" for c in sweep.configs)
