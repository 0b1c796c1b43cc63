"""A new dataset: registered once, then a name like any other (here generated in code, so it needs no files).

    python examples/new_dataset.py [--weak minilm-l3 --strong minilm-l6]

A ``DatasetSpec`` pairs a reader of the raw records (offline files under the data root, or none when bundled)
with a formatter that turns one record into ``{text, label}`` rows; the Hub path (``hub_id``) shares the
formatter. The label here: does the sentence mention more fruit than vegetables?
"""

import random

from _common import common_config, parse_args

import w2slab

FRUIT = ["apple", "pear", "plum", "fig", "grape", "peach", "lemon", "mango"]
VEG = ["leek", "kale", "bean", "pea", "onion", "carrot", "beet", "radish"]


def read_market(folder, split):
    """1,600 sentences of market stalls; seeded, so every call gives the same records."""
    rng = random.Random(0)
    records = []
    for _ in range(1600):
        fruit, veg = rng.randint(0, 4), rng.randint(0, 4)
        if fruit == veg:
            fruit += 1
        words = rng.sample(FRUIT * 2, fruit) + rng.sample(VEG * 2, veg)
        rng.shuffle(words)
        records.append({"sentence": "the stall sells " + " and ".join(words), "more_fruit": int(fruit > veg)})
    return records


def format_market(record, rng=None):
    return [{"text": record["sentence"], "label": record["more_fruit"]}]


w2slab.register_dataset(w2slab.DatasetSpec(
    name="market_stalls", hub_id=None, hub_splits=None, folder="", reader=read_market, local_splits=("all",),
    required_files=(), formatter=format_market, description="market stalls: more fruit than vegetables?",
    bundled=True), replace=True)


if __name__ == "__main__":
    args = parse_args(__doc__, dataset="market_stalls")
    result = w2slab.run(w2slab.ExperimentConfig(**common_config(args), losses=["xent"]),
                        w2slab.RuntimeConfig(run_root=args.run_root, echo=lambda *a, **k: None))
    r = result.summary.first
    print(f"market_stalls: weak {r.weak_accuracy:.3f}  student {r.student_accuracy:.3f}  "
          f"ceiling {r.ceiling_accuracy:.3f}  notes: {'; '.join(result.summary.notes)}")
