"""Report figures: accuracy against the strong ceiling (paper Figure 3 style) and PGR heatmaps.

Figures are built on :class:`matplotlib.figure.Figure` directly and saved with the Agg renderer: no
pyplot, so no global backend switch, no GUI, and nothing left open between calls (sweeps run headless).
Statistics come from :func:`w2slab.report.tables.aggregate`, so every plotted number matches the tables.
Figures show only each (dataset, weak, strong, loss)'s main configuration (its most common config id), so
runs of different configurations never share a line or a cell; a note under the figure counts the runs of
other configurations left out (they are rows of their own in ``summary.md``).
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from w2slab.report.records import main_config_records, nanmean, order_losses, order_models
from w2slab.report.tables import aggregate, summarize
from w2slab.results import ExperimentResult

DPI = 120
#: PGR colour range: below -1 or above 1.5 the colour saturates (the annotation keeps the real value).
PGR_MIN, PGR_MAX = -1.0, 1.5
# Dotted is kept for the weak models' own accuracy lines, so the third loss is dash-dot, not dotted.
LOSS_STYLES = {"xent": "-", "logconf": "--", "product": "-."}
EXTRA_STYLES = [(0, (5, 1, 1, 1, 1, 1)), (0, (8, 2)), (0, (3, 1, 1, 1))]
LOSS_MARKERS = {"xent": "o", "logconf": "s", "product": "^"}
EXTRA_MARKERS = ["D", "v", "P", "X"]


def plot_accuracy_vs_ceiling(records: list[ExperimentResult], out_dir: Path,
                             rows: list[dict] | None = None) -> list[Path]:
    """One ``accuracy_vs_ceiling_<dataset>.png`` per dataset; ``rows`` reuses an existing :func:`aggregate`."""
    rows = aggregate(records) if rows is None else rows
    records, rows, left_out = _main_only(records, rows)
    out_dir = _ensure_dir(out_dir)
    paths = []
    for dataset in sorted({r.dataset for r in records}):
        fig = _accuracy_figure(dataset, [r for r in records if r.dataset == dataset],
                               [row for row in rows if row["dataset"] == dataset])
        _note_left_out(fig, left_out.get(dataset, 0))
        paths.append(_save(fig, out_dir / f"accuracy_vs_ceiling_{_slug(dataset)}.png"))
    return paths


def plot_accuracy_vs_size(records: list[ExperimentResult], out_dir: Path,
                          rows: list[dict] | None = None) -> list[Path]:
    """One ``accuracy_vs_size_<dataset>_<setting>.png`` per dataset and training setting (linear probes, or the
    strong model fine-tuned/LoRA) with at least two strong-model sizes: the openai README's figure, test accuracy
    against the strong model's parameter count, one colour per weak model, a line style per loss (the paper's
    recipe, no method), the ground-truth ceiling in black. Points come from the :func:`aggregate` rows, so they
    are the table's numbers; a hollow point's pair has no gap (the gap rule): no W2S experiment there."""
    rows = aggregate(records) if rows is None else rows
    out_dir = _ensure_dir(out_dir)
    setting_of = {config_id: setting for config_id, setting in
                  ((r.config_id(), _setting(r)) for r in records if (r.method or "none") == "none")}
    plain = {r.student for r in records if (r.method or "none") == "none"}
    params = {r.strong: r.strong_params for r in records if r.strong_params}
    paths = []
    for dataset in sorted({r.dataset for r in records}):
        for setting in sorted({setting_of[r["config_id"]] for r in rows if r["config_id"] in setting_of
                               and r["dataset"] == dataset}):
            series = [r for r in rows if r["dataset"] == dataset and r["loss"] in plain
                      and setting_of.get(r["config_id"]) == setting and r["strong"] in params]
            if len({r["strong"] for r in series}) < 2:
                continue
            fig = _size_figure(f"{dataset} ({setting})", series, params)
            paths.append(_save(fig, out_dir / f"accuracy_vs_size_{_slug(dataset)}_{_slug(setting)}.png"))
    return paths


def _setting(result: ExperimentResult) -> str:
    """``linear probes`` when both models are probes, else how the strong model trains (``full``, ``lora``)."""
    config = result.config
    modes = [(config.get(f"{role}_train") or {}).get("mode", "full") for role in ("weak", "strong")]
    return "linear probes" if set(modes) == {"probe"} else f"strong {modes[1]}"


def _size_figure(title: str, rows: list[dict], params: dict[str, int]) -> Figure:
    strongs = sorted({r["strong"] for r in rows}, key=lambda s: params[s])
    weaks = sorted({r["weak"] for r in rows}, key=lambda w: nanmean(r["weak_accuracy_mean"] for r in rows
                                                                      if r["weak"] == w))
    losses = order_losses({r["loss"] for r in rows})
    colours = _colours(weaks)
    fig = Figure(figsize=(8.5, 5.4), dpi=DPI)
    ax = fig.add_subplot()
    ceiling = {s: next(r for r in rows if r["strong"] == s) for s in strongs}
    xs = np.array([params[s] for s in strongs], dtype=float)
    ax.errorbar(xs, [ceiling[s]["ceiling_accuracy_mean"] for s in strongs],
                yerr=_yerr([(ceiling[s]["ceiling_accuracy_mean"], ceiling[s]["ceiling_accuracy_lo"],
                             ceiling[s]["ceiling_accuracy_hi"]) for s in strongs]),
                color="black", linestyle="--", marker="*", markersize=10, capsize=3, label="ceiling (ground truth)")
    for weak in weaks:
        mine = [r for r in rows if r["weak"] == weak]
        _draw_weak_level(ax, (mine[0]["weak_accuracy_mean"], mine[0]["weak_accuracy_lo"],
                              mine[0]["weak_accuracy_hi"]), colours[weak])
        for loss in losses:
            points = sorted(((params[r["strong"]], r) for r in mine if r["loss"] == loss), key=lambda point: point[0])
            if not points:
                continue
            linestyle, marker = _loss_style(loss, losses)
            px = np.array([x for x, _ in points], dtype=float)
            py = np.array([r["student_accuracy_mean"] for _, r in points])
            ax.errorbar(px, py, yerr=_yerr([(r["student_accuracy_mean"], r["student_accuracy_lo"],
                                             r["student_accuracy_hi"]) for _, r in points]),
                        color=colours[weak], linestyle=linestyle, marker=marker, capsize=3, linewidth=1.6,
                        label=f"{weak}: {loss}")
            hollow = np.array([not r.get("pgr_shown") for _, r in points])
            if hollow.any():
                ax.plot(px[hollow], py[hollow], linestyle="none", marker=marker, markersize=7,
                        markerfacecolor="white", markeredgecolor=colours[weak], zorder=5)
    ax.set_xscale("log")
    ax.set_xticks(xs, [f"{s}\n{params[s] / 1e6:.0f}M" for s in strongs])
    ax.minorticks_off()
    ax.set_xlabel("strong model (parameters)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{title}: accuracy against strong-model size")
    ax.grid(True, alpha=0.3)
    several = any(r["n_seeds"] > 1 for r in rows)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, title_fontsize=8,
              title=("mean over seeds, bars: 95% t-interval\nover seeds; dotted: weak model;\nhollow: no gap"
                     if several else "one seed: no interval;\ndotted: weak model; hollow: no gap"))
    return fig


def plot_pgr_heatmap(records: list[ExperimentResult], out_dir: Path,
                     rows: list[dict] | None = None) -> list[Path]:
    """One ``pgr_heatmap_<dataset>_<loss>.png`` per (dataset, loss); ``rows`` reuses an :func:`aggregate`."""
    rows = aggregate(records) if rows is None else rows
    records, rows, left_out = _main_only(records, rows)
    out_dir = _ensure_dir(out_dir)
    paths = []
    for dataset in sorted({r.dataset for r in records}):
        subset = [r for r in records if r.dataset == dataset]
        for loss in order_losses(r.student for r in subset):
            cells = {(row["weak"], row["strong"]): row for row in rows
                     if row["dataset"] == dataset and row["loss"] == loss}
            fig = _heatmap_figure(dataset, loss, subset, cells)
            _note_left_out(fig, left_out.get((dataset, loss), 0))
            paths.append(_save(fig, out_dir / f"pgr_heatmap_{_slug(dataset)}_{_slug(loss)}.png"))
    return paths


# --- accuracy vs ceiling -------------------------------------------------------------------------


def _accuracy_figure(dataset: str, records: list[ExperimentResult], rows: list[dict]) -> Figure:
    """Student accuracy per (weak, loss) line over strong models placed at their ceiling accuracy."""
    strongs, weaks = order_models(records, "strong"), order_models(records, "weak")
    losses = order_losses(r.student for r in records)
    ceiling = {s: summarize([r.ceiling_accuracy for r in records if r.strong == s]) for s in strongs}
    colours = _colours(weaks)
    fig = Figure(figsize=(9.0, 5.6), dpi=DPI)
    ax = fig.add_subplot()
    _draw_ceiling(ax, strongs, ceiling)
    for weak in weaks:
        _draw_weak_level(ax, summarize([r.weak_accuracy for r in records if r.weak == weak]), colours[weak])
        for loss in losses:
            series = [row for row in rows if row["weak"] == weak and row["loss"] == loss]
            _draw_student_line(ax, series, ceiling, colours[weak], loss, losses)
    _label_strong_models(ax, strongs, ceiling)
    ax.set_xlabel("strong ceiling accuracy (ground truth)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{dataset}: weak-to-strong accuracy")
    ax.grid(True, alpha=0.3)
    ax.margins(x=0.08, y=0.08)
    any_flagged = any(row["weak_not_smaller"] for row in rows)
    several = any(row["n_seeds"] > 1 for row in rows)  # one seed has no interval over seeds: promise no bars
    title = "mean over seeds,\nbars: 95% t-interval\nover seeds" if several else "one seed per point:\nno interval"
    ax.legend(handles=_accuracy_legend(weaks, colours, losses, any_flagged), loc="upper left",
              bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=9, handlelength=3.5,
              title=title, title_fontsize=9)
    return fig


def _draw_ceiling(ax, strongs: list[str], ceiling: dict) -> None:
    """The ceiling itself: black dashed line through the (ceiling, ceiling) points."""
    xs = np.array([ceiling[s][0] for s in strongs])
    err = _yerr([ceiling[s] for s in strongs])
    ax.errorbar(xs, xs, yerr=err, color="black", linestyle="--", marker="*", markersize=10, capsize=3,
                linewidth=1.4, zorder=4)


def _draw_weak_level(ax, stats: tuple[float, float, float], colour) -> None:
    """A weak model's own accuracy: thin dotted horizontal line, its CI as a faint band."""
    mean, low, high = stats
    if math.isnan(mean):
        return
    ax.axhline(mean, color=colour, linestyle=":", linewidth=1.3, alpha=0.9, zorder=1)
    if high > low:
        ax.axhspan(low, high, color=colour, alpha=0.08, linewidth=0, zorder=0)


