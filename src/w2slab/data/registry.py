"""The registered datasets: where each lives offline and on the Hub, and how it is formatted."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from w2slab.data import formatters as fmt
from w2slab.data import images as im
from w2slab.data import readers as rd
from w2slab.data import vectors as vec
from w2slab.data.root import try_data_root
from w2slab.registry import Registry

Reader = Callable[[Path, str], list[dict]]


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: Hub id + splits, offline folder + reader, and the shared formatter.

    ``local_splits`` is ``("train", "test")`` when both pools exist offline, or ``("all",)`` when only
    one labelled split exists and the loader must carve train/test from it (and say so in the notes).
    """

    name: str
    hub_id: str | None
    hub_splits: tuple[str, str] | None  # (train pool split, test pool split) on the Hub
    folder: str  # sub-folder of the data root
    reader: Reader
    local_splits: tuple[str, ...]
    required_files: tuple[str, ...]  # relative to folder; all must exist for local availability
    formatter: fmt.Formatter
    local_notes: tuple[str, ...] = ()
    description: str = ""
    # K: the number of classes (labels 0..K-1), None where the data says it (an ImageFolder's class folders)
    num_classes: int | None = 2
    class_names: tuple[str, ...] | None = None
    modality: str = "text"
    bundled: bool = False  # ships with a library (scikit-learn's digits): no data root, always local
    # what identifies the offline files, where hashing them all is too slow (ImageNet): folder -> digest
    fingerprint: Callable[[Path], str] | None = None
    # the class names, read from the offline folder where the data defines them (ImageNet's wnid folders)
    classes_of: Callable[[Path], list[str]] | None = None

    @property
    def carved_locally(self) -> bool:
        """True when the offline files hold a single split that the loader splits itself."""
        return self.local_splits == (rd.ALL,)


_AMAZON_FILES = tuple(f"{d}.{p}.review" for d in rd.AMAZON_DOMAINS for p in ("positive", "negative"))

