"""Report module: loading records, aggregation over seeds, tables and figures, on synthetic records."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from w2slab.errors import W2SError
from w2slab.report import aggregate, load_records, write_report
from w2slab.report.tables import summarize

SEEDS = (0, 1, 2)
WEAK_ACC = {"minilm-l3": 0.60, "minilm-l6": 0.70}  # + 0.01 * seed
CEILING_ACC = {"minilm-l6": 0.70, "minilm-l12": 0.80}  # + 0.01 * seed
# PGR per seed for each (weak, strong, loss); None = undefined (recorded as JSON null).
PGR = {
    ("minilm-l3", "minilm-l6", "xent"): [0.2, 0.5, 1.1],
    ("minilm-l3", "minilm-l6", "logconf"): [0.4, 0.6, 0.8],
    ("minilm-l3", "minilm-l12", "xent"): [0.3, 0.35, 0.7],
    ("minilm-l3", "minilm-l12", "logconf"): [0.1, 0.9, None],
    ("minilm-l6", "minilm-l6", "xent"): [None, None, None],  # self pair: ceiling == weak
    ("minilm-l6", "minilm-l6", "logconf"): [None, None, None],
    ("minilm-l6", "minilm-l12", "xent"): [-0.2, 0.0, 0.3],
    ("minilm-l6", "minilm-l12", "logconf"): [0.5, 1.2, 1.8],
}


def make_record(dataset: str, weak: str, strong: str, loss: str, seed: int, pgr: float | None) -> dict:
    """A record as a sweep writes it, with the student accuracy implied by the PGR."""
    weak_acc = WEAK_ACC[weak] + 0.01 * seed
    ceiling = CEILING_ACC[strong] + 0.01 * seed
    student = weak_acc + 0.01 if pgr is None else weak_acc + pgr * (ceiling - weak_acc)
    return {
        "experiment_id": f"{dataset}-{weak}-{strong}-{loss}-{seed}", "dataset": dataset, "weak": weak,
        "strong": strong, "loss": loss, "seed": seed,
        "weak_accuracy": weak_acc, "ceiling_accuracy": ceiling, "student_accuracy": student,
        "weak_auroc": weak_acc + 0.05, "ceiling_auroc": ceiling + 0.05, "student_auroc": student + 0.05,
        "pgr": pgr, "self_pair": weak == strong, "weak_not_smaller": weak == strong,
        # a gap whose interval excludes 0 wherever the ceiling is above the weak model (PGR enters aggregates only then)
        "gap_ci95": [ceiling - weak_acc - 0.05, ceiling - weak_acc + 0.05] if ceiling > weak_acc else [-0.05, 0.05],
    }


def synthetic_records() -> list[dict]:
    """sciq: 2 weak x 2 strong x 2 losses x 3 seeds; boolq: a single pair, loss and seed."""
    records = [make_record("sciq", w, s, loss, seed, values[seed]) for (w, s, loss), values in PGR.items()
               for seed in SEEDS]
    records.append(make_record("boolq", "minilm-l3", "minilm-l12", "xent", 0, 0.42))
    return records


def write_run_root(root: Path, records: list[dict]) -> Path:
    for record in records:
        folder = root / "experiments" / record["experiment_id"]
        folder.mkdir(parents=True)
        (folder / "result.json").write_text(json.dumps(record), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def run_root(tmp_path_factory) -> Path:
    return write_run_root(tmp_path_factory.mktemp("run"), synthetic_records())


@pytest.fixture(scope="module")
def rows(run_root) -> list[dict]:
    return aggregate(load_records(run_root))


@pytest.fixture(scope="module")
def report(run_root) -> dict[str, list[Path]]:
    return write_report(run_root)


def find(rows: list[dict], dataset: str, weak: str, strong: str, loss: str) -> dict:
    (row,) = [r for r in rows if (r["dataset"], r["weak"], r["strong"], r["loss"]) == (dataset, weak, strong, loss)]
    return row


def test_load_records_normalises_nulls_and_flags(run_root):
    records = load_records(run_root)
    assert len(records) == len(PGR) * len(SEEDS) + 1
    self_pairs = [r for r in records if r.weak == r.strong]
    assert all(math.isnan(r.pgr) and r.self_pair and r.weak_not_smaller for r in self_pairs)
    assert all(isinstance(r.pgr, float) for r in records)


def test_aggregate_matches_hand_computed_statistics(rows):
    assert len(rows) == len(PGR) + 1
    row = find(rows, "sciq", "minilm-l3", "minilm-l6", "xent")
    assert row["n_seeds"] == 3 and row["n_pgr"] == 3
    assert row["pgr_mean"] == pytest.approx(0.6)
    assert row["pgr_median"] == pytest.approx(0.5)
    assert row["weak_accuracy_mean"] == pytest.approx(0.61)
    assert row["ceiling_accuracy_mean"] == pytest.approx(0.71)
    # student = weak + pgr * 0.1 for each seed
    assert row["student_accuracy_mean"] == pytest.approx(np.mean([0.60 + 0.02, 0.61 + 0.05, 0.62 + 0.11]))
    assert row["weak_auroc_mean"] == pytest.approx(0.66)
    assert row["note"] == "" and not row["self_pair"]


def test_rows_are_ordered_by_dataset_loss_and_capability(rows):
    sciq_xent = [(r["weak"], r["strong"]) for r in rows if r["dataset"] == "sciq" and r["loss"] == "xent"]
    assert sciq_xent == [("minilm-l3", "minilm-l6"), ("minilm-l3", "minilm-l12"),
                         ("minilm-l6", "minilm-l6"), ("minilm-l6", "minilm-l12")]
    assert [r["dataset"] for r in rows][0] == "boolq"
    assert [r["loss"] for r in rows if r["dataset"] == "sciq"][:4] == ["xent"] * 4


def test_confidence_intervals_contain_the_estimate(rows):
    for row in rows:
        if not math.isnan(row["pgr_mean"]):
            assert row["pgr_mean_lo"] <= row["pgr_mean"] <= row["pgr_mean_hi"]
        for name in ("weak_accuracy", "ceiling_accuracy", "student_accuracy"):
            assert row[f"{name}_lo"] <= row[f"{name}_mean"] <= row[f"{name}_hi"]
    wide = find(rows, "sciq", "minilm-l3", "minilm-l6", "xent")
    assert wide["pgr_mean_hi"] > wide["pgr_mean_lo"]


def test_single_seed_gives_degenerate_interval(rows):
    row = find(rows, "boolq", "minilm-l3", "minilm-l12", "xent")
    assert row["n_seeds"] == 1
    assert row["pgr_mean"] == row["pgr_mean_lo"] == row["pgr_mean_hi"] == pytest.approx(0.42)
    assert row["pgr_median"] == pytest.approx(0.42)
    assert row["student_accuracy_lo"] == row["student_accuracy_hi"] == row["student_accuracy_mean"]


def test_nan_pgr_is_excluded_and_all_nan_gives_nan(rows):
    partial = find(rows, "sciq", "minilm-l3", "minilm-l12", "logconf")
    assert partial["n_seeds"] == 3 and partial["n_pgr"] == 2
    assert partial["pgr_mean"] == pytest.approx(0.5)
    assert partial["pgr_median"] == pytest.approx(0.5)
    # a t-interval over two seeds (1 df): honest and wide, around the mean
    assert partial["pgr_mean_lo"] < 0.5 < partial["pgr_mean_hi"]
    undefined = find(rows, "sciq", "minilm-l6", "minilm-l6", "xent")
    assert undefined["n_pgr"] == 0
    for key in ("pgr_mean", "pgr_mean_lo", "pgr_mean_hi", "pgr_median"):
        assert math.isnan(undefined[key])
    assert undefined["note"] == "self-pair"
    assert not math.isnan(undefined["student_accuracy_mean"])


def test_summarize_all_nan_and_empty():
    assert all(math.isnan(v) for v in summarize([math.nan, math.nan]))
    assert all(math.isnan(v) for v in summarize([]))


def test_tables_have_one_row_per_configuration(report, rows):
    csv_path, md_path = report["tables"]
    assert csv_path.name == "summary.csv" and md_path.name == "summary.md"
    with csv_path.open(encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == len(rows)
    assert {"pgr_mean", "pgr_median", "pgr_shown", "student_accuracy_hi", "note"} <= set(table[0])
    first_sciq = next(r for r in table if r["dataset"] == "sciq")
    assert float(first_sciq["pgr_mean"]) == pytest.approx(0.6)

    markdown = md_path.read_text(encoding="utf-8")
    table_lines = [line for line in markdown.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(table_lines) == len(rows) + 1  # header + one line per row
    # records without per-example correctness: the mean over the seeds with a gap, said so
    assert "| sciq | xent | minilm-l3 | minilm-l6 | 3 | 0.600 [" in markdown
    assert "(3 of 3, mean over seeds)" in markdown
    assert "no gap (0 of 3)" in markdown  # the self pair: no PGR printed
    assert "| 2/3 |" in markdown  # one undefined PGR among three seeds
    assert "n/a" in markdown and "self-pair" in markdown


def test_pngs_are_written_and_non_trivial(report, run_root):
    assert sorted(p.name for p in report["accuracy_plots"]) == ["accuracy_vs_ceiling_boolq.png",
                                                                "accuracy_vs_ceiling_sciq.png"]
    assert sorted(p.name for p in report["heatmaps"]) == ["pgr_heatmap_boolq_xent.png", "pgr_heatmap_sciq_logconf.png",
                                                          "pgr_heatmap_sciq_xent.png"]
    for path in report["accuracy_plots"] + report["heatmaps"]:
        assert path.parent == run_root / "report"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 10_000


def test_empty_run_root_raises(tmp_path):
    with pytest.raises(W2SError, match="no finished experiments"):
        load_records(tmp_path)
    (tmp_path / "experiments" / "unfinished").mkdir(parents=True)
    with pytest.raises(W2SError, match="w2s sweep"):
        write_report(tmp_path)


@pytest.mark.parametrize("content, problem", [
    ("{not json", "malformed"),
    ("[1, 2]", "one JSON object"),
    (json.dumps({"dataset": "sciq"}), "missing"),
    (json.dumps({**make_record("sciq", "minilm-l3", "minilm-l6", "xent", 0, 0.5), "pgr": "high"}), "pgr"),
])
def test_malformed_record_raises_naming_the_file(tmp_path, content, problem):
    write_run_root(tmp_path, [make_record("sciq", "minilm-l3", "minilm-l6", "xent", 1, 0.5)])
    bad = tmp_path / "experiments" / "zz-bad" / "result.json"
    bad.parent.mkdir()
    bad.write_text(content, encoding="utf-8")
    with pytest.raises(W2SError, match=problem) as info:
        load_records(tmp_path)
    assert str(bad) in str(info.value)


def with_config(record: dict, **changes) -> dict:
    """A record carrying its experiment config (as sweeps write it), ``changes`` applied to the defaults."""
    config = {"dataset": record["dataset"], "weak": record["weak"], "strong": record["strong"],
              "losses": [{"name": record["loss"]}], "n_train": 2000, "n_test": 800, "seed": record["seed"],
              "weak_train": {"epochs": 2, "lr": None}}
    for key, value in changes.items():
        if key == "epochs":
            config["weak_train"] = {**config["weak_train"], "epochs": value}
        else:
            config[key] = value
    tag = "-".join(f"{k}{v}" for k, v in changes.items())
    return {**record, "config": config, "experiment_id": f"{record['experiment_id']}-{tag}"}


def test_two_configurations_of_one_pair_are_reported_apart(tmp_path):
    pair = ("sciq", "minilm-l3", "minilm-l12", "xent")
    main = [with_config(make_record(*pair, seed, pgr)) for seed, pgr in zip(SEEDS, (0.2, 0.3, 0.4), strict=True)]
    other = [with_config(make_record(*pair, seed, pgr), n_train=4000, epochs=3)
             for seed, pgr in zip((0, 1), (0.9, 1.0), strict=True)]
    old = [make_record(*pair, 0, 0.5)]  # written before results carried their config
    root = write_run_root(tmp_path / "run", main + other + old)
    records = load_records(root)
    rows = [r for r in aggregate(records) if (r["dataset"], r["weak"], r["strong"], r["loss"]) == pair]
    assert [(r["n_seeds"], r["config_main"]) for r in rows] == [(3, True), (2, False), (1, False)]
    first, second, third = rows
    assert first["pgr_mean"] == pytest.approx(0.3) and second["pgr_mean"] == pytest.approx(0.95)
    assert third["pgr_mean"] == pytest.approx(0.5) and third["config_id"] == "no-config"
    assert len({r["config_id"] for r in rows}) == 3
    assert first["config_diff"] == ""
    assert second["config_diff"] == "n_train=4000 (main 2000), weak_train.epochs=3 (main 2)"
    assert "seed" not in second["config_diff"]
    assert "no config recorded" in third["config_diff"]
    # the seed does not enter the config id: the three main records share one
    assert len({r.config_id() for r in records if r.experiment_id in {m["experiment_id"] for m in main}}) == 1

    paths = write_report(root)
    markdown = paths["tables"][1].read_text(encoding="utf-8")
    assert f"| {first['config_id']} |" in markdown
    assert f"{second['config_id']}: n_train=4000 (main 2000)" in markdown
    with paths["tables"][0].open(encoding="utf-8") as handle:
        table = [r for r in csv.DictReader(handle)]
    assert [int(r["n_seeds"]) for r in table] == [3, 2, 1]
    assert all(path.exists() for path in paths["accuracy_plots"] + paths["heatmaps"])


def test_suspect_runs_are_marked_in_the_tables(tmp_path):
    records = [make_record("sciq", "minilm-l3", "minilm-l12", "xent", seed, 0.3) for seed in SEEDS]
    records[1]["suspect"] = ["student predicts class 1 on 97% of test (labels: 51% class 1)"]
    root = write_run_root(tmp_path / "run", records)
    (row,) = aggregate(load_records(root))
    assert row["n_suspect"] == 1 and row["note"] == "suspect 1/3"
    assert row["suspect"] == "s1: student predicts class 1 on 97% of test (labels: 51% class 1)"
    markdown = write_report(root)["tables"][1].read_text(encoding="utf-8")
    assert "suspect 1/3 |" in markdown
    assert "## Suspect runs" in markdown and "s1: student predicts class 1 on 97% of test" in markdown


def test_runs_of_another_code_revision_or_other_weights_are_other_configurations(tmp_path):
    """A fix changes the source digest: the old results are never averaged in as more seeds of the new."""
    pair = ("sciq", "minilm-l3", "minilm-l12", "xent")

    def ran_with(record: dict, source: str, weights: str = "packaged:a") -> dict:
        resolved = {"versions": {"w2slab": "0.1.0", "w2slab_source": source, "torch": "2.13.0"},
                    "revisions": {"dataset:sciq": "folder:x", "model:minilm-l12": weights}}
        return {**record, "resolved": resolved, "experiment_id": f"{record['experiment_id']}-{source}-{weights}"}

    old = [ran_with(with_config(make_record(*pair, seed, 0.2)), "old") for seed in SEEDS]
    new = [ran_with(with_config(make_record(*pair, seed, 0.6)), "new") for seed in (0, 1)]
    other_weights = [ran_with(with_config(make_record(*pair, 0, 0.9)), "old", "packaged:b")]
    records = load_records(write_run_root(tmp_path / "run", old + new + other_weights))
    rows = [r for r in aggregate(records) if (r["dataset"], r["weak"], r["strong"], r["loss"]) == pair]
    by_seeds = {r["n_seeds"]: r for r in rows}
    assert sorted(by_seeds) == [1, 2, 3] and by_seeds[3]["config_main"] and len(rows) == 3
    assert by_seeds[3]["pgr_mean"] == pytest.approx(0.2) and by_seeds[2]["pgr_mean"] == pytest.approx(0.6)
    assert by_seeds[2]["config_diff"] == "(versions).w2slab_source=new (main old)"
    assert by_seeds[1]["config_diff"] == "(revisions).model:minilm-l12=packaged:b (main packaged:a)"


def test_one_seed_is_printed_without_a_zero_width_interval(tmp_path):
    """summary.md showed ``1.087 [1.087, 1.087]`` for one seed: an interval over one seed has no width."""
    from w2slab.report.tables import markdown_table

    root = write_run_root(tmp_path / "one", [make_record("sciq", "minilm-l3", "minilm-l6", "xent", 0, 0.5)])
    table = markdown_table(aggregate(load_records(root)))
    row = next(line for line in table.splitlines() if line.startswith("| sciq"))
    values = [value for value in re.findall(r"\[([-0-9.]+), ([-0-9.]+)\]", row)]
    assert all(low != high for low, high in values), row  # no [x, x]
    assert "(1 of 1" in row and "0.500" in row  # the value, and how many seeds stand behind it


def test_figures_fit_a_page_and_colours_never_repeat():
    from w2slab.report.methods import FOREST_ROWS_PER_FIGURE, decomposition_figure, forest_figure, forest_groups
    from w2slab.report.plots import _colours

    assert len(set(_colours([f"s{i}" for i in range(20)]).values())) == 20
    assert len(set(_colours([f"s{i}" for i in range(30)]).values())) == 30
    rows = [{"dataset": "d", "weak": f"w{i % 4}", "strong": "s", "student": f"m{i}", "baseline": "xent",
             "diff_mean": 0.01, "diff_lo": -0.01, "diff_hi": 0.03, "oracle": False, "claimed": False}
            for i in range(80)]
    groups = forest_groups(rows)
    assert len(groups) == 4 and all(len(g) <= FOREST_ROWS_PER_FIGURE for g in groups)  # one per pair
    width, height = forest_figure("d", groups[0]).get_size_inches()
    assert width == 7 and height <= 9.5
    parts = {"corrected": 0.1, "imitated": 0.05, "changed": 0.0, "new_errors": 0.02}
    figure = decomposition_figure("d", [{"weak": "w", "strong": "s", "student": "xent", **parts}])
    labels = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert labels == ["corrected", "imitated", "new errors"]  # no always-zero "changed" for two classes


def png(path: Path, colour: tuple[int, int, int]) -> Path:
    from PIL import Image

    Image.new("RGB", (4, 4), colour).save(path)
    return path


def test_report_html_embeds_only_the_files_its_caller_wrote(tmp_path):
    """An output folder's leftovers (an earlier call's paired.md, a user's PNGs, a link to elsewhere) stay out."""
    import base64

    from w2slab.report.html import write_html

    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.md").write_text("# Summary\n\nthe table of this call\n")
    mine = png(out / "accuracy_sciq.png", (255, 0, 0))
    (out / "paired.md").write_text("# Paired\n\nleft by an earlier call\n")
    holiday = png(out / "holiday.png", (0, 255, 0))
    elsewhere = png(tmp_path / "secret.png", (0, 0, 255))
    (out / "linked.png").symlink_to(elsewhere)
    page = write_html(out, [], "t", written=[out / "summary.md", mine, out / "linked.png", elsewhere]).read_text()
    assert "the table of this call" in page and "left by an earlier call" not in page
    assert base64.b64encode(mine.read_bytes()).decode() in page
    for other in (holiday, elsewhere):
        assert base64.b64encode(other.read_bytes()).decode() not in page
    assert "linked.png" not in page and "secret.png" not in page


