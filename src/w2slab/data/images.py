"""Images as rows: one string per image, and the readers of the image formats we load.

A row's ``image`` is a string, so that image rows deduplicate, split, serialise to JSON and key the per-example
caches exactly as text rows do:

- ``u8:HxWxC:<base64>``: the raw uint8 pixels of a small image, inline (Fashion-MNIST, digits, Hub images).
  The string *is* the content: identical images are one example, wherever they come from.
- ``file:<absolute path>``: an image file (an ``ImageFolder``, ImageNet), decoded when a batch needs it.
  Its identity is its path: the files of such folders are assumed not to change (the folder's listing, with sizes,
  is part of the split's identity; see :func:`w2slab.pipeline.graph.dataset_revision`).

Readers return records with the Hub's field names (``image``, ``label``), so the offline files and
``datasets.load_dataset`` share one formatter (:func:`format_image`).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from w2slab.data.readers import require_file
from w2slab.errors import DataError
from w2slab.example_store import FILE_PREFIX

INLINE = "u8:"
FILE = FILE_PREFIX  # "file:"
#: File types an ``ImageFolder`` holds (torchvision's list).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def encode_pixels(pixels: np.ndarray) -> str:
    """``u8:HxWxC:<base64>`` of an HxW (grey) or HxWxC uint8 array."""
    array = np.asarray(pixels)
    if array.dtype != np.uint8:
        raise DataError(f"image pixels must be uint8 (0-255), got {array.dtype}; scale them to 0-255 first")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise DataError(f"an image must be HxW or HxWxC, got shape {array.shape}")
    height, width, channels = array.shape
    return f"{INLINE}{height}x{width}x{channels}:" + base64.b64encode(np.ascontiguousarray(array).tobytes()).decode()


def encode_file(path: str | Path) -> str:
    return FILE + str(Path(path).resolve())


def decode_image(value: str) -> np.ndarray:
    """The HxWxC uint8 pixels of an image string (a file is read with Pillow: RGB, or L for grey files)."""
    if value.startswith(INLINE):
        shape, _, data = value[len(INLINE):].partition(":")
        height, width, channels = (int(v) for v in shape.split("x"))
        return np.frombuffer(base64.b64decode(data), dtype=np.uint8).reshape(height, width, channels)
    if value.startswith(FILE):
        path = value[len(FILE):]
        with open_image(path) as image:
            image = image.convert("L" if image.mode in ("1", "L", "I;16", "I") else "RGB")
            array = np.asarray(image, dtype=np.uint8)
        return array[:, :, None] if array.ndim == 2 else array
    raise DataError(f"not an image string: {value[:40]!r}; images are 'u8:HxWxC:<base64>' or 'file:<path>'")


@contextmanager
def open_image(path: str) -> Iterator:
    """Pillow's ``Image.open`` with its failures as one-line :class:`DataError` naming the file (an unreadable
    file, or one over the decompression-bomb limit, which Pillow refuses to decode)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            yield image
    except Image.DecompressionBombError:
        raise DataError(too_many_pixels(path)) from None
    except OSError as exc:
        raise DataError(f"cannot read image {path} ({exc}); remove or replace the file") from None


def too_many_pixels(path: str, size: tuple[int, int] | None = None) -> str:
    from PIL import Image

    shape = f" is {size[0]}x{size[1]} pixels," if size else ""
    return (f"image {path}{shape} over Pillow's decompression-bomb limit ({2 * Image.MAX_IMAGE_PIXELS:,} pixels) "
            "and will not decode; downscale it or remove it from the folder")


