"""glue_runner.leaderboard: the GLUE score, aggregation over seeds, filters, reference rows, outputs.

Runs are written as the runner writes them (results.write_run), with metrics chosen so
every expected number can be worked out by hand.
"""

import csv
import io
import statistics

import pytest

from glue_runner import leaderboard, results
from glue_runner.cli import main
from glue_runner.errors import GlueRunnerError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def add_run(results_dir, model, task, seed, metrics, date="2025-03-01T12:00:00+00:00"):
    folder = results_dir / "runs" / model / f"{task}-seed{seed}-{date[:10]}"
    results.write_run(folder, {"task": task, "model_name": model, "seed": seed, "date": date,
                               "metrics": metrics}, {})


def row_of(board, model):
    return next(r for r in board.rows if r.model == model)


def test_glue_score_matches_bert_base_on_the_glue_leaderboard():
    # BERT-base's test row on gluebenchmark.com: CoLA 52.1, SST-2 93.5, MRPC 88.9/84.8,
    # STS-B 87.1/85.8, QQP 71.2/89.2, MNLI 84.6/83.4, QNLI 90.5, RTE 66.4, WNLI 65.1, AX 34.2; score 78.3.
    # By hand: 52.1 + 93.5 + 86.85 + 86.45 + 80.2 + 84.0 + 90.5 + 66.4 + 65.1 = 705.1, / 9 = 78.344.
    scores = {"CoLA": 52.1, "SST-2": 93.5, "MRPC": (88.9 + 84.8) / 2, "STS-B": (87.1 + 85.8) / 2,
              "QQP": (71.2 + 89.2) / 2, "MNLI-m": 84.6, "MNLI-mm": 83.4, "QNLI": 90.5, "RTE": 66.4,
              "WNLI": 65.1, "AX": 34.2}
    score, present, shown = leaderboard.glue_score(scores)
    assert score == pytest.approx(705.1 / 9)
    assert round(score, 1) == 78.3
    assert (present, shown) == (9, 9)


def test_glue_score_averages_each_tasks_metrics_first(tmp_path):
    # MRPC f1 0.9, acc 0.8 -> 85; CoLA 0.5 -> 50; MNLI m 0.8, mm 0.6 -> 70. Score (85 + 50 + 70) / 3.
    add_run(tmp_path, "m", "mrpc", 1, {"f1": 0.9, "accuracy": 0.8, "combined_score": 0.85})
    add_run(tmp_path, "m", "cola", 1, {"matthews_correlation": 0.5})
    add_run(tmp_path, "m", "mnli", 1, {"accuracy": 0.8, "accuracy_mm": 0.6})
    board = leaderboard.build(tmp_path)
    score, present, shown = row_of(board, "m").glue_score(board.columns)
    assert score == pytest.approx((85 + 50 + 70) / 3)
    assert (present, shown) == (3, 9)  # missing tasks are left out, not counted as zero
    assert leaderboard.format_score(row_of(board, "m"), board.columns) == "68.3 (3/9 tasks)"


def test_mean_and_sample_std_over_seeds(tmp_path):
    for seed, mcc in [(1, 0.5), (2, 0.6), (3, 0.7)]:
        add_run(tmp_path, "m", "cola", seed, {"matthews_correlation": mcc})
    add_run(tmp_path, "m", "sst2", 1, {"accuracy": 0.9})
    add_run(tmp_path, "m", "mrpc", 1, {"f1": 0.9, "accuracy": 0.8})
    add_run(tmp_path, "m", "mrpc", 2, {"f1": 0.7, "accuracy": 0.6})
    board = leaderboard.build(tmp_path)
    row = row_of(board, "m")
    assert row.seeds == (1, 2, 3)
    cola = row.cells["CoLA"]
    assert cola.mean("matthews_correlation") == pytest.approx(60.0)
    assert cola.std("matthews_correlation") == pytest.approx(10.0)  # sample std: sqrt((100 + 0 + 100) / 2)
    header, rows = leaderboard.table(board)
    cells = dict(zip(header, rows[0]))
    assert cells["CoLA"] == "60.0 ± 10.0"
    assert cells["SST-2"] == "90.0"  # one seed: no spread to show
    assert cells["MRPC (F1/Acc)"] == "80.0 ± 14.1/70.0 ± 14.1"
    assert cells["QQP (F1/Acc)"] == "–" and cells["AX"] == "–"
    # the chart's error bar: the spread of the per-seed task scores (85, 65)
    assert statistics.stdev(row.cells["MRPC"].seed_scores()) == pytest.approx(statistics.stdev([85, 65]))