def test_size_figure_draws_two_configurations_at_one_strong_model(tmp_path):
    """Two configurations of one (weak, strong, loss) sit at one parameter count: the figure orders its points by
    size alone (comparing the two rows themselves stopped the report with a TypeError)."""
    from w2slab.report.plots import plot_accuracy_vs_size

    records = []
    for strong, params in (("minilm-l6", 22_000_000), ("minilm-l12", 33_000_000)):
        for changes in ({}, {"n_train": 4000}):
            record = with_config(make_record("sciq", "minilm-l3", strong, "xent", 0, 0.3), **changes)
            records.append({**record, "strong_params": params})
    records = load_records(write_run_root(tmp_path / "run", records))
    (path,) = plot_accuracy_vs_size(records, tmp_path / "out")
    assert path.stat().st_size > 0


def test_a_result_written_with_the_old_loss_key_loads_as_its_student(tmp_path):
    """Result files that name the student label ``loss`` (written before the field was called ``student``) load
    unchanged, into every report; files written now say ``student``."""
    from w2slab.results import ExperimentResult

    old = make_record("sciq", "minilm-l3", "minilm-l6", "xent+conf_filter[drop=0.2]", 0, 0.5)
    assert "loss" in old and "student" not in old
    (tmp_path / "old.json").write_text(json.dumps(old), encoding="utf-8")
    result = ExperimentResult.read(tmp_path / "old.json")
    assert result.student == "xent+conf_filter[drop=0.2]" and result.pgr == pytest.approx(0.5)
    written = json.loads(result.write(tmp_path / "new.json").read_text(encoding="utf-8"))
    assert written["student"] == result.student and "loss" not in written
    assert ExperimentResult.read(tmp_path / "new.json").to_dict() == result.to_dict()
    assert ExperimentResult.from_dict({**old, "student": "logconf"}).student == "logconf"  # the field's own name wins
    (row,) = aggregate(load_records(write_run_root(tmp_path / "run", [old])))
    assert row["loss"] == "xent+conf_filter[drop=0.2]"  # summary.csv's column keeps its name
