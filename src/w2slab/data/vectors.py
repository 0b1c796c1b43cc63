"""Vector rows and the synthetic Gaussian weak-to-strong task whose PGR theory gives in closed form.

A vector row is ``{"id", "vector": str, "label"}``, the vector as the base64 of its float32 bytes (a string, so
that rows of every modality deduplicate, split and serialise by the same code). Models of vectors are linear
heads over some of the coordinates (``coords:A-B``, :mod:`w2slab.models.vectors`).

**The task** (``gaussian_w2s``). ``x ~ N(0, I_d)``; the label is ``y = [w.x > 0]`` with
``w = cos(theta) e_0 + sin(theta) e_h`` (``h = d/2``, ``d`` = 4 by default): the first half of the coordinates
holds the part
``cos(theta)`` of the signal. Each row also carries the weak model's view ``v = x_{0..h-1} + sigma z`` with
``z ~ N(0, I_h)``: the first half, seen through independent noise. The vector is ``[x, v]`` (``d + h`` floats):
the strong model reads ``coords:0-{d-1}`` (all of x: ``coords:0-3``), the weak one ``coords:{d}-{d+h-1}`` (v:
``coords:4-5``).

**What theory says** (population limit, logistic models; Brillinger 1982, Li & Duan 1989: for Gaussian inputs,
a generalised linear fit of labels that depend on ``x`` through one direction ``u`` plus independent noise
points along ``u``):

- the ceiling recovers ``w``: accuracy 1;
- the weak model, fit on ``v``, points along the first half of ``w`` (``v`` is Gaussian and the label depends on
  it through ``e_0.v`` plus independent noise); its predictions depend on ``e_0.x + sigma e_0.z``, at angle
  ``arccos(cos(theta) / sqrt(1 + sigma^2))`` from ``w``: accuracy ``1 - that / pi``;
- the student sees ``x``, not ``z``: the weak labels depend on ``x`` through ``e_0.x`` alone (the rest is noise
  independent of ``x``), so the student points along ``e_0``, at angle ``theta`` from ``w``: accuracy
  ``1 - theta / pi``. It undoes the weak model's noise but not its blind spot.

So PGR = ``(acc_student - acc_weak) / (1 - acc_weak)`` is known: about 0.587 at the defaults (theta 20 degrees,
sigma 1). ``sigma`` 0 gives PGR 0 (the weak errors are all in what the student can imitate) and ``theta`` 0 gives
PGR 1 (all of them are noise). Finite samples pull the measured accuracies a little below these limits: on 5,000
weak-train and 5,000 transfer rows the ceiling reaches .99, not 1, which lifts the measured PGR by about .01
(README "A task with a known answer"). Few dimensions (4) keep that estimation error small.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from w2slab.errors import DataError


def encode_vector(values: np.ndarray) -> str:
    """A vector as a row's string (base64 of its float32 bytes)."""
    return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode("ascii")


def decode_vector(text: str) -> np.ndarray:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise DataError(f"a vector row's value {text[:20]!r}... is not base64 of float32s; write vectors with "
                        "w2slab.data.vectors.encode_vector") from None
    if len(raw) % 4:
        raise DataError(f"a vector row holds {len(raw)} bytes, not a whole number of float32s")
    return np.frombuffer(raw, dtype="<f4")


@dataclass(frozen=True)
class GaussianW2S:
    """The planted task's parameters (module docstring) and what theory says of them."""

    dim: int = 4
    theta_degrees: float = 20.0
    sigma: float = 1.0
    pool: int = 40_000  # rows generated (train pool and test pool are carved from them)

    @property
    def half(self) -> int:
        return self.dim // 2

    @property
    def weak_model(self) -> str:
        return f"coords:{self.dim}-{self.dim + self.half - 1}"

    @property
    def strong_model(self) -> str:
        return f"coords:0-{self.dim - 1}"

    def theory(self) -> dict[str, float]:
        """Population accuracies of weak, student (xent on the weak labels) and ceiling, and the PGR they give."""
        theta = math.radians(self.theta_degrees)
        weak = 1.0 - math.acos(math.cos(theta) / math.sqrt(1.0 + self.sigma ** 2)) / math.pi
        student = 1.0 - theta / math.pi
        ceiling = 1.0
        return {"weak": weak, "student": student, "ceiling": ceiling, "pgr": (student - weak) / (ceiling - weak)}

    def sample(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` vectors ``[x, v]`` and their labels."""
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n, self.dim))
        theta = math.radians(self.theta_degrees)
        w = np.zeros(self.dim)
        w[0], w[self.half] = math.cos(theta), math.sin(theta)
        labels = (x @ w > 0).astype(int)
        view = x[:, :self.half] + self.sigma * rng.standard_normal((n, self.half))
        return np.concatenate([x, view], axis=1).astype(np.float32), labels


GAUSSIAN_W2S = GaussianW2S()
#: The generator's seed: the pool is one fixed sample (the experiment's seeds split it, as for any dataset).
POOL_SEED = 20231214


def read_gaussian_w2s(folder: Path, split: str) -> list[dict]:
    """The pool of the planted task (generated; ``folder`` is unused)."""
    vectors, labels = GAUSSIAN_W2S.sample(GAUSSIAN_W2S.pool, POOL_SEED)
    return [{"vector": encode_vector(v), "label": int(y)} for v, y in zip(vectors, labels, strict=True)]


def gaussian_w2s_fingerprint(folder: Path) -> str:
    """What identifies the generated pool: the task's parameters, its seed and numpy's version (the generator's
    stream is numpy's)."""
    import dataclasses
    import json

    return json.dumps({**dataclasses.asdict(GAUSSIAN_W2S), "seed": POOL_SEED, "numpy": np.__version__},
                      sort_keys=True)


def format_vector(ex: dict, rng) -> list[dict]:
    return [{"vector": ex["vector"], "label": int(ex["label"])}]