_SPECS = (
    DatasetSpec(
        name="sciq",
        hub_id="allenai/sciq",
        hub_splits=("train", "test"),
        folder="sciq",
        reader=rd.read_sciq,
        local_splits=("train", "test"),
        required_files=("SciQ.zip",),
        formatter=fmt.format_sciq,
        description="science QA; correct answer vs random distractor",
    ),
    DatasetSpec(
        name="boolq",
        hub_id="google/boolq",
        hub_splits=("train", "validation"),
        folder="boolq",
        reader=rd.read_boolq,
        local_splits=("train", "test"),
        required_files=("derived/train.jsonl", "derived/validation.jsonl"),
        formatter=fmt.format_boolq,
        local_notes=("boolq: test pool is the BoolQ validation split (as in the OpenAI recipe)",),
        description="yes/no questions about a passage",
    ),
    DatasetSpec(
        name="anthropic_hh",
        hub_id="Anthropic/hh-rlhf",
        hub_splits=("train", "test"),
        folder="anthropic_hh",
        reader=rd.read_anthropic_hh,
        local_splits=(rd.ALL,),
        required_files=rd.HH_FILES,
        formatter=fmt.format_anthropic_hh,
        local_notes=("anthropic_hh: only the Hub test split (8552 rows, 4 subsets) exists offline",),
        description="preference pairs for a Bradley-Terry reward model (chosen vs rejected)",
    ),
    DatasetSpec(
        name="cosmos_qa",
        hub_id="allenai/cosmos_qa",
        hub_splits=("train", "validation"),
        folder="cosmos_qa",
        reader=rd.read_cosmos_qa,
        local_splits=(rd.ALL,),
        required_files=("valid.csv",),
        formatter=fmt.format_cosmos_qa,
        local_notes=("cosmos_qa: only the Hub validation split (2985 rows) exists offline",),
        description="commonsense reading comprehension; true answer vs other candidate",
    ),
    DatasetSpec(
        name="piqa",
        hub_id="ybisk/piqa",
        hub_splits=("train", "validation"),
        folder="piqa",
        reader=rd.read_piqa,
        local_splits=(rd.ALL,),
        required_files=("TEAM_dev.jsonl", "TEAM_dev-labels.lst"),
        formatter=fmt.format_piqa,
        local_notes=("piqa: only the Hub validation split (1838 rows) exists offline",),
        description="physical commonsense; goal with the right solution vs the other one",
    ),
    DatasetSpec(
        name="social_i_qa",
        hub_id="allenai/social_i_qa",
        hub_splits=("train", "validation"),
        folder="social_i_qa",
        reader=rd.read_social_i_qa,
        local_splits=(rd.ALL,),
        required_files=("TEAM_dev.jsonl", "TEAM_dev-labels.lst"),
        formatter=fmt.format_social_i_qa,
        local_notes=("social_i_qa: only the Hub validation split (1954 rows) exists offline",),
        description="social commonsense QA; correct answer vs random other answer",
    ),
    DatasetSpec(
        name="quail",
        hub_id="textmachinelab/quail",
        hub_splits=("train", "validation"),
        folder="quail",
        reader=rd.read_quail,
        local_splits=("train", "test"),
        required_files=("quail_1.3_dev.xml",),
        formatter=fmt.format_quail,
        local_notes=(
            f"quail: only the Hub validation split (v1.3 dev: 120 passages, 2164 questions) exists offline; "
            f"train/test pools are {rd.QUAIL_TRAIN_FRACTION:.0%}/{1 - rd.QUAIL_TRAIN_FRACTION:.0%} of its passages, "
            "chosen by a hash of each passage id (fixed, seed-independent), so no test passage is seen in training; "
            "the challenge split is not used",
        ),
        description="reading comprehension of long passages; correct answer vs random other answer",
    ),
    DatasetSpec(
        name="dream",
        hub_id="dream",
        hub_splits=("train", "test"),
        folder="dream",
        reader=rd.read_dream,
        local_splits=("train", "test"),
        required_files=("train.json", "test.json"),
        formatter=fmt.format_dream,
        local_notes=("dream: train pool is the train split (6116 questions), test pool the test split (2041); the "
                     "dev split is not used",),
        description="dialogue reading comprehension; correct choice vs random other choice",
    ),
    DatasetSpec(
        name="amazon_polarity",
        hub_id="fancyzhx/amazon_polarity",
        hub_splits=("train", "test"),
        folder="amazon_multidomain",
        reader=rd.read_amazon_multidomain,
        local_splits=(rd.ALL,),
        required_files=_AMAZON_FILES,
        formatter=fmt.format_amazon_polarity,
        local_notes=(
            (
                "amazon_polarity is not available offline; using amazon_multidomain (Blitzer et al. 2007) "
                "as the local stand-in"
            ),
        ),
        description="Amazon review polarity",
    ),
    DatasetSpec(
        name="amazon_multidomain",
        hub_id=None,
        hub_splits=None,
        folder="amazon_multidomain",
        reader=rd.read_amazon_multidomain,
        local_splits=(rd.ALL,),
        required_files=_AMAZON_FILES,
        formatter=fmt.format_amazon_polarity,
        description="Blitzer et al. 2007 Amazon reviews (4 domains), positive vs negative",
    ),
    DatasetSpec(
        name="imdb",
        hub_id="stanfordnlp/imdb",
        hub_splits=("train", "test"),
        folder="imdb",
        reader=rd.read_imdb,
        local_splits=("train", "test"),
        required_files=("aclImdb_train.jsonl.gz", "aclImdb_test.jsonl.gz"),
        formatter=fmt.format_imdb,
        description="movie review sentiment",
    ),
    DatasetSpec(
        name="sst2",
        hub_id="stanfordnlp/sst2",
        hub_splits=("train", "validation"),
        folder="sst2",
        reader=rd.read_sst2,
        local_splits=("train", "test"),
        required_files=("glue_train_part.tsv", "glue_train_heldout.tsv", "glue_validation.tsv"),
        formatter=fmt.format_sst2,
        local_notes=("sst2: test pool is the GLUE validation split (GLUE test is unlabelled)",),
        description="sentence sentiment (GLUE SST-2)",
    ),
    DatasetSpec(
        name="sst2_sentences",
        hub_id="SetFit/sst2",  # the same sentence-level splits (train 6,920 / validation 872 / test 1,821)
        hub_splits=("train", "test"),
        folder="sst2",
        reader=rd.read_sst2_sentences,
        local_splits=("train", "test"),
        required_files=("stsa.binary.train", "stsa.binary.dev", "stsa.binary.test"),
        formatter=fmt.format_imdb,
        local_notes=("sst2_sentences: train pool is stsa.binary train + dev (7,792 sentences), test pool its "
                     "test split (1,821)",),
        description="sentence sentiment (sentence-level SST-2: train and test both whole sentences)",
    ),
    DatasetSpec(
        name="amazon_fine_foods",
        hub_id=None,
        hub_splits=None,
        folder="amazon_fine_foods",
        reader=rd.read_amazon_fine_foods,
        local_splits=("train", "test"),
        required_files=("fine_foods_training_data.jsonl", "fine_foods_testing_data.jsonl"),
        formatter=fmt.format_amazon_fine_foods,
        description="Amazon fine-food reviews, 5 stars vs 1-4 stars (offline only)",
    ),
)