def check_image_files(rows: list[dict]) -> None:
    """Before any stage runs: every image file a split uses opens and is under Pillow's decompression-bomb limit.

    Only the header is read (``Image.open`` is lazy), so this costs a file open per image of the splits, not a
    decode. Without it an oversized image escaped mid-training as Pillow's ``DecompressionBombError``.
    """
    from PIL import Image

    limit = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else None  # where Pillow refuses, not warns
    for row in rows:
        value = row.get("image", "")
        if not value.startswith(FILE):
            continue
        path = value[len(FILE):]
        with open_image(path) as image:
            size = image.size
        if limit is not None and size[0] * size[1] > limit:
            raise DataError(too_many_pixels(path, size))


def format_image(record: dict, rng: object = None) -> list[dict]:
    """Raw image record (an array, a PIL image or a file path, and a label) -> one image row."""
    image = record["image"]
    if isinstance(image, str | Path):
        value = image if str(image).startswith((INLINE, FILE)) else encode_file(image)
    elif hasattr(image, "convert") and hasattr(image, "mode"):  # a PIL image (the Hub's datasets.Image feature)
        value = encode_pixels(np.asarray(image.convert("L" if image.mode in ("1", "L") else "RGB"), dtype=np.uint8))
    else:
        value = encode_pixels(np.asarray(image))
    return [{"image": value, "label": int(record["label"])}]


# --- IDX (MNIST, Fashion-MNIST) -----------------------------------------------------------------------

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzip-compressed): magic ``0 0 <type> <ndim>``, big-endian int32 dims, then data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(require_file(path), "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataError(f"{path.name}: not an IDX file (bad magic number {data[:4].hex()})")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}i", data[4:4 + 4 * ndim])
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    body = data[4 + 4 * ndim:]
    if len(body) != expected:
        raise DataError(f"{path.name}: IDX header says {dims} ({expected} bytes) but holds {len(body)} bytes; "
                        "the file is truncated or damaged")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


FASHION_MNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                       "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")


def read_idx_pair(folder: Path, split: str, files: dict[str, tuple[str, str]]) -> list[dict]:
    """Records ``{"image": HxW uint8, "label"}`` of an images/labels pair of IDX files."""
    images_file, labels_file = files[split]
    images, labels = read_idx(folder / images_file), read_idx(folder / labels_file)
    if len(images) != len(labels):
        raise DataError(f"{images_file} holds {len(images)} images but {labels_file} {len(labels)} labels")
    return [{"image": image, "label": int(label)} for image, label in zip(images, labels, strict=True)]


def read_fashion_mnist(folder: Path, split: str) -> list[dict]:
    return read_idx_pair(folder, split, FASHION_MNIST_FILES)


# --- scikit-learn's bundled digits ------------------------------------------------------------------


def read_digits(folder: Path | None, split: str) -> list[dict]:
    """scikit-learn's 1,797 8x8 digits (values 0-16, scaled to 0-255): bundled with scikit-learn, no download."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return [{"image": image, "label": int(label)} for image, label in zip(pixels, digits.target, strict=True)]


# --- ImageFolder ------------------------------------------------------------------------------------


def image_folder_classes(folder: Path) -> list[str]:
    """The class names of an ``ImageFolder``: its sub-folders, sorted (torchvision's rule: label = position)."""
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def read_image_folder(folder: Path, classes: list[str] | None = None) -> list[dict]:
    """Records ``{"image": path, "label"}`` of ``folder/<class>/**/<image>``, in a fixed (sorted) order.

    ``classes`` fixes the label of each class name (a val/ folder must use its train/ folder's classes).
    """
    classes = classes if classes is not None else image_folder_classes(folder)
    records = []
    for label, name in enumerate(classes):
        sub = folder / name
        if not sub.is_dir():
            continue
        for path in sorted(sub.rglob("*")):
            if is_image_file(path):
                records.append({"image": path, "label": label})
    return records


def listing_digest(folder: Path) -> str:
    """A cheap identity of a folder of image files: relative paths, sizes and modification times (ImageNet is too
    big to hash; new pixels written over a file move its mtime, even at the same size)."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if is_image_file(path):
            stat = path.stat()
            digest.update(f"{path.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]