def test_latest_run_per_model_task_seed_wins(tmp_path):
    add_run(tmp_path, "m", "sst2", 1, {"accuracy": 0.5}, date="2025-01-01T00:00:00+00:00")
    add_run(tmp_path, "m", "sst2", 1, {"accuracy": 0.9}, date="2025-02-01T00:00:00+00:00")
    cell = row_of(leaderboard.build(tmp_path), "m").cells["SST-2"]
    assert cell.values("accuracy") == [pytest.approx(90.0)]


def test_undefined_metric_is_missing_not_zero(tmp_path):
    add_run(tmp_path, "m", "cola", 1, {"matthews_correlation": None})
    add_run(tmp_path, "m", "sst2", 1, {"accuracy": 0.8})
    row = row_of(leaderboard.build(tmp_path), "m")
    assert "CoLA" not in row.cells
    assert row.glue_score(leaderboard.glue_columns())[:2] == (pytest.approx(80.0), 1)


def test_filters_model_task_since(tmp_path):
    add_run(tmp_path, "a", "cola", 1, {"matthews_correlation": 0.4}, date="2025-01-01T00:00:00+00:00")
    add_run(tmp_path, "a", "sst2", 1, {"accuracy": 0.9}, date="2025-06-01T00:00:00+00:00")
    add_run(tmp_path, "b", "sst2", 1, {"accuracy": 0.7}, date="2025-06-01T00:00:00+00:00")

    assert [r.model for r in leaderboard.build(tmp_path, models=["b"]).rows] == ["b"]

    board = leaderboard.build(tmp_path, tasks=["sst2", "mnli"])
    assert [c.name for c in board.columns] == ["SST-2", "MNLI-m", "MNLI-mm"]
    # the score is over the tasks shown: SST-2 present, MNLI missing
    assert leaderboard.format_score(row_of(board, "a"), board.columns) == "90.0 (1/2 tasks)"

    board = leaderboard.build(tmp_path, since=leaderboard.parse_since("2025-03-01"))
    assert "CoLA" not in row_of(board, "a").cells and "SST-2" in row_of(board, "a").cells


@pytest.mark.parametrize("kwargs, message", [
    ({"models": ["nope"]}, "no runs of model 'nope'"),
    ({"since": leaderboard.parse_since("2030-01-01")}, "no finished runs"),
])
def test_filters_that_match_nothing_say_so(tmp_path, kwargs, message):
    add_run(tmp_path, "a", "sst2", 1, {"accuracy": 0.9})
    with pytest.raises(GlueRunnerError, match=message):
        leaderboard.build(tmp_path, **kwargs)


def test_bad_since_is_one_clear_error():
    with pytest.raises(GlueRunnerError, match="YYYY-MM-DD"):
        leaderboard.parse_since("last week")


