"""The real thing: GLUE files from ../shared/glue_data and the real MiniLM (skipped when absent)."""

import json
from pathlib import Path

import pytest

from glue_runner import data
from glue_runner.config import RunConfig
from glue_runner.tasks import get_task

REAL_ROWS = {"cola": (8551, 1043), "sst2": (67349, 872), "mrpc": (3668, 408), "stsb": (5749, 1500)}


@pytest.mark.parametrize("task", sorted(REAL_ROWS))
def test_real_glue_files_parse_completely(shared_glue, task):
    spec = get_task(task)
    splits = data.load_splits(spec, RunConfig(task=task, model="x", data_dir=shared_glue), log=lambda *a: None)
    assert (len(splits["train"].dataset), len(splits["validation"].dataset)) == REAL_ROWS[task]
    assert splits["train"].skipped == 0


def test_minilm_fine_tunes_on_real_cola(shared_glue, minilm, tmp_path, monkeypatch):
    from glue_runner.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["--task", "cola", "--data-dir", str(shared_glue), "--model", str(minilm),
                 "--model-name", "all-MiniLM-L6-v2", "--max-train-samples", "128", "--max-eval-samples", "64",
                 "--num-train-epochs", "1", "--cache-dir", str(tmp_path / "cache")]) == 0
    record = json.loads(Path("results/runs/all-MiniLM-L6-v2/cola-seed42/metrics.json").read_text())
    assert -1.0 <= record["metrics"]["matthews_correlation"] <= 1.0
    assert record["data"]["examples"] == {"train": 128, "validation": 64}
