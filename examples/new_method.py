"""A new W2S method: drop the transfer examples whose weak label is least confident within each class.

    python examples/new_method.py [--weak minilm-l3 --strong minilm-l6]

A ``LabelMethod`` rewrites the transfer set's soft labels and per-example weights in a cached ``relabel`` stage;
it declares what it reads (here only the weak labels), and the leakage guard holds it to that.
"""

from dataclasses import dataclass

import numpy as np
from _common import common_config, parse_args

import w2slab
from w2slab.methods import LabelMethod, SoftLabels


@w2slab.register_method("drop_unsure", replace=True)
@dataclass(frozen=True)
class DropUnsure(LabelMethod):
    """Weight 0 on the `share` least confident weak labels of each predicted class."""

    share: float = 0.2

    def transform(self, labels: SoftLabels, context) -> SoftLabels:
        confidence, predicted = labels.probs.max(-1), labels.probs.argmax(-1)
        weights = labels.weights.copy()
        for k in range(context.num_classes):
            rows = np.flatnonzero(predicted == k)
            weights[rows[np.argsort(confidence[rows])[: int(self.share * len(rows))]]] = 0.0
        return SoftLabels(labels.probs, weights)


if __name__ == "__main__":
    args = parse_args(__doc__)
    config = w2slab.ExperimentConfig(**common_config(args), losses=["xent"],
                                     methods=["none", {"name": "drop_unsure", "share": 0.3}])
    result = w2slab.run(config, w2slab.RuntimeConfig(run_root=args.run_root, echo=lambda *a, **k: None))
    for label, r in result.summary.results.items():
        print(f"{label:32s} student {r.student_accuracy:.3f}  PGR {r.pgr:.2f}")
