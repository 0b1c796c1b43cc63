"""The table ``w2s run`` prints: one experiment's models and students with their intervals, from its
:class:`~w2slab.results.ExperimentSummary` (what ``metrics.json`` holds; nothing is recomputed here)."""

from __future__ import annotations

import math

from rich.markup import escape
from rich.table import Table

from w2slab.formatting import console
from w2slab.results import ExperimentResult, ExperimentSummary


def summary_table(summary: ExperimentSummary) -> Table:
    """The printed result of ``w2s run`` as a rich table.

    The last column holds the students' PGR CI (``unbounded`` when the bootstrap cannot bound it) and the
    gap's CI; rows of a suspect model are marked and the reasons are listed under the table.
    """
    first = summary.first
    table = Table(title=f"{first.dataset}: {first.weak} -> {first.strong} (seed {first.seed}, n_test "
                        f"{summary.config['n_test']})")
    for column in ("model", "accuracy", "AUROC", "ECE", "p90 max p", "PGR", "95% CI"):
        table.add_column(column, justify="right" if column != "model" else "left")
    no_experiment = first.no_experiment()
    has_gap = first.has_gap()
    table.caption = (f"{no_experiment}, so no PGR is a result here. " if no_experiment else "" if has_gap else
                     "no gap: the gap's interval reaches 0, so no PGR is a result here. ") + \
        "Intervals over the test examples (one seed; w2slab.stats)."

    def confidence(result: ExperimentResult, role: str) -> tuple[str, str]:
        cal = (result.diagnostics.get("calibration") or {}).get(role) or {}
        return console(cal.get("ece", math.nan)), console(cal.get("p90_max_prob", math.nan))

    def label(text: str, suspect: bool) -> str:
        return escape(text) + (" [bold red]SUSPECT[/]" if suspect else "")

    def interval(low: float, high: float) -> str:
        return escape(f"[{console(low)}, {console(high)}]")

    roles = set().union(*(result.suspect_roles() for result in summary.results.values()))
    table.add_row(label(f"weak ({first.weak})", "weak" in roles), console(first.weak_accuracy),
                  console(first.weak_auroc), *confidence(first, "weak"), "", "")
    for student, result in summary.results.items():
        ci = "unbounded" if result.pgr_ci_unbounded else interval(*result.pgr_ci95)
        table.add_row(label(f"w2s student ({student})", "student" in result.suspect_roles()),
                      console(result.student_accuracy), console(result.student_auroc), *confidence(result, "student"),
                      console(result.pgr) if has_gap else "n/a" if no_experiment else "no gap", ci if has_gap else "")
    table.add_row(label(f"ceiling ({first.strong})", "ceiling" in roles), console(first.ceiling_accuracy),
                  console(first.ceiling_auroc), *confidence(first, "ceiling"), "", "")
    table.add_row("gap (ceiling - weak)", console(first.ceiling_accuracy - first.weak_accuracy), "", "", "", "",
                  interval(*first.gap_ci95))
    if not math.isnan(first.ceiling_over_chance):
        table.add_row("ceiling - chance", console(first.ceiling_over_chance), "", "", "", "",
                      interval(*first.ceiling_over_chance_ci95))
    if notes := summary.length_notes():
        table.caption = "; ".join(notes) + ". " + table.caption
    if summary.suspect:
        table.caption = "suspect: " + "; ".join(summary.suspect) + ". " + table.caption
        table.caption_style = "red"
    table.caption = escape(table.caption)
    return table
