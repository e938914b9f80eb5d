"""End to end: glue-run on every task with the tiny model and the fixture GLUE folder."""

import csv
import json
from pathlib import Path

import pytest
from fixtures import ROWS

from glue_runner.tasks import glue_tasks

GLUE_ORDER = [t.name for t in glue_tasks()]

EXPECTED_METRICS = {
    "cola": {"matthews_correlation"},
    "sst2": {"accuracy"}, "qnli": {"accuracy"}, "rte": {"accuracy"}, "wnli": {"accuracy"},
    "mrpc": {"f1", "accuracy", "combined_score"},
    "qqp": {"f1", "accuracy", "combined_score"},
    "stsb": {"pearson", "spearmanr", "combined_score"},
    "mnli": {"accuracy", "accuracy_mm"},
}
FOLDER = {"cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC", "stsb": "STS-B", "qqp": "QQP", "mnli": "MNLI",
          "qnli": "QNLI", "rte": "RTE", "wnli": "WNLI"}
FAST = ["--num-train-epochs", "1", "--batch-size", "8", "--learning-rate", "1e-3"]


def read_tsv(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def run_dir(task: str, seed: int = 42) -> Path:
    return Path("results") / "runs" / "tiny-bert" / f"{task}-seed{seed}"


@pytest.mark.parametrize("task", [t for t in GLUE_ORDER if t != "ax"])
def test_every_task_end_to_end(run_cli, task):
    assert run_cli("--task", task, *FAST, "--do-predict") == 0
    record = json.loads((run_dir(task) / "metrics.json").read_text())
    assert set(record["metrics"]) == EXPECTED_METRICS[task]
    assert record["task"] == task and record["model_name"] == "tiny-bert" and record["seed"] == 42
    assert record["train"]["samples"] == ROWS[(FOLDER[task], "train.tsv")]  # one epoch: every example once
    assert record["train"]["samples_per_second"] > 0 and record["config"]["learning_rate"] == 1e-3
    assert {"torch", "transformers", "datasets"} <= set(record["versions"])
    assert len(record["epochs"]) == 1
    for split in ("validation_matched", "validation_mismatched") if task == "mnli" else ("validation",):
        rows = read_tsv(run_dir(task) / f"predictions_{split}.tsv")
        assert rows[0] == ["index", "prediction", "label"] and len(rows) == 1 + 24
    for split in ("test_matched", "test_mismatched") if task == "mnli" else ("test",):
        rows = read_tsv(run_dir(task) / f"predictions_{split}.tsv")
        assert rows[0] == ["index", "prediction"] and len(rows) == 1 + 20
    table = list(csv.DictReader(open("results/runs.csv")))
    assert [(r["task"], r["model"], r["seed"]) for r in table] == [(task, "tiny-bert", "42")]
    assert f"| {task} | tiny-bert | 42 |" in Path("results/runs.md").read_text()


def test_mnli_then_ax_predicts_the_diagnostic_set_with_the_mnli_model(run_cli):
    assert run_cli("--task", "ax,mnli", *FAST) == 0
    rows = read_tsv(run_dir("ax") / "predictions_test.tsv")
    assert len(rows) == 1 + 20 and {r[1] for r in rows[1:]} <= {"entailment", "neutral", "contradiction"}
    assert json.loads((run_dir("ax") / "metrics.json").read_text())["metrics"] == {}


def test_same_seed_same_metrics(run_cli):
    args = ["--task", "rte", "--num-train-epochs", "2", "--batch-size", "4", "--learning-rate", "3e-3"]
    assert run_cli(*args, "--output-dir", "a") == 0
    assert run_cli(*args, "--output-dir", "b") == 0
    assert run_cli(*args, "--output-dir", "c", "--seed", "7") == 0
    a, b, c = (json.loads(Path(d, "metrics.json").read_text()) for d in "abc")
    assert a["metrics"] == b["metrics"] and a["train"]["final_loss"] == b["train"]["final_loss"]
    assert a["train"]["final_loss"] != c["train"]["final_loss"]


def test_several_tasks_and_seeds_each_get_a_run(run_cli):
    assert run_cli("--task", "rte,wnli", "--seeds", "1,2", *FAST, "--max-train-samples", "8") == 0
    table = list(csv.DictReader(open("results/runs.csv")))
    assert sorted((r["task"], r["seed"]) for r in table) == [("rte", "1"), ("rte", "2"), ("wnli", "1"), ("wnli", "2")]


def test_gradient_accumulation_and_bf16_on_cpu(run_cli):
    assert run_cli("--task", "sst2", *FAST, "--gradient-accumulation-steps", "3", "--bf16") == 0
    record = json.loads((run_dir("sst2") / "metrics.json").read_text())
    assert record["train"]["steps"] == 48 // 8 // 3  # optimizer steps, not micro-batches


def test_own_files(run_cli, tmp_path):
    rows = "".join(f"{'good' if i % 2 else 'bad'} film {i},{i % 2}\n" for i in range(20))
    (tmp_path / "train.csv").write_text("review,stars\n" + rows)
    assert run_cli("--task", "sst2", *FAST, "--train-file", "train.csv", "--validation-file", "train.csv",
                   "--text-columns", "review", "--label-column", "stars", "--output-dir", "own", data=False) == 0
    assert json.loads(Path("own/metrics.json").read_text())["data"]["examples"] == {"train": 20, "validation": 20}


@pytest.mark.parametrize("args, message", [
    (["--task", "squad"], "unknown task 'squad'"),
    (["--task", "cola", "--data-dir", "nowhere"], "nowhere/CoLA does not exist"),
    (["--task", "cola", "--fp16", "--device", "cpu"], "--fp16 needs a CUDA GPU"),
    (["--task", "cola", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["--task", "cola", "--seeds", "1,x"], "--seeds '1,x' is not a comma list of ints"),
    (["--task", "ax"], "ax is predicted with a model fine-tuned on mnli"),
])
def test_bad_input_is_one_clear_line_and_exit_2(run_cli, capsys, args, message):
    data = "--data-dir" not in args
    assert run_cli(*args, data=data) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err
    assert err.strip().startswith("error:")
    assert not Path("results/runs.csv").exists()


def test_missing_model_is_one_clear_line(run_cli, capsys):
    assert run_cli("--task", "cola", "--model", "./no-such-model", model=False) == 2
    assert "model folder ./no-such-model does not exist" in capsys.readouterr().err
    Path("a-file").write_text("weights?")
    assert run_cli("--task", "cola", "--model", "./a-file", model=False) == 2
    assert "./a-file is a file, not a model folder" in capsys.readouterr().err


def test_a_folder_given_as_a_file_is_said_to_be_a_folder(run_cli, tmp_path, capsys):
    (tmp_path / "data").mkdir()
    assert run_cli("--task", "sst2", "--train-file", str(tmp_path / "data"), "--validation-file",
                   str(tmp_path / "data"), data=False) == 2
    assert f"{tmp_path / 'data'} is a folder, not a file (given as --train-file)" in capsys.readouterr().err


def test_console_script_is_installed():
    import shutil
    import subprocess

    exe = shutil.which("glue-run")
    assert exe, "pip install -e . should install the glue-run command"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--max-seq-length" in out.stdout and "--gradient-accumulation-steps" in out.stdout


def test_do_predict_without_test_files_fails_before_training(run_cli, glue_dir, tmp_path, capsys):
    import shutil

    data = tmp_path / "no-test"
    shutil.copytree(glue_dir / "RTE", data / "RTE")
    (data / "RTE" / "test.tsv").unlink()
    assert run_cli("--task", "rte", *FAST, "--do-predict", "--data-dir", str(data), data=False) == 2
    err = capsys.readouterr().err
    assert "--do-predict: no test data for rte (test)" in " ".join(err.split())
    assert "epoch 1" not in err


def test_without_do_predict_the_test_files_are_not_read(run_cli, glue_dir, tmp_path):
    import shutil

    data = tmp_path / "broken-test"
    shutil.copytree(glue_dir / "RTE", data / "RTE")
    (data / "RTE" / "test.tsv").write_bytes(b"\xff\xfe not even text")
    assert run_cli("--task", "rte", *FAST, "--data-dir", str(data), data=False) == 0
    assert json.loads((run_dir("rte") / "metrics.json").read_text())["data"]["examples"] == {
        "train": 48, "validation": 24}


def test_an_output_dir_outside_the_results_folder_is_said_to_stay_out_of_its_tables(run_cli, capsys):
    args = ["--task", "rte", "--num-train-epochs", "0"]
    assert run_cli(*args, "--output-dir", "elsewhere") == 0
    assert "--output-dir elsewhere is outside --results-dir results, so runs.md and the leaderboard there will not " \
           "list it" in capsys.readouterr().err
    assert run_cli(*args, "--output-dir", "results/mine", "--seed", "2") == 0
    assert "outside --results-dir" not in capsys.readouterr().err
