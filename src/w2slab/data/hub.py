"""Reading raw records from the Hugging Face Hub (``datasets`` is an optional dependency)."""

from __future__ import annotations

from w2slab.errors import DataError


def load_hub_records(hub_id: str, split: str, revision: str | None = None) -> list[dict]:
    """Raw records of one Hub split at a pinned commit, with the Hub's own field names (our formatters expect them)."""
    try:
        import datasets  # optional and slow to import; only needed for source="hub"
    except ImportError:
        raise DataError(
            f"loading {hub_id} from the Hub needs the 'datasets' package; pip install datasets "
            "(or set W2SLAB_DATA_ROOT / --data-root to use the offline files)"
        ) from None
    try:
        ds = datasets.load_dataset(hub_id, split=split, revision=revision)
    except Exception as exc:  # noqa: BLE001 - network, auth, bad split: all user-fixable, one line
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"could not load {hub_id} split {split!r} from the Hub ({first_line}); check the network "
            "or set W2SLAB_DATA_ROOT / --data-root to use the offline files"
        ) from None
    return [dict(rec) for rec in ds]
