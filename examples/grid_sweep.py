"""A grid sweep from Python: the sweep file's mapping, expanded, planned, run as one deduplicated stage graph.

    python examples/grid_sweep.py [--weak minilm-l3 --strong minilm-l6]

The same mapping in a YAML file runs with ``w2s sweep grid.yaml`` (and ``--dry-run`` prints the plan).
"""

from _common import common_config, parse_args

import w2slab
from w2slab.pipeline.sweep import parse_sweep

if __name__ == "__main__":
    args = parse_args(__doc__)
    base = common_config(args)
    grid = {**{k: v for k, v in base.items() if k not in ("dataset", "weak", "strong")},
            "datasets": [base["dataset"]], "weak": [base["weak"]], "strong": [base["strong"]],
            "seeds": [0, 1], "strong.lr": [1e-3, 1e-2], "losses": ["xent"],
            "methods": ["none", {"name": "conf_filter", "drop": [0.1, 0.3]}]}
    configs = parse_sweep(grid).configs
    runtime = w2slab.RuntimeConfig(run_root=args.run_root, echo=lambda *a, **k: None)
    plan = w2slab.sweep(configs, runtime, plan_only=True).plan
    print(plan.summary())
    result = w2slab.sweep(configs, runtime)
    print(f"{len(result.results)} student results in {result.seconds:.0f} s under {result.run_root}")
