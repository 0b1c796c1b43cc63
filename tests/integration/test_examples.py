"""Every script in examples/ runs, on tiny models, and prints what it promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def tiny_run(tiny_pair, tmp_path_factory):
    root = tmp_path_factory.mktemp("examples") / "runs"

    def run(script: str, *extra: str, models: bool = True) -> str:
        args = [sys.executable, str(EXAMPLES / script), "--run-root", str(root), *extra]
        if models:
            args += ["--weak", tiny_pair.weak, "--strong", tiny_pair.strong, "--n-train", "96", "--n-test", "48",
                     "--max-ctx", "16"]
        done = subprocess.run(args, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"})
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    run.data = tiny_pair.data
    return run


def test_every_example_is_tested():
    tested = {"new_loss.py", "new_method.py", "new_dataset.py", "grid_sweep.py", "analysis.py"}
    assert {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")} == tested


def test_new_loss(tiny_run):
    out = tiny_run("new_loss.py", "--dataset", tiny_run.data)
    assert "xent " in out and "sharpened_xent" in out and "PGR" in out


def test_new_method_runs_and_drops_the_least_confident_share_per_class(tiny_run):
    out = tiny_run("new_method.py", "--dataset", tiny_run.data)
    assert "xent+drop_unsure[share=0.3]" in out
    # in a process of its own: importing the example here would register its method in every later test's registry
    code = (f"import sys; sys.path.insert(0, {str(EXAMPLES)!r})\nimport numpy as np\n"
            "from types import SimpleNamespace\nfrom new_method import DropUnsure\n"
            "from w2slab.methods import SoftLabels\n"
            "probs = np.array([[.9, .1], [.6, .4], [.8, .2], [.7, .3], [.2, .8], [.45, .55], [.1, .9], [.3, .7]])\n"
            "labels = DropUnsure(share=0.25).transform(SoftLabels.of(probs), SimpleNamespace(num_classes=2))\n"
            "print(labels.weights.astype(int).tolist())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-1000:]
    assert done.stdout.strip() == "[1, 0, 1, 1, 1, 0, 1, 1]"  # the least sure of each class's four


def test_new_dataset(tiny_run):
    out = tiny_run("new_dataset.py")
    assert out.startswith("market_stalls: weak") and "ceiling" in out


def test_grid_sweep_then_analysis(tiny_run):
    out = tiny_run("grid_sweep.py", "--dataset", tiny_run.data)
    assert "4 experiment(s), 12 student(s)" in out and "12 student results" in out
    table = tiny_run("analysis.py", models=False)
    assert "strong_train.lr" in table and "best student:" in table
    assert len([line for line in table.splitlines() if line.strip().startswith("xent")]) == 6  # 3 students x 2 lrs