def _draw_student_line(ax, series: list[dict], ceiling: dict, colour, loss: str, losses: list[str]) -> None:
    """One (weak, loss) line; pairs whose weak model is not smaller get open markers."""
    points = sorted(((ceiling[row["strong"]][0], row) for row in series if not math.isnan(ceiling[row["strong"]][0])),
                    key=lambda point: point[0])
    if not points:
        return
    xs = np.array([x for x, _ in points])
    ys = np.array([row["student_accuracy_mean"] for _, row in points])
    err = _yerr([(row["student_accuracy_mean"], row["student_accuracy_lo"], row["student_accuracy_hi"])
                 for _, row in points])
    linestyle, marker = _loss_style(loss, losses)
    ax.errorbar(xs, ys, yerr=err, color=colour, linestyle=linestyle, marker=marker, markersize=6,
                capsize=3, linewidth=1.6, elinewidth=1.0, zorder=3)
    flagged = np.array([row["weak_not_smaller"] for _, row in points])
    if flagged.any():
        ax.plot(xs[flagged], ys[flagged], linestyle="none", marker=marker, markersize=6,
                markerfacecolor="white", markeredgecolor=colour, zorder=5)


def _label_strong_models(ax, strongs: list[str], ceiling: dict) -> None:
    """Name the strong models on a top axis at their ceiling, since the bottom axis only shows numbers."""
    placed = [(ceiling[s][0], s) for s in strongs if not math.isnan(ceiling[s][0])]
    top = ax.secondary_xaxis("top")
    top.set_xticks([x for x, _ in placed], labels=[s for _, s in placed], rotation=40, ha="left",
                   rotation_mode="anchor", fontsize=8)
    top.set_xlabel("strong model", fontsize=9)


