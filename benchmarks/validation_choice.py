"""The fixed rule by which a recipe benchmark picks a setting on validation, shared by ``decoder_head.py`` and
``probe_recipe.py``: the setting with the highest pooled validation accuracy, unless the incumbent is within one
standard error of it (a paired difference over the same validation examples, :mod:`w2slab.stats`), so that a
default changes only on evidence."""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping
from pathlib import Path

import numpy as np


def choose(correct: Mapping[Hashable, np.ndarray], incumbent: Hashable) -> dict:
    """``correct[setting]``: 0/1 outcomes of every validation example the setting was judged on, in one order for
    all settings. Returns the pooled accuracies, the best setting, its difference from the incumbent, and the
    choice."""
    from w2slab import stats

    pooled = {key: float(np.mean(values)) for key, values in correct.items()}
    best = max(pooled, key=pooled.get)
    versus = stats.paired_difference([np.asarray(correct[best])], [np.asarray(correct[incumbent])])
    return {"pooled": pooled, "best": best, "difference": versus.value, "se": versus.se,
            "choice": best if versus.value - versus.se > 0 else incumbent}


def write(out: str | Path, name: str, summary: dict) -> None:
    """``<out>/<name>.json`` with every run; the console gets the summary without the runs."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=1))
