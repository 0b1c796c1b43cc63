"""The report of a sweep: summary tables and figures built from the per-experiment records, and the table
``w2s run`` prints (:mod:`.console`).

``write_report`` is the one entry point (used by ``w2s report``); it ends with ``report.html``, one
self-contained page of everything (:mod:`.html`). The submodules hold the pieces:
:mod:`.records` (loading), :mod:`.tables` (aggregation over seeds, CSV/Markdown), :mod:`.plots` (PNGs),
:mod:`.methods` (paired differences between students, diagnostics, their figures). Names are imported on first
use, so the console table does not load matplotlib.
"""

from __future__ import annotations

from pathlib import Path

from w2slab.lazy import lazy_exports

_EXPORTS = {"aggregate": "w2slab.report.tables", "write_tables": "w2slab.report.tables",
            "load_records": "w2slab.report.records", "plot_accuracy_vs_ceiling": "w2slab.report.plots",
            "plot_accuracy_vs_size": "w2slab.report.plots", "plot_pgr_heatmap": "w2slab.report.plots"}

__all__ = ["aggregate", "load_records", "plot_accuracy_vs_ceiling", "plot_accuracy_vs_size", "plot_pgr_heatmap",
           "write_report", "write_tables"]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


def write_report(run_root: Path, out_dir: Path | None = None) -> dict[str, list[Path]]:
    """Load every finished experiment under ``run_root`` and write tables and figures to ``out_dir``.

    ``out_dir`` defaults to ``RUN_ROOT/report``. Seeds are aggregated once and shared by the tables and
    both plot kinds, so every number in a figure is the one printed in the table.
    """
    from w2slab.report.html import write_html
    from w2slab.report.methods import write_method_report
    from w2slab.report.plots import plot_accuracy_vs_ceiling, plot_accuracy_vs_size, plot_pgr_heatmap
    from w2slab.report.records import load_records
    from w2slab.report.tables import aggregate, write_tables

    run_root = Path(run_root)
    out_dir = Path(out_dir) if out_dir is not None else run_root / "report"
    records = load_records(run_root)
    rows = aggregate(records)
    paths = {
        "tables": list(write_tables(rows, out_dir)),
        "accuracy_plots": plot_accuracy_vs_ceiling(records, out_dir, rows=rows),
        "size_plots": plot_accuracy_vs_size(records, out_dir, rows=rows),
        "heatmaps": plot_pgr_heatmap(records, out_dir, rows=rows),
        "methods": write_method_report(records, out_dir),
    }
    written = [path for group in paths.values() for path in group]  # this call's files only, never leftovers
    paths["page"] = [write_html(out_dir, records, f"w2slab report: {run_root.resolve().name}", written=written)]
    return paths