def _imagenet_classes(folder: Path) -> list[str]:
    """ImageNet's classes: the wnid folders of its train split (the val split must use the same labels)."""
    return im.image_folder_classes(folder / "train")


def _read_imagenet(folder: Path, split: str) -> list[dict]:
    """ImageNet laid out as torchvision's ``ImageFolder``: ``train/<wnid>/*.JPEG`` and ``val/<wnid>/*.JPEG``."""
    return im.read_image_folder(folder / ("train" if split == "train" else "val"), _imagenet_classes(folder))


_IMAGE_SPECS = (
    DatasetSpec(
        name="fashion_mnist",
        hub_id="zalando-datasets/fashion_mnist",
        hub_splits=("train", "test"),
        folder="fashion_mnist",
        reader=im.read_fashion_mnist,
        local_splits=("train", "test"),
        required_files=tuple(f for pair in im.FASHION_MNIST_FILES.values() for f in pair),
        formatter=im.format_image,
        description="Fashion-MNIST, 10 classes of 28x28 grey clothing images (images)",
        num_classes=10,
        class_names=im.FASHION_MNIST_CLASSES,
        modality="image",
    ),
    DatasetSpec(
        name="digits",
        hub_id=None,
        hub_splits=None,
        folder="",
        reader=im.read_digits,
        local_splits=(rd.ALL,),
        required_files=(),
        formatter=im.format_image,
        description="scikit-learn's bundled 8x8 digits, 10 classes, 1,797 images (images; fast tests)",
        num_classes=10,
        class_names=tuple(str(d) for d in range(10)),
        modality="image",
        bundled=True,
    ),
    DatasetSpec(
        name="imagenet",
        hub_id=None,  # gated on the Hub: give the ImageFolder copy under the data root
        hub_splits=None,
        folder="imagenet",
        reader=_read_imagenet,
        local_splits=("train", "test"),
        required_files=("train", "val"),
        formatter=im.format_image,
        local_notes=("imagenet: test pool is the ILSVRC-2012 validation split (as in the reference setting)",),
        description="ImageNet-1k as an ImageFolder (imagenet/train/<wnid>/, imagenet/val/<wnid>/) under the data "
                    "root (images)",
        num_classes=None,
        modality="image",
        fingerprint=im.listing_digest,
        classes_of=_imagenet_classes,
    ),
)

_VECTOR_SPECS = (
    DatasetSpec(
        name="gaussian_w2s",
        hub_id=None,
        hub_splits=None,
        folder="",
        reader=vec.read_gaussian_w2s,
        local_splits=(rd.ALL,),
        required_files=(),
        formatter=vec.format_vector,
        description=f"planted Gaussian task with a known PGR ({vec.GAUSSIAN_W2S.theory()['pgr']:.3f}): weak "
                    f"{vec.GAUSSIAN_W2S.weak_model}, strong {vec.GAUSSIAN_W2S.strong_model} (vectors)",
        modality="vector",
        bundled=True,
        fingerprint=vec.gaussian_w2s_fingerprint,
    ),
)

DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register_dataset(spec: DatasetSpec, *, replace: bool = False) -> DatasetSpec:
    """Add a dataset: its offline reader, Hub id and formatter travel together in one spec."""
    return DATASETS.register(spec.name, spec, replace=replace)


#: ``<task>_choices``: each multiple-choice dataset with its answer choices scored as a preference pair (the correct
#: answer against one other candidate) instead of binarised; same files, Hub id and splits
def _as_choices(spec: DatasetSpec) -> DatasetSpec:
    name = f"{spec.name}_choices"
    return dataclasses.replace(
        spec, name=name, formatter=fmt.CHOICE_FORMATTERS[spec.name],
        local_notes=tuple(note.replace(f"{spec.name}:", f"{name}:", 1) for note in spec.local_notes),
        description=f"{spec.description.split(';')[0]}; the correct answer against another, as a scored pair")


_CHOICE_SPECS = tuple(_as_choices(spec) for spec in _SPECS if spec.name in fmt.CHOICE_FORMATTERS)

for _spec in (*_SPECS, *_CHOICE_SPECS, *_IMAGE_SPECS, *_VECTOR_SPECS):
    register_dataset(_spec)


def list_datasets() -> list[DatasetSpec]:
    """All registered datasets, in registration order."""
    return DATASETS.values()


def dataset_available_locally(name: str, data_root: str | Path | None) -> bool:
    """True when ``name`` is registered and all its raw files exist under the data root."""
    spec = DATASETS.find(name)
    if spec is not None and spec.bundled:
        return True
    root = try_data_root(data_root)
    if spec is None or root is None:
        return False
    return all((root / spec.folder / f).exists() for f in spec.required_files)