def _accuracy_legend(weaks: list[str], colours: dict, losses: list[str], any_flagged: bool) -> list[Line2D]:
    """Proxy handles: colour = weak model, line style + marker = loss, plus the reference lines."""
    handles = [Line2D([], [], color=colours[w], linewidth=2.5, label=f"weak: {w}") for w in weaks]
    for loss in losses:
        linestyle, marker = _loss_style(loss, losses)
        handles.append(Line2D([], [], color="dimgray", linestyle=linestyle, marker=marker, label=f"loss: {loss}"))
    handles.append(Line2D([], [], color="black", linestyle="--", marker="*", markersize=9, label="strong ceiling"))
    handles.append(Line2D([], [], color="dimgray", linestyle=":", linewidth=1.3, label="weak model accuracy"))
    if any_flagged:
        handles.append(Line2D([], [], color="dimgray", linestyle="none", marker="o", markerfacecolor="white",
                              label="open marker: weak ≥ strong"))
    return handles


def _loss_style(loss: str, losses: list[str]) -> tuple:
    """Fixed styles for the paper's losses, then a cycle for any others (stable within one figure)."""
    if loss in LOSS_STYLES:
        return LOSS_STYLES[loss], LOSS_MARKERS[loss]
    extra = [name for name in losses if name not in LOSS_STYLES].index(loss)
    return EXTRA_STYLES[extra % len(EXTRA_STYLES)], EXTRA_MARKERS[extra % len(EXTRA_MARKERS)]


