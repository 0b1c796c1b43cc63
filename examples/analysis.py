"""Reading results with pandas: every finished result under a run root as one DataFrame.

    python examples/analysis.py [--run-root runs/examples]     # after examples/grid_sweep.py

One row per student result; the config's fields are columns (``strong_train.lr``, ``n_train``, ...), so a
grid's axes group directly. Seeds of one setting share a ``config_id``.
"""

import argparse

import w2slab

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-root", default="runs/examples")
    df = w2slab.load_results(parser.parse_args().run_root)
    table = (df.groupby(["student", "strong_train.lr"])
               .agg(seeds=("seed", "nunique"), accuracy=("student_accuracy", "mean"), weak=("weak_accuracy", "mean"),
                    ceiling=("ceiling_accuracy", "mean"))
               .reset_index())
    print(table.to_string(index=False, float_format="%.3f"))
    best = table.loc[table.accuracy.idxmax()]
    print(f"best student: {best['student']} at strong lr {best['strong_train.lr']:g} ({best['accuracy']:.3f})")
