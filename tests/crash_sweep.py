"""Run a sweep file and die like a SIGKILL at a chosen training step (used by test_sweep's crash test).

    python tests/crash_sweep.py SWEEP_FILE RUN_ROOT DATA_ROOT [TRAINING_NAME STEP]

The crash is a trainer callback registered through ``RuntimeConfig.callbacks``: it runs after the
built-in checkpoint callback, so the checkpoint of that step exists, and ``os._exit`` skips every
``finally`` and clean-up, as a kill would. Without TRAINING_NAME and STEP the sweep runs to the end.
"""

from __future__ import annotations

import os
import sys

from w2slab.api import sweep
from w2slab.config import RuntimeConfig
from w2slab.pipeline.sweep import load_sweep_file, parse_sweep
from w2slab.train.trainer import TrainerCallback


class CrashAt(TrainerCallback):
    def __init__(self, name: str, step: int):
        self.name, self.step = name, step

    def on_step_end(self, trainer, state, row) -> None:
        if trainer.name == self.name and state.step == self.step:
            os._exit(137)


def main(argv: list[str]) -> int:
    sweep_file, run_root, data_root, *crash = argv
    callbacks = (CrashAt(crash[0], int(crash[1])),) if crash else ()
    runtime = RuntimeConfig(run_root=run_root, data_root=data_root, checkpoint_every=1, callbacks=callbacks,
                            echo=lambda *_: None)
    sweep(parse_sweep(load_sweep_file(sweep_file)).configs, runtime)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
