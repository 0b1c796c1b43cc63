"""Published weak-to-strong numbers for the suite's tasks, printed beside ours in the claims table.

Different models, metrics and aggregations from ours: they are context, never a target or a test.

- ``openai``: openai/weak-to-strong README "Expected results" figures (commit 2d5c21a, 2024-01-08;
  notebooks/<task>.png), the inset's *median PGR over every weak < strong pair* of gpt2 .. Qwen-14B, accuracy,
  printed in the figures. anthropic_hh there has every model at chance (.49-.50), so its PGR means nothing.
- ``eleuther``: EleutherAI, "Experiments in Weak-to-Strong Generalization" (blog, 2024-06-14; figures
  static/images/blog/w2s/loss.png, the outputs of EleutherAI/w2s branch repro_messy 4c0108a,
  notebooks/repro.ipynb): Qwen1.5-0.5B -> Llama-3-8B with LoRA, one run per task, PGR of ROC AUC. **Read from
  the bar charts' pixels (about +-.005), not printed numbers.** Their headline: logconf above xent on 16 of 21
  tasks, one-sided paired t-test p = .135, Wilcoxon p = .079.
- Burns et al. 2023 (arXiv 2312.09390, section 4.3.2): median PGR across 22 NLP tasks, smallest supervisor and
  largest student, "from about 25%" (naive) "to nearly 80%" (confidence loss); no per-task numbers in the text.
"""

from __future__ import annotations

#: task -> (xent PGR, logconf PGR) per source; absent where the source has no number for the task
OPENAI_MEDIAN_PGR: dict[str, tuple[float, float]] = {
    "sciq": (0.3322, 0.3102), "amazon_multidomain": (0.5757, 0.5207), "boolq": (0.0484, -0.3545),
    "cosmos_qa": (0.3518, 0.3693), "anthropic_hh": (-0.1237, 0.8061),
}
ELEUTHER_PGR: dict[str, tuple[float, float]] = {
    "sciq": (0.564, 0.603), "boolq": (0.475, 0.525), "cosmos_qa": (0.421, 0.451),
    "amazon_multidomain": (0.870, 0.678), "sst2_sentences": (1.055, 1.061), "piqa": (0.220, 0.109),
    "social_i_qa": (0.226, 0.253), "quail": (0.400, 0.445), "dream": (0.379, 0.409), "anthropic_hh": (0.007, 0.298),
}
NOTES = ("openai: median PGR over gpt2..Qwen-14B pairs, accuracy (amazon_polarity for our amazon_multidomain "
         "stand-in); eleuther: Qwen1.5-0.5B -> Llama-3-8B LoRA, one run, PGR of ROC AUC read from their bar "
         "charts (+-.005; sst2 is GLUE's); Burns et al.: median over 22 tasks, about .25 naive and nearly .80 with "
         "the confidence loss (smallest supervisor, largest student)")


CHOICES = "_choices"


def beside(task: str) -> str:
    """The published (xent, logconf) PGRs of ``task``, as a table cell. A ``<task>_choices`` task is the same
    questions as ``<task>`` scored as answer pairs; the sources binarised them, which the cell says."""
    base = task.removesuffix(CHOICES)
    cells = [f"{name} {x:.2f} / {c:.2f}" for name, table in (("openai", OPENAI_MEDIAN_PGR),
                                                               ("eleuther", ELEUTHER_PGR))
             if (pair := table.get(base)) is not None for x, c in [pair]]
    return "; ".join(cells) + (" (binarised)" if cells and base != task else "")