def test_reference_rows_reproduce_their_published_macro_scores(tmp_path):
    board = leaderboard.build(tmp_path, reference=True)  # no runs needed for published rows
    assert {r.model for r in board.rows} == {"BERT-base-uncased (published)", "DistilBERT-base-uncased (published)",
                                             "MiniLM-L6-H384-uncased (published)", "ELECTRA-Small (published)"}
    assert all(r.source.startswith("https://") for r in board.rows)
    # the DistilBERT README prints macro-scores 79.5 and 77.0 for these rows
    assert round(row_of(board, "BERT-base-uncased (published)").glue_score(board.columns)[0], 1) == 79.5
    assert round(row_of(board, "DistilBERT-base-uncased (published)").glue_score(board.columns)[0], 1) == 77.0
    # a metric the source names goes in its place; one it leaves unstated is shown alone
    electra = row_of(board, "ELECTRA-Small (published)")
    assert leaderboard.format_cell(electra.cells["MRPC"], board.columns[2]) == "–/88.0"
    bert = row_of(board, "BERT-base-uncased (published)")
    assert leaderboard.format_cell(bert.cells["MRPC"], board.columns[2]) == "88.6"
    assert "WNLI" not in electra.cells
    assert "Published rows:" in leaderboard.markdown(board)


def test_write_makes_markdown_csv_and_png(tmp_path):
    add_run(tmp_path, "m", "cola", 1, {"matthews_correlation": 0.5})
    add_run(tmp_path, "m", "cola", 2, {"matthews_correlation": 0.3})
    board = leaderboard.build(tmp_path, reference=True)
    md, csv_path, png = leaderboard.write(board, tmp_path)
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    text = md.read_text()
    assert "| Model | Seeds | CoLA | SST-2 | MRPC (F1/Acc) | STS-B (Pearson/Spearman) | QQP (F1/Acc) | MNLI-m | " \
           "MNLI-mm | QNLI | RTE | WNLI | AX | GLUE score |" in text
    assert "| m | 1,2 | 40.0 ± 14.1 | – |" in text
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    mine = next(r for r in rows if r["model"] == "m")
    assert mine["CoLA matthews_correlation"] == "40.0000"
    assert mine["SST-2 accuracy"] == "" and mine["glue_tasks"] == "1/9"
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary files left behind


def test_leaderboard_command(tmp_path, capsys):
    add_run(tmp_path, "m", "sst2", 1, {"accuracy": 0.9})
    assert main(["leaderboard", "--results-dir", str(tmp_path), "--task", "sst2,cola", "--reference"]) == 0
    out = capsys.readouterr().out
    assert "m" in out and "90.0" in out and "ELECTRA-Small (published)" in out
    assert (tmp_path / "leaderboard.png").read_bytes().startswith(PNG_SIGNATURE)

    assert main(["leaderboard", "--results-dir", str(tmp_path), "--since", "soon"]) == 2
    assert main(["leaderboard", "--results-dir", str(tmp_path / "missing")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["leaderboard", "--results-dir", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "YYYY-MM-DD" in err and "no finished runs" in err
    assert "missing does not exist" in err and not (tmp_path / "missing").exists()  # not made by reading it


def test_the_chart_title_and_legend_fit_inside_the_picture(tmp_path):
    import matplotlib.pyplot as plt

    # Few columns make a narrow figure, and long names a wide legend: beside the bars it squeezed
    # the axes, and the title over them started left of the picture.
    long = "sentence-transformers/all-MiniLM-L6-v2-tapt (learning_rate=2e-05, num_train_epochs=3.0, batch_size=16)"
    for model in ("all-MiniLM-L6-v2", "all-MiniLM-L6-v2_run-glue-defaults", long):
        add_run(tmp_path, model, "cola", 1, {"matthews_correlation": 0.5})
        add_run(tmp_path, model, "sst2", 1, {"accuracy": 0.8})
    fig = leaderboard.chart(leaderboard.build(tmp_path))
    fig.canvas.draw()
    width, height = fig.canvas.get_width_height()
    for artist in (fig._suptitle, fig.legends[0], fig.axes[0]):
        box = artist.get_window_extent()
        assert box.x0 >= 0 and box.x1 <= width and box.y0 >= 0 and box.y1 <= height, artist
    assert fig.axes[0].get_window_extent().width > width / 2  # the bars keep the picture's width
    plt.close(fig)
