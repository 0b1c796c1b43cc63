"""``report.html``: the whole report as one self-contained page to open or send (figures embedded).

It holds the tables the Markdown files hold (summary, paired differences, diagnostics), every figure of the
report folder as an embedded PNG, and the configuration of each row's ``config`` id, so a reader needs nothing
else. No template engine, no scripts, no external assets: the page renders offline in any browser.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterable
from pathlib import Path

from w2slab.results import ExperimentResult

#: The report's Markdown files, in page order, with their section titles.
SECTIONS = (("summary.md", "Summary"), ("paired.md", "Paired differences"), ("diagnostics.md", "Diagnostics"))

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; } figcaption { font-size: 0.85em; color: #555; }
pre { background: #f7f7f7; padding: 0.75em; overflow-x: auto; font-size: 0.8em; }
nav a { margin-right: 1em; }
"""


def inline(text: str) -> str:
    """Markdown's inline marks we use (`code`, **bold**) as HTML, the rest escaped."""
    out = html.escape(text.replace("\\|", "|"))
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def markdown_to_html(text: str) -> str:
    """The subset of Markdown the report writes: headings, paragraphs, lists and pipe tables."""
    blocks: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")) + 1, 6)  # the page's h1 is the report's title
            blocks.append(f"<h{level}>{inline(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(lines[i])
                i += 1
            blocks.append(_table(rows))
            continue
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{inline(lines[i][2:])}</li>")
                i += 1
            blocks.append("<ul>" + "".join(items) + "</ul>")
            continue
        elif line.strip():
            paragraph = [line]
            while i + 1 < len(lines) and lines[i + 1].strip() and not lines[i + 1].startswith(("#", "|", "- ")):
                i += 1
                paragraph.append(lines[i])
            blocks.append(f"<p>{inline(' '.join(paragraph))}</p>")
        i += 1
    return "\n".join(blocks)


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row.strip().strip("|"))]


def _table(rows: list[str]) -> str:
    header, body = _cells(rows[0]), [_cells(r) for r in rows[2:]]
    numeric = re.compile(r"^[-+]?(\d|\.\d|n/a)")
    head = "".join(f"<th>{inline(c)}</th>" for c in header)
    lines = ["<tr>" + "".join(f"<td class=\"num\">{inline(c)}</td>" if numeric.match(c) else f"<td>{inline(c)}</td>"
                              for c in row) + "</tr>" for row in body]
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


def figure(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    caption = path.stem.replace("_", " ")
    return (f'<figure id="fig-{html.escape(path.stem)}"><img alt="{html.escape(caption)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{html.escape(path.name)}</figcaption></figure>')


def embeddable(out_dir: Path, written: Iterable[str | Path] | None) -> list[Path]:
    """The files of ``out_dir`` the page may show: those this report call ``written`` (in their order), each a
    regular file directly in ``out_dir``; never a symlink (``--out ~/Desktop`` holding a link to elsewhere).

    ``written=None`` (a caller that does not say what it wrote) falls back to what ``out_dir`` holds, which also
    picks up leftovers of earlier reports there: callers should pass their written paths."""
    out_dir = Path(out_dir)
    if written is None:
        candidates = [out_dir / name for name, _ in SECTIONS] + sorted(out_dir.glob("*.png"))
    else:
        candidates = [Path(path) for path in written]
    files: list[Path] = []
    for path in candidates:
        if path.parent.resolve() == out_dir.resolve() and path.is_file() and not path.is_symlink() \
                and path not in files:
            files.append(path)
    return files


def write_html(out_dir: Path, records: list[ExperimentResult], title: str,
               written: Iterable[str | Path] | None = None) -> Path:
    """``out_dir/report.html`` from the Markdown tables and PNG figures this report call wrote into ``out_dir``.

    ``written``: the paths the caller wrote (:func:`w2slab.report.write_report`'s), so the page embeds those and
    nothing else the folder holds (an earlier call's ``paired.md`` or figures, a user's own PNGs)."""
    out_dir = Path(out_dir)
    files = embeddable(out_dir, written)
    parts, nav = [], []
    for name, section in SECTIONS:
        if out_dir / name in files:
            anchor = name.removesuffix(".md")
            nav.append(f'<a href="#{anchor}">{section}</a>')
            parts.append(f'<section id="{anchor}">{markdown_to_html((out_dir / name).read_text(encoding="utf-8"))}'
                         "</section>")
    figures = sorted(path for path in files if path.suffix == ".png")
    if figures:
        nav.append('<a href="#figures">Figures</a>')
        parts.append('<section id="figures"><h2>Figures</h2>' + "".join(figure(p) for p in figures) + "</section>")
    configs = {}
    for record in records:
        configs.setdefault(record.config_id(), record.config)
    nav.append('<a href="#configs">Configurations</a>')
    blocks = "".join(f"<h3>{html.escape(cid)}</h3><pre>"
                     f"{html.escape(json.dumps(cfg, indent=2, default=str), quote=False)}</pre>"
                     for cid, cfg in sorted(configs.items()))
    parts.append('<section id="configs"><h2>Configurations</h2><p>The experiment config of each <code>config</code> '
                 "id in the tables (one seed's; seeds differ only in <code>seed</code>).</p>" + blocks + "</section>")
    page = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1><nav>{''.join(nav)}</nav>"
            + "\n".join(parts) + "</body></html>\n")
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
