"""A new loss: cross-entropy against weak labels sharpened by a temperature, in 15 lines.

    python examples/new_loss.py [--weak minilm-l3 --strong minilm-l6]

Its fields are its typed parameters: validated, recorded in results and stage identities, sweepable.
"""

from dataclasses import dataclass

import torch
from _common import common_config, parse_args

import w2slab


@w2slab.register_loss("sharpened_xent", replace=True)
@dataclass(frozen=True)
class SharpenedXent(w2slab.Loss):
    """Cross-entropy against the weak labels raised to 1/temperature and renormalised."""

    temperature: float = 0.5

    def per_example(self, logits, labels, step_frac):
        target = labels.clamp_min(1e-6) ** (1.0 / self.temperature)
        target = target / target.sum(-1, keepdim=True)
        return -(target * torch.log_softmax(logits, -1)).sum(-1)  # [B]; the base class averages (with weights)


if __name__ == "__main__":
    args = parse_args(__doc__)
    config = w2slab.ExperimentConfig(**common_config(args),
                                     losses=["xent", {"name": "sharpened_xent", "temperature": 0.5}])
    result = w2slab.run(config, w2slab.RuntimeConfig(run_root=args.run_root, echo=lambda *a, **k: None))
    for label, r in result.summary.results.items():
        print(f"{label:32s} student {r.student_accuracy:.3f}  weak {r.weak_accuracy:.3f}  "
              f"ceiling {r.ceiling_accuracy:.3f}  PGR {r.pgr:.2f}")
