"""Data layer: raw offline/Hub datasets -> formatted rows (text or images, K classes) -> balanced, disjoint splits.

Pipeline: a reader yields raw records with the Hub's field names, a formatter (shared by the offline
and Hub paths) turns each into ``{"id", "text", "label"}`` rows (:func:`load_task` -> :class:`TaskData`),
and :func:`make_splits` samples weak_train / transfer / test (:class:`Splits`).
"""

from w2slab.data.registry import DATASETS, DatasetSpec, dataset_available_locally, list_datasets, register_dataset
from w2slab.data.root import resolve_data_root
from w2slab.data.sources import check_dataset_name, dataset_modality, dataset_num_classes, load_task
from w2slab.data.splits import make_splits
from w2slab.data.types import Splits, TaskData
from w2slab.data.validate import validate_rows

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "Splits",
    "check_dataset_name",
    "dataset_modality",
    "dataset_num_classes",
    "TaskData",
    "dataset_available_locally",
    "list_datasets",
    "load_task",
    "make_splits",
    "register_dataset",
    "resolve_data_root",
    "validate_rows",
]