def _yerr(stats: list[tuple[float, float, float]]) -> np.ndarray:
    """Asymmetric error-bar lengths from (point, low, high); NaN bounds draw no bar."""
    arr = np.array(stats, dtype=float).reshape(-1, 3)
    err = np.vstack([arr[:, 0] - arr[:, 1], arr[:, 2] - arr[:, 0]])
    return np.nan_to_num(np.clip(err, 0.0, None), nan=0.0)


# --- PGR heatmap ---------------------------------------------------------------------------------


def _heatmap_figure(dataset: str, loss: str, records: list[ExperimentResult], cells: dict) -> Figure:
    """Pooled PGR per (weak, strong) cell, coloured only where the gap rule shows it
    (:func:`w2slab.stats.shows_pgr`); rows and columns ordered by capability over the whole dataset."""
    weaks, strongs = order_models(records, "weak"), order_models(records, "strong")
    values = np.full((len(weaks), len(strongs)), np.nan)
    for i, weak in enumerate(weaks):
        for j, strong in enumerate(strongs):
            if (weak, strong) in cells:
                values[i, j] = shown_pgr(cells[(weak, strong)])
    fig = Figure(figsize=(max(5.0, 2.6 + 1.5 * len(strongs)), max(3.4, 1.9 + 0.75 * len(weaks))), dpi=DPI)
    ax = fig.add_subplot()
    norm = TwoSlopeNorm(vmin=PGR_MIN, vcenter=0.0, vmax=PGR_MAX)
    cmap = matplotlib.colormaps["RdBu"].with_extremes(bad="#d9d9d9")
    image = ax.imshow(np.ma.masked_invalid(np.clip(values, PGR_MIN, PGR_MAX)), cmap=cmap, norm=norm, aspect="auto")
    for i, weak in enumerate(weaks):
        for j, strong in enumerate(strongs):
            _annotate_cell(ax, i, j, cells.get((weak, strong)), norm)
    weak_acc = _mean_by(records, "weak", "weak_accuracy")
    ceiling = _mean_by(records, "strong", "ceiling_accuracy")
    ax.set_xticks(range(len(strongs)), labels=[f"{s}\n({ceiling[s]:.3f})" for s in strongs], fontsize=9)
    ax.set_yticks(range(len(weaks)), labels=[f"{w}\n({weak_acc[w]:.3f})" for w in weaks], fontsize=9)
    ax.set_xlabel("strong model (ceiling accuracy)")
    ax.set_ylabel("weak model (weak accuracy)")
    ax.set_title(f"{dataset}, loss {loss}: PGR (weak × strong)")
    colorbar = fig.colorbar(image, ax=ax, extend="both", fraction=0.08, pad=0.04)
    colorbar.set_label("pooled PGR (grey: no gap)")
    return fig


