"""Every score beside its baseline: what predicting the most frequent training label scores, in
metrics.json, under the metrics table, in runs.md and on the leaderboard, with a warning for a run
that does not beat it."""

import csv
import json
import random
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from glue_runner import leaderboard, results, tables
from glue_runner.model import Labels
from glue_runner.scoring import BASELINE_MARGIN, baseline
from glue_runner.tasks import get_task

FAST = ["--num-train-epochs", "1", "--batch-size", "8", "--learning-rate", "1e-3"]


def split(labels):
    return SimpleNamespace(dataset={"label": labels})


def trivial(task, train, dev):
    return baseline(task, Labels(task, tuple(range(max(task.num_labels, 1)))), train, {"validation": split(dev)})


def test_mrpc_all_equivalent_scores_its_f1_and_accuracy():
    # training: 7 of 10 equivalent; dev: 6 of 8. All-"equivalent": accuracy 6/8, F1 2*6/(2*6+2) = 6/7.
    b = trivial(get_task("mrpc"), [1] * 7 + [0] * 3, [1] * 6 + [0] * 2)
    assert b.metrics["accuracy"] == pytest.approx(0.75)
    assert b.metrics["f1"] == pytest.approx(6 / 7, abs=1e-6)
    assert "'equivalent', 70% of training" in b.predictor
    assert b.main_scores({"f1": 0.9, "accuracy": 0.8}, "validation") == (pytest.approx(0.85),
                                                                         pytest.approx((6 / 7 + 0.75) / 2, abs=1e-6))


def test_the_training_labels_choose_the_class_not_the_dev_labels():
    # training mostly 0, dev mostly 1: the baseline predicts 0, and scores dev's minority share
    b = trivial(get_task("sst2"), [0] * 6 + [1] * 4, [1] * 9 + [0])
    assert b.metrics["accuracy"] == pytest.approx(0.1)


def test_cola_chance_is_mcc_zero_and_stsb_chance_is_zero_correlation():
    assert trivial(get_task("cola"), [1, 1, 0], [1, 0, 1, 0]).metrics == {"matthews_correlation": 0.0}
    b = trivial(get_task("stsb"), [1.0, 2.0, 3.0], [0.5, 4.0, 2.5])
    assert b.metrics == {"pearson": 0.0, "spearmanr": 0.0, "combined_score": 0.0}  # a constant has no correlation
    assert "training mean (2.000)" in b.predictor


def test_multi_label_predicts_each_labels_own_majority():
    task = replace(get_task("sst2"), problem_type="multi_label", label_names=("a", "b", "c"),
                   metrics=("f1_micro", "f1_macro", "subset_accuracy"))
    train = [[1, 0, 0], [1, 1, 0], [1, 0, 0], [0, 1, 0]]  # a: 3/4 on, b: 2/4 (not a majority), c: 0/4
    b = trivial(task, train, [[1, 0, 0], [0, 1, 0]])
    assert "(a)" in b.predictor
    assert b.metrics["subset_accuracy"] == pytest.approx(0.5)
    assert b.metrics["f1_micro"] == pytest.approx(2 * 1 / (2 * 1 + 1 + 1))  # TP 1, FP 1 (a on row 2), FN 1 (b)


def test_mnli_scores_both_dev_splits_and_a_split_not_beaten_is_named():
    task = get_task("mnli")
    b = baseline(task, Labels(task, (0, 1, 2)), [0, 0, 1, 2], {"validation_matched": split([0, 1, 2, 0]),
                                                               "validation_mismatched": split([1, 1, 2, 0])})
    assert b.metrics == {"accuracy": 0.5, "accuracy_mm": 0.25}
    assert b.not_beaten({"accuracy": 0.9, "accuracy_mm": 0.25 + BASELINE_MARGIN / 2}) == ["validation_mismatched"]
    assert b.not_beaten({"accuracy": 0.9, "accuracy_mm": 0.3}) == []
    assert b.not_beaten({"accuracy": None, "accuracy_mm": 0.3}) == ["validation_matched"]  # undefined is no evidence


def test_no_training_labels_no_baseline():
    assert trivial(get_task("ax"), None, [0, 1]) is None


def labelled(path: Path, n: int, seed: int, learnable: bool) -> Path:
    """A CSV labelled 80% "common": by its text ("cat" or "dog"), or, not learnable, at random, so the best a
    model can do is the baseline."""
    rng = random.Random(seed)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for _ in range(n):
            common = rng.random() < 0.8
            animal = ("cat" if common else "dog") if learnable else rng.choice(["cat", "dog"])
            writer.writerow([f"the {rng.choice(['big', 'small', 'red'])} {animal} was good", "common" if common else "rare"])
    return path


