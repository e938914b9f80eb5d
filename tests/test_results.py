import csv
import errno
import json
import os
from pathlib import Path

import pytest

from glue_runner import files, results, tables
from glue_runner.errors import GlueRunnerError


@pytest.mark.parametrize("name, expected", [
    ("bert-base-uncased", "bert-base-uncased"),
    ("google/electra-small-discriminator", "google__electra-small-discriminator"),
    ("../../etc/passwd", "etc__passwd"),
    ("..", "unnamed"),
    ("a b:c", "a_b_c"),
])
def test_safe_name_stays_inside_its_folder(name, expected):
    assert results.safe_name(name) == expected
    assert "/" not in results.safe_name(name) and not results.safe_name(name).startswith(".")


def test_write_atomic_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")

    with pytest.raises(TypeError):
        files.write_atomic(target, 42)  # fails mid-write
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left behind


def test_metrics_json_refuses_nan(tmp_path):
    with pytest.raises(ValueError):
        results.write_run(tmp_path / "run", {"task": "cola", "metrics": {"x": float("nan")}}, {})
    assert not (tmp_path / "run" / "metrics.json").exists()


def record(task, model, seed, **metrics):
    return {"task": task, "model_name": model, "seed": seed, "date": f"2026-11-0{seed}", "metrics": metrics,
            "train": {"samples": 10, "samples_per_second": 5.0, "seconds": 2.0}}


def test_tables_are_regenerated_from_every_run_and_name_the_unreadable_ones(tmp_path):
    results.write_run(tmp_path / "runs" / "a", record("cola", "m1", 1, matthews_correlation=0.5), {})
    results.write_run(tmp_path / "runs" / "b", record("mrpc", "m2", 2, f1=0.9, accuracy=0.8, combined_score=0.85), {})
    (tmp_path / "runs" / "broken").mkdir()
    (tmp_path / "runs" / "broken" / "metrics.json").write_text("{half")  # cut short: kept, named, never dropped
    unreadable = tables.update_tables(tmp_path)
    assert [u.path for u in unreadable] == [tmp_path / "runs" / "broken" / "metrics.json"]
    rows = list(csv.DictReader(open(tmp_path / "runs.csv")))
    assert [(r["task"], r["model"], r["matthews_correlation"], r["f1"]) for r in rows[:2]] == [
        ("cola", "m1", "0.5000", ""), ("mrpc", "m2", "", "0.9000")]
    assert rows[2]["run"] == "runs/broken" and rows[2]["notes"].startswith("UNREADABLE: ")
    # GLUE metrics in the leaderboard's order (from tasks/*.yaml), any others after them
    assert list(rows[0])[4:8] == ["matthews_correlation", "accuracy", "f1", "combined_score"]
    md = (tmp_path / "runs.md").read_text()
    assert "| cola | m1 | 1 | 0.5000 | – |" in md and "UNREADABLE" in md
    assert (tmp_path / "runs" / "broken" / "metrics.json").read_text() == "{half"


def test_write_run_renames_predictions_before_metrics(tmp_path, monkeypatch):
    order = []
    real = os.replace
    monkeypatch.setattr(results.os, "replace", lambda a, b: (order.append(Path(b).name), real(a, b)))
    results.write_run(tmp_path, record("cola", "m", 1), {"predictions_validation.tsv": "index\tprediction\n"})
    assert order == ["predictions_validation.tsv", "metrics.json"]
    assert json.loads((tmp_path / "metrics.json").read_text())["task"] == "cola"


def test_a_full_disk_leaves_no_predictions_without_metrics(tmp_path, monkeypatch):
    """The old result stays whole, and no new file appears: never predictions without their metrics.json."""
    results.write_run(tmp_path, record("cola", "m", 1, matthews_correlation=0.5), {"predictions_validation.tsv": "old"})
    real = files.stage

    def staged(path, text):
        if path.name == "metrics.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, text)

    monkeypatch.setattr(results, "stage", staged)
    with pytest.raises(GlueRunnerError, match="could not write the results of .*No space left on device.*None of them "
                                              "was written. Free some space, then run the same command again"):
        results.write_run(tmp_path, record("cola", "m", 2, matthews_correlation=0.9),
                          {"predictions_validation.tsv": "new", "predictions_test.tsv": "new"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "predictions_validation.tsv"]
    assert (tmp_path / "predictions_validation.tsv").read_text() == "old"
    assert json.loads((tmp_path / "metrics.json").read_text())["seed"] == 1


def test_a_new_result_removes_the_prediction_files_it_does_not_have(tmp_path):
    results.write_run(tmp_path, record("cola", "m", 1), {"predictions_validation.tsv": "a", "predictions_test.tsv": "b"})
    results.write_run(tmp_path, record("cola", "m", 1), {"predictions_validation.tsv": "c"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "predictions_validation.tsv"]
