"""Run a sweep file and die like a SIGKILL at a chosen point (used by the crash tests).

    python tests/helpers/crash_sweep.py SWEEP_FILE RUN_ROOT DATA_ROOT [train NAME STEP | cleanup KIND | publish KIND]

- ``train NAME STEP``: inside the training called NAME, right after step STEP and its checkpoint (a trainer
  callback registered through ``RuntimeConfig.callbacks``, which runs after the checkpoint callback);
- ``cleanup KIND``: while a finished stage of KIND removes its checkpoints, after the pointer is gone;
- ``publish KIND``: while a finished stage of KIND is renamed into place, after ``DONE`` was written.

``os._exit`` skips every ``finally`` and clean-up, as a kill would. Without a crash point the sweep runs
to the end. The data root may be ``-`` (none: the sweep file names local data files).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from w2slab import atomic
from w2slab.api import sweep
from w2slab.config import RuntimeConfig
from w2slab.pipeline.store import StageStore
from w2slab.pipeline.sweep import load_sweep_file, parse_sweep
from w2slab.train.trainer import CHECKPOINT_POINTER, TrainerCallback

KILLED = 137


class CrashAt(TrainerCallback):
    observes_only = True  # it kills the process; a training it lets finish is unchanged (not in the identity)

    def __init__(self, name: str, step: int):
        self.name, self.step = name, step

    def on_step_end(self, trainer, state, row) -> None:
        if trainer.name == self.name and state.step == self.step:
            os._exit(KILLED)


def crash_during_cleanup(kind: str) -> None:
    original = StageStore.remove_checkpoints

    def remove_checkpoints(work: Path) -> None:
        if work.parent.name == kind and any(work.glob("checkpoint-*")):
            (work / CHECKPOINT_POINTER).unlink(missing_ok=True)  # the pointer goes first, then the kill
            os._exit(KILLED)
        original(work)

    StageStore.remove_checkpoints = staticmethod(remove_checkpoints)


def crash_during_publish(kind: str) -> None:
    original = atomic.publish_dir

    def publish_dir(staging: Path, final: Path) -> Path:
        if final.parent.name == kind and final.parent.parent.name == "stages":
            os._exit(KILLED)
        return original(staging, final)

    atomic.publish_dir = publish_dir


def main(argv: list[str]) -> int:
    sweep_file, run_root, data_root, *crash = argv
    callbacks = ()
    if crash and crash[0] == "train":
        callbacks = (CrashAt(crash[1], int(crash[2])),)
    elif crash and crash[0] == "cleanup":
        crash_during_cleanup(crash[1])
    elif crash and crash[0] == "publish":
        crash_during_publish(crash[1])
    runtime = RuntimeConfig(run_root=run_root, data_root=None if data_root == "-" else data_root, checkpoint_every=1,
                            checkpoint_seconds=0, callbacks=callbacks, echo=lambda *_: None)
    sweep(parse_sweep(load_sweep_file(sweep_file)).configs, runtime)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