def test_a_run_that_learns_nothing_ends_with_a_warning_and_is_marked(run_cli, tmp_path, capsys):
    train, dev = labelled(tmp_path / "train.csv", 64, 0, False), labelled(tmp_path / "dev.csv", 32, 1, False)
    assert run_cli("--train-file", str(train), "--validation-file", str(dev), *FAST, data=False) == 0
    out = capsys.readouterr().err
    [found] = Path("results").glob("runs/*/*/metrics.json")
    record = json.loads(found.read_text())
    assert record["baseline"]["beaten"] is False
    assert "'common'" in record["baseline"]["predictor"]
    assert set(record["baseline"]["metrics"]) == set(record["metrics"])
    assert "baseline" in out.split("wrote")[0]  # the table's column and caption
    warning = " ".join(out.split("wrote")[-1].split())
    assert "learned nothing usable" in warning and "--learning-rate 0.001" in warning and "--probe" in warning
    assert tables.NOT_BEATEN in Path("results/runs.md").read_text()


def test_a_run_that_learns_beats_its_baseline_silently(run_cli, tmp_path, capsys):
    train, dev = labelled(tmp_path / "train.csv", 64, 0, True), labelled(tmp_path / "dev.csv", 32, 1, True)
    # the tiny model needs more than FAST to learn even a one-word cue
    assert run_cli("--train-file", str(train), "--validation-file", str(dev), *FAST, "--num-train-epochs", "6",
                   "--learning-rate", "5e-3", data=False) == 0
    [found] = Path("results").glob("runs/*/*/metrics.json")
    record = json.loads(found.read_text())
    assert record["baseline"]["beaten"] is True, (record["metrics"], record["baseline"])
    assert "learned nothing" not in capsys.readouterr().err
    row = next(csv.DictReader(open("results/runs.csv")))
    assert row["baseline"] == " · ".join(f"{name} {record['baseline']['metrics'][name]:.4f}"
                                         for name in ("accuracy", "f1_macro"))
    assert tables.NOT_BEATEN not in row["notes"]


def test_an_untrained_run_is_marked_without_the_advice(run_cli, capsys):
    assert run_cli("--task", "cola", "--num-train-epochs", "0", "--output-dir", "run") == 0
    record = json.loads(Path("run/metrics.json").read_text())
    assert "baseline" in record
    assert "learned nothing" not in capsys.readouterr().err  # not trained: nothing to advise


def add_run(results_dir, seed, beaten):
    results.write_run(results_dir / "runs" / "m" / f"mrpc-seed{seed}", {
        "task": "mrpc", "model_name": "m", "seed": seed, "date": "2026-01-01T00:00:00+00:00",
        "metrics": {"f1": 0.81, "accuracy": 0.68},
        "baseline": {"predictor": "p", "metrics": {"f1": 0.8122, "accuracy": 0.6838}, "beaten": beaten}}, {})


def test_the_leaderboard_marks_a_cell_with_a_seed_below_its_baseline(tmp_path):
    add_run(tmp_path, 1, True)
    add_run(tmp_path, 2, False)
    board = leaderboard.build(tmp_path)
    header, rows = leaderboard.table(board)
    assert rows[0][header.index("MRPC (F1/Acc)")].endswith(leaderboard.NOT_BEATEN_MARK)
    assert tables.NOT_BEATEN not in rows[0][-1]  # the cell says it, not the row's notes
    assert any(note.startswith(leaderboard.NOT_BEATEN_MARK) for note in leaderboard.footnotes(board))
    assert leaderboard.NOT_BEATEN_MARK in leaderboard.markdown(board)


def test_a_leaderboard_of_runs_that_beat_their_baselines_has_no_mark(tmp_path):
    add_run(tmp_path, 1, True)
    board = leaderboard.build(tmp_path)
    assert leaderboard.NOT_BEATEN_MARK not in leaderboard.markdown(board)


def test_glue_chance_levels_on_the_real_dev_sets(shared_glue):
    """The known chance levels: CoLA MCC 0, MRPC F1 0.81 (all "equivalent"), RTE accuracy 0.53, SST-2 0.51."""
    from glue_runner import data
    from glue_runner.config import RunConfig

    found = {}
    for name in ("cola", "sst2", "mrpc", "rte", "stsb"):
        cfg = RunConfig(task=name, model="m", data_dir=str(shared_glue))
        task = data.task_for(cfg)
        splits = data.load_splits(task, cfg, log=lambda *a, **k: None, with_test=False)
        found[name] = baseline(task, Labels(task, tuple(range(max(task.num_labels, 1)))),
                               splits["train"].dataset["label"], splits).metrics
    assert found["cola"] == {"matthews_correlation": 0.0}
    assert found["mrpc"]["f1"] == pytest.approx(0.8122, abs=1e-4)
    assert found["mrpc"]["accuracy"] == pytest.approx(0.6838, abs=1e-4)
    assert found["rte"]["accuracy"] == pytest.approx(0.527, abs=1e-3)
    assert found["sst2"]["accuracy"] == pytest.approx(0.5092, abs=1e-4)
    assert found["stsb"]["pearson"] == 0.0


def test_a_smoke_run_checks_the_pipeline_without_the_advice(run_cli, capsys):
    assert run_cli("--task", "wnli", "--smoke", "--output-dir", "run", data=False) == 0
    record = json.loads(Path("run/metrics.json").read_text())
    assert "baseline" in record  # still measured, and noted in runs.md when not beaten
    assert "learned nothing" not in capsys.readouterr().err