def _annotate_cell(ax, i: int, j: int, row: dict | None, norm) -> None:
    """Pooled PGR with the seeds that have a gap; ``no gap`` under the gap rule, an em dash when not run."""
    if row is None:
        ax.text(j, i, "—\nnot run", ha="center", va="center", fontsize=8, color="dimgray")
        return
    value = shown_pgr(row)
    if math.isnan(value):
        text, colour = "no gap", "black"
    else:
        text = f"{value:.2f}"
        colour = "white" if abs(norm(np.clip(value, PGR_MIN, PGR_MAX)) - 0.5) > 0.3 else "black"
    detail = f"gap in {row['n_gap']}/{row['n_seeds']}"
    if row["note"]:
        detail += f", {row['note']}"
    ax.text(j, i - 0.08, text, ha="center", va="center", fontsize=11, fontweight="bold", color=colour)
    ax.text(j, i + 0.22, detail, ha="center", va="center", fontsize=7, color=colour)


def shown_pgr(row: dict) -> float:
    """The row's pooled PGR where the gap rule shows one, else NaN (no colour, no number)."""
    return row["pgr_pooled"] if row.get("pgr_shown") else math.nan


def _mean_by(records: list[ExperimentResult], role: str, metric: str) -> dict[str, float]:
    """Mean of ``metric`` per model in ``role`` (used for tick labels)."""
    return {name: nanmean(getattr(r, metric) for r in records if getattr(r, role) == name)
            for name in {getattr(r, role) for r in records}}


# --- shared --------------------------------------------------------------------------------------


def _main_only(records: list[ExperimentResult], rows: list[dict]) -> tuple[list[ExperimentResult], list[dict], dict]:
    """Records and rows of the main configurations, and how many records were left out, counted per
    dataset and per (dataset, loss) (the scopes of the two figure kinds)."""
    kept = main_config_records(records)
    kept_ids = {id(r) for r in kept}
    left_out: dict = {}
    for record in records:
        if id(record) not in kept_ids:
            for scope in (record.dataset, (record.dataset, record.student)):
                left_out[scope] = left_out.get(scope, 0) + 1
    return kept, [row for row in rows if row.get("config_main", True)], left_out


def _note_left_out(fig: Figure, count: int) -> None:
    """Say under the figure that runs of other configurations exist and where they are."""
    if count:
        fig.text(0.01, 0.0, f"{count} run(s) of other configurations not shown (see summary.md)", fontsize=8,
                 color="dimgray", ha="left", va="top")


def _colours(names: list[str]) -> dict[str, tuple]:
    """A distinct colour per name: tab10 up to ten, tab20 up to twenty, then evenly spaced hues (never a repeat)."""
    if len(names) <= 10:
        palette = matplotlib.colormaps["tab10"].colors
    elif len(names) <= 20:
        palette = matplotlib.colormaps["tab20"].colors
    else:
        palette = [matplotlib.colormaps["hsv"](i / len(names)) for i in range(len(names))]
    return {name: palette[i] for i, name in enumerate(names)}


def _slug(name: str) -> str:
    """A file-name-safe version of a dataset or loss name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "unnamed"


def _ensure_dir(out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def _save(fig: Figure, path: Path) -> Path:
    """Lay out and write a PNG with the Agg renderer."""
    FigureCanvasAgg(fig)
    with warnings.catch_warnings():  # long tick labels (a forest plot's names) can defeat tight_layout: say nothing
        warnings.filterwarnings("ignore", message="Tight layout not applied")
        fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path
