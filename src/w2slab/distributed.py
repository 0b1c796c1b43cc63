"""Everything that depends on being one of several processes (``accelerate launch``), in one place.

Under ``accelerate launch`` every rank trains each stage (DDP/FSDP); only the main rank writes
stage folders and experiment results. Prediction and training use the same device, accelerate's.
"""

from __future__ import annotations

import os

import torch


def distributed_state():
    """accelerate's process state when launched on several processes, else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())  # gloo on a CPU machine, whatever the launcher guessed


def is_main_process() -> bool:
    state = distributed_state()
    return state is None or state.is_main_process


def wait_for_everyone() -> None:
    state = distributed_state()
    if state is not None:
        state.wait_for_everyone()


def device() -> torch.device:
    """The device this process computes on: its own GPU under accelerate launch, else cuda:0 or the CPU."""
    state = distributed_state()
    if state is not None:
        return state.device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
