"""The per-example outcomes behind a table, kept so the table can be rebuilt without training.

One gzipped JSON line per result, in a fixed order and with a zero mtime, so the same records give the same bytes.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from w2slab.results import ExperimentResult

#: What each kept record holds: enough to rebuild every table (per-example outcomes, the config that names its
#: setting and test set, what it read, its validation outcomes, the students' traces, and the number of classes
#: the gap rule's "weak model at chance" reads: results.no_experiment_reason).
KEPT_FIELDS = ("dataset", "weak", "strong", "student", "method", "seed", "oracle", "weak_accuracy", "ceiling_accuracy",
               "student_accuracy", "pgr", "gap_ci95", "ceiling_over_chance", "ground_truth_labels", "suspect",
               "test_size", "test_correct", "experiment_id", "config", "validation", "trace", "weak_params",
               "strong_params", "num_classes")


def write_records(results: list[ExperimentResult], path: Path, fields: tuple[str, ...] = KEPT_FIELDS) -> None:
    """``results`` to ``path``, byte-stable, each with ``fields`` and its data and weight revisions."""
    kept = [{key: getattr(r, key) for key in fields} | {"resolved": {"revisions": r.resolved.get("revisions", {})}}
            for r in sorted(results, key=lambda r: (r.experiment_id, r.student))]
    text = "".join(json.dumps(record, sort_keys=True, default=str) + "\n" for record in kept)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as handle:
        handle.write(text.encode())


def read_records(path: Path) -> list[ExperimentResult]:
    """The results :func:`write_records` wrote, validated (missing fields take their defaults)."""
    return [ExperimentResult.from_dict(json.loads(line), str(path))
            for line in gzip.decompress(Path(path).read_bytes()).decode().splitlines()]
