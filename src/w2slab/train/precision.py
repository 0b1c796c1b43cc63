"""Precision policy: which dtype computes, which stores, and whether a gradient scaler runs.

Rules, in every mode:
- trainable parameters (full weights, LoRA adapters, heads) and the optimiser state are fp32;
- a *frozen* base may be stored in bf16/fp16 (memory, speed), unless its family says half storage
  overflows (Gemma under fp16: the residual stream must stay fp32);
- compute runs under ``torch.autocast`` in the policy's dtype; losses are computed in fp32;
- fp16 always runs with ``torch.amp.GradScaler``.

We call ``torch.amp`` directly rather than through ``accelerate``'s ``mixed_precision`` because
accelerate 1.15 silently disables fp16 autocast and the scaler on CPU (it falls back to fp32), and
CPU fp16 is exactly what our tests and the stability benchmark need to exercise. ``accelerate``
still owns devices and distribution; this is the same torch.amp API it wraps on GPUs.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def default_device() -> torch.device:
    """The device of this process, the same for training and prediction (see :mod:`w2slab.distributed`)."""
    from w2slab.distributed import device

    return device()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AVX512-BF16 or AMX), as oneDNN reports it.

    Without it, bf16 matmuls are emulated and slower than fp32, so ``auto`` stays fp32 there.
    """
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN, or without the query
        return False


def resolve_precision(precision: str, device: torch.device | None = None) -> str:
    """``auto``: bf16 on GPUs that support it, fp16 on older GPUs; on CPU bf16 where the CPU has native
    bf16 matmuls (accuracy measured against fp32: README "Speed"), else fp32."""
    if precision != "auto":
        return precision
    device = device or default_device()
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_native_bf16() else "fp32"


@dataclass(frozen=True)
class PrecisionPolicy:
    name: str  # fp32 | bf16 | fp16 (resolved)
    device_type: str

    @classmethod
    def resolve(cls, precision: str, device: torch.device | None = None) -> PrecisionPolicy:
        device = device or default_device()
        return cls(resolve_precision(precision, device), device.type)

    @property
    def compute_dtype(self) -> torch.dtype:
        return PRECISION_DTYPES[self.name]

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.compute_dtype)

    def make_scaler(self) -> torch.amp.GradScaler | None:
        return torch.amp.GradScaler(self.device_type) if self.name == "fp16" else None

    def frozen_storage_dtype(self, mode: str, half_storage_ok: bool = True) -> torch.dtype:
        """Storage of the pretrained weights: fp32 when they are trained, else the compute dtype."""
        if mode == "full" or self.name == "fp32" or (self.name == "fp16" and not half_storage_ok):
            return torch.float32
        return self.compute_dtype


def run_modules_in_fp32(model: torch.nn.Module, name_patterns: tuple[str, ...]) -> int:
    """Run every submodule whose name contains a pattern in fp32, outside autocast.

    The documented remedy for families whose activations overflow fp16 (Gemma): their inputs are
    upcast and autocast is switched off inside them. Returns how many modules were wrapped.
    """
    wrapped = 0
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if not name or not any(p in leaf for p in name_patterns) or getattr(module, "_w2s_fp32", False):
            continue
        module.float()
        original = module.forward

        def forward(*args, _original=original, **kwargs):
            device_type = "cuda" if torch.cuda.is_available() else "cpu"
            with torch.autocast(device_type, enabled=False):
                args = tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)
                kwargs = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v
                          for k, v in kwargs.items()}
                return _original(*args, **kwargs)

        module.forward = forward
        module._w2s_fp32 = True
        wrapped += 1
    return wrapped
