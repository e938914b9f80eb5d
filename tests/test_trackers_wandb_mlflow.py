"""--report-to wandb and mlflow with the real libraries, and all three trackers at once.

W&B runs offline and its run is read back from the .wandb file it writes (what `wandb sync` uploads);
MLflow logs to a SQLite store, and once to a real `mlflow server`, and is read back with MlflowClient.
"""

import importlib.util
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from pathlib import Path

import pytest
import torch

from glue_runner import run, trackers
from glue_runner.config import RunConfig
from glue_runner.errors import GlueRunnerError
from glue_runner.train import Runtime
from test_checkpoint import crash_after  # the process 'dies' right after its n-th checkpoint
from test_trackers import ARGS, LOGGING_STEPS, scalars

METRICS = ("accuracy", "accuracy_mm")  # MNLI's, one per dev set
EXPERIMENT = "glue-runner-tests"


# ---- W&B: an offline run's .wandb file --------------------------------------

@pytest.fixture
def offline_wandb(monkeypatch, tmp_path):
    """W&B offline; the test may set more of its environment variables before its first run."""
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    for name in ("WANDB_PROJECT", "WANDB_DIR", "WANDB_RUN_ID", "WANDB_RESUME", "WANDB_NAME", "WANDB_TAGS"):
        monkeypatch.delenv(name, raising=False)
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):  # W&B's own files, out of the home folder
        monkeypatch.setenv(name, str(tmp_path / "wandb-home" / name.lower()))
    wandb.teardown()  # W&B reads its environment once a session (a process, for glue-run): a new one for each test
    yield
    wandb.teardown()


BLOCK, HEADER = 32768, 7  # W&B's transaction log: LevelDB's log format, 32 KiB blocks of chunks with 7-byte headers
FULL, LAST = 1, 4


def wandb_records(path: Path):
    """The Records (wandb_internal_pb2) in a .wandb file, each checked against its CRC-32."""
    from wandb.proto.wandb_internal_pb2 import Record

    data = path.read_bytes()
    assert struct.unpack("<4sHB", data[:HEADER]) == (b":W&B", 0xBEE1, 0)  # ident, magic, version
    position, chunks = HEADER, []
    while position + HEADER <= len(data):
        room = BLOCK - position % BLOCK
        checksum, length, kind = struct.unpack("<IHB", data[position:position + HEADER])
        if room < HEADER or kind == 0:  # the rest of the block is padding
            position += room
            continue
        chunk = data[position + HEADER:position + HEADER + length]
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) == checksum
        chunks.append(chunk)
        position += HEADER + length
        if kind in (FULL, LAST):
            yield Record.FromString(b"".join(chunks))
            chunks = []


def wandb_run(folder: Path) -> dict:
    """One offline run folder (wandb/offline-run-<time>-<id>) as W&B would show it: its identity, config,
    history rows, summary and saved files."""
    [path] = folder.glob("run-*.wandb")
    run = {"config": {}, "history": [], "summary": {}, "files": []}

    def items(updates) -> dict:
        return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in updates}

    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run |= {"id": record.run.run_id, "name": record.run.display_name, "project": record.run.project,
                    "tags": list(record.run.tags)}
            run["config"] |= items(record.run.config.update)
        elif kind == "config":
            run["config"] |= items(record.config.update)
        elif kind == "history":
            run["history"].append(items(record.history.item))
        elif kind == "summary":
            run["summary"] |= items(record.summary.update)
        elif kind == "files":
            run["files"] += [file.path for file in record.files.files]
    run["config"].pop("_wandb", None)  # W&B's own
    return run


def wandb_runs(wandb_dir: Path) -> list[dict]:
    """The offline runs under a wandb/ folder, oldest first: one per try of the run (a resumed one has its own)."""
    return [wandb_run(folder) for folder in sorted(wandb_dir.glob("offline-run-*"))]


def history(runs: list[dict], key: str) -> list[tuple[int, float]]:
    """(step, value) of key over the runs' history, on its loop's axis (train/step, or adapt/step)."""
    axis = "adapt/step" if key.startswith("adapt/") else "train/step"
    return [(row[axis], row[key]) for run in runs for row in run["history"] if key in row]


# ---- MLflow: a SQLite store, and a server ------------------------------------

@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory) -> str:
    """One SQLite store for the session (making its tables takes seconds), with an experiment for the tests."""
    mlflow = pytest.importorskip("mlflow")
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as m:
        m.chdir(folder)  # the store's default artifact root is ./mlruns where it is first opened
        mlflow.MlflowClient(uri).create_experiment(EXPERIMENT, artifact_location=(folder / "artifacts").as_uri())
    return uri


def use_mlflow(monkeypatch, uri: str, experiment: str | None):
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for name in ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    if experiment:
        monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", experiment)
    return MlflowClient(uri)


@pytest.fixture
def mlflow_client(monkeypatch, mlflow_store):
    return use_mlflow(monkeypatch, mlflow_store, EXPERIMENT)


@pytest.fixture
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` on 127.0.0.1 and a free port, its own SQLite store and artifacts; its URL."""
    pytest.importorskip("mlflow")
    folder = tmp_path_factory.mktemp("mlflow-server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = folder / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination",
             str(folder / "artifacts")],
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # its job runner: seconds to stop
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # a group: the server and its worker
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # it starts in about 10 s, several times that on a busy machine
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow server did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def run_ids(folder: str = "run") -> dict:
    return json.loads((Path(folder) / trackers.RUNS).read_text())


def mlflow_history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def artifact_text(client, run_id: str, path: str, tmp_path: Path) -> str:
    return Path(client.download_artifacts(run_id, path, str(tmp_path))).read_text()


# ---- the names -----------------------------------------------------------------

@pytest.mark.parametrize("report_to, says", [
    ("wandb,tensorbord", "unknown tracker 'tensorbord'; choose from tensorboard, wandb, mlflow (a comma list), "
                         "all (those installed) or none"),
    ("none,wandb", "all and none stand alone"),
    (",", "empty"),
])
def test_report_to_names_are_checked_before_anything_loads(run_cli, monkeypatch, capsys, report_to, says):
    monkeypatch.setattr(run, "load_model", lambda *a: pytest.fail("the model was loaded"))
    assert run_cli(*ARGS, "--report-to", report_to, "--output-dir", "run") == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error: --report-to") and says in err and "Traceback" not in err
    assert not Path("run").exists()


@pytest.mark.parametrize("missing", ["wandb", "mlflow"])
def test_without_its_package_a_tracker_fails_before_loading_anything(run_cli, monkeypatch, capsys, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # None in sys.modules: find_spec finds nothing
    monkeypatch.setattr(run, "load_model", lambda *a: pytest.fail("the model was loaded"))
    assert run_cli(*ARGS, "--report-to", f"tensorboard,{missing}", "--output-dir", "run") == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err == f'error: --report-to {missing} needs the {missing} package: pip install "glue-runner[{missing}]"'
    assert not Path("run").exists()


def test_all_is_the_trackers_installed(monkeypatch):
    if not all(importlib.util.find_spec(name) for name in trackers.NAMES):
        pytest.skip("the test extra installs the three trackers; some are missing here")
    assert trackers.chosen("all") == ["tensorboard", "wandb", "mlflow"]
    assert trackers.chosen(" MLflow, wandb ,mlflow") == ["mlflow", "wandb"]  # as given, once each
    assert trackers.chosen("none") == []
    monkeypatch.setitem(sys.modules, "wandb", None)
    assert trackers.chosen("all") == ["tensorboard", "mlflow"]
    for name in trackers.NAMES:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(GlueRunnerError, match='none of tensorboard, wandb, mlflow is installed; pip install '
                                              '"glue-runner\\[tensorboard,wandb,mlflow\\]"'):
        trackers.chosen("all")


def test_only_rank_0_starts_tracker_runs(tmp_path, offline_wandb, mlflow_client):
    cfg = RunConfig(task="mnli", model="m", report_to="wandb,mlflow")
    tracker = trackers.start(cfg, tmp_path / "rank1", Runtime(torch.device("cpu"), 1, 2), None)
    assert type(tracker) is trackers.Tracker  # drops everything
    with tracker:
        tracker.log_epoch({"epoch": 1, "accuracy": 0.5})
        tracker.final({"metrics": {"accuracy": 0.5}}, [])
    assert not (tmp_path / "rank1").exists()


# ---- each tracker ------------------------------------------------------------

def test_wandb_gets_the_steps_the_settings_the_identity_and_the_model_card(run_cli, offline_wandb):
    assert run_cli(*ARGS, "--report-to", "wandb", "--save-model", "--output-dir", "run") == 0
    record = json.loads(Path("run/metrics.json").read_text())
    [got] = runs = wandb_runs(Path("run/wandb"))  # no WANDB_DIR: beside the run's own files
    assert got["id"] == run_ids()["wandb"]
    assert (got["project"], got["name"], got["tags"]) == ("glue-runner", "tiny-bert/mnli-seed42",
                                                          ["task:mnli", "model:tiny-bert", "seed:42"])
    assert got["config"] == record["config"]  # every setting, as metrics.json records them
    loss = history(runs, "train/loss")
    assert [step for step, _ in loss] == LOGGING_STEPS and loss[-1][1] == pytest.approx(record["train"]["final_loss"])
    assert [step for step, _ in history(runs, "train/learning_rate")] == list(range(1, 13))
    assert [step for step, _ in history(runs, "train/samples_per_second")] == list(range(1, 13))
    for metric in METRICS:  # once per epoch, at the step where it ended
        assert history(runs, f"eval/{metric}") == [(6 * e["epoch"], pytest.approx(e[metric])) for e in record["epochs"]]
        assert got["summary"][f"final/{metric}"] == record["metrics"][metric]
    [folder] = Path("run/wandb").glob("offline-run-*")
    assert "model/README.md" in got["files"]
    assert (folder / "files" / "model" / "README.md").read_text() == Path("run/model/README.md").read_text()


def test_mlflow_gets_the_steps_the_settings_the_identity_and_the_files(run_cli, mlflow_client, tmp_path):
    assert run_cli(*ARGS, "--report-to", "mlflow", "--save-model", "--output-dir", "run") == 0
    record = json.loads(Path("run/metrics.json").read_text())
    run_id = run_ids()["mlflow"]
    got = mlflow_client.get_run(run_id)
    assert got.info.status == "FINISHED" and got.info.run_name == "tiny-bert/mnli-seed42"
    assert mlflow_client.get_experiment(got.info.experiment_id).name == EXPERIMENT  # MLFLOW_EXPERIMENT_NAME's
    assert {k: got.data.tags[k] for k in ("task", "model", "seed")} == {"task": "mnli", "model": "tiny-bert",
                                                                           "seed": "42"}
    assert got.data.params == {k: str(v) for k, v in record["config"].items()}  # every setting; MLflow keeps text
    loss = mlflow_history(mlflow_client, run_id, "train/loss")
    assert [step for step, _ in loss] == LOGGING_STEPS and loss[-1][1] == pytest.approx(record["train"]["final_loss"])
    assert [step for step, _ in mlflow_history(mlflow_client, run_id, "train/learning_rate")] == list(range(1, 13))
    for metric in METRICS:
        assert mlflow_history(mlflow_client, run_id, f"eval/{metric}") == \
            [(6 * e["epoch"], pytest.approx(e[metric])) for e in record["epochs"]]
        assert got.data.metrics[f"final/{metric}"] == pytest.approx(record["metrics"][metric])
    files = ["metrics.json", "predictions_validation_matched.tsv", "predictions_validation_mismatched.tsv",
             "model/README.md"]
    listed = {f.path for f in mlflow_client.list_artifacts(run_id)} | \
        {f.path for f in mlflow_client.list_artifacts(run_id, "model")}
    assert listed == {*files, "model"}
    for name in files:
        assert artifact_text(mlflow_client, run_id, name, tmp_path / "downloaded") == Path("run", name).read_text()


def test_mlflow_logs_to_a_tracking_server(run_cli, mlflow_server, monkeypatch, tmp_path):
    client = use_mlflow(monkeypatch, mlflow_server, experiment=None)  # no MLFLOW_EXPERIMENT_NAME: MLflow's Default
    assert run_cli(*ARGS, "--report-to", "mlflow", "--output-dir", "run") == 0
    record = json.loads(Path("run/metrics.json").read_text())
    run_id = run_ids()["mlflow"]
    got = client.get_run(run_id)
    assert got.info.status == "FINISHED" and client.get_experiment(got.info.experiment_id).name == "Default"
    assert [step for step, _ in mlflow_history(client, run_id, "train/loss")] == LOGGING_STEPS
    assert {k: got.data.metrics[f"final/{k}"] for k in METRICS} == pytest.approx(record["metrics"])
    assert artifact_text(client, run_id, "metrics.json", tmp_path / "downloaded") == Path("run/metrics.json").read_text()


def test_the_three_trackers_get_the_same_numbers(run_cli, offline_wandb, mlflow_client):
    assert run_cli(*ARGS, "--report-to", "tensorboard,wandb,mlflow", "--output-dir", "run") == 0
    record = json.loads(Path("run/metrics.json").read_text())
    board, runs, run_id = scalars(Path("run/tensorboard")), wandb_runs(Path("run/wandb")), run_ids()["mlflow"]
    for tag in ("train/loss", "train/learning_rate", "eval/accuracy", "eval/accuracy_mm"):
        logged = [(step, pytest.approx(value)) for step, value in board[tag]]  # TensorBoard keeps float32
        assert history(runs, tag) == logged and mlflow_history(mlflow_client, run_id, tag) == logged, tag
    assert len(board["train/loss"]) == len(LOGGING_STEPS) and len(board["train/learning_rate"]) == 12
    final = mlflow_client.get_run(run_id).data.metrics
    for metric, value in record["metrics"].items():  # TensorBoard's last dev score is the final one
        assert board[f"eval/{metric}"][-1][1] == pytest.approx(value)
        assert runs[0]["summary"][f"final/{metric}"] == value and final[f"final/{metric}"] == pytest.approx(value)


# ---- a run that stops, resumes, or starts over ---------------------------------

def test_a_resumed_run_logs_on_to_the_same_tracker_runs(run_cli, offline_wandb, mlflow_client, monkeypatch):
    args = [*ARGS, "--report-to", "wandb,mlflow", "--logging-steps", "2", "--save-steps", "4"]
    with crash_after(monkeypatch, 2):  # saves steps 4 and 6 (epoch 1's end, after its evaluation), then dies
        run_cli(*args, "--output-dir", "run")
    first = run_ids()
    assert mlflow_client.get_run(first["mlflow"]).info.status == "FAILED"

    assert run_cli(*args, "--output-dir", "run") == 0  # resumes from step 6
    assert run_ids() == first
    runs = wandb_runs(Path("run/wandb"))
    assert [r["id"] for r in runs] == [first["wandb"]] * 2  # offline, each try has its folder; one W&B run
    steps = [step for step, _ in history(runs, "train/learning_rate")]
    assert steps == [*range(1, 7), *range(7, 13)]  # the resumed try counts on from its checkpoint's step
    got = mlflow_client.get_run(first["mlflow"])
    assert got.info.status == "FINISHED"
    assert [s for s, _ in mlflow_history(mlflow_client, first["mlflow"], "train/learning_rate")] == list(range(1, 13))
    assert [s for s, _ in mlflow_history(mlflow_client, first["mlflow"], "eval/accuracy")] == [6, 12]

    assert run_cli(*args, "--output-dir", "run", "--overwrite") == 0  # starts over: new tracker runs
    again = run_ids()
    assert again["wandb"] != first["wandb"] and again["mlflow"] != first["mlflow"]
    assert [s for s, _ in mlflow_history(mlflow_client, again["mlflow"], "train/learning_rate")] == list(range(1, 13))


def test_the_adaptation_logs_to_the_same_runs_and_resumes_them(run_cli, offline_wandb, mlflow_client, monkeypatch,
                                                               tmp_path):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "elsewhere"))  # W&B's conventions: where its files go,
    monkeypatch.setenv("WANDB_PROJECT", "tapt")  # and the project
    # mrpc: 6 fine-tuning steps; the adaptation: 6 steps an epoch, 2 epochs, a checkpoint at each epoch's end
    args = ["--task", "mrpc", "--num-train-epochs", "1", "--batch-size", "8", "--learning-rate", "1e-3",
            "--adapt-lm", "task", "--adapt-epochs", "2", "--adapt-learning-rate", "3e-3",
            "--report-to", "tensorboard,wandb,mlflow", "--output-dir", "run"]
    with crash_after(monkeypatch, 1):  # dies after the adaptation's first epoch
        run_cli(*args)
    first = run_ids()
    assert run_cli(*args) == 0  # the adaptation resumes from its checkpoint, so the tracker runs go on
    assert run_ids() == first
    record = json.loads(Path("run/metrics.json").read_text())
    heldout = [(6 * e["epoch"], pytest.approx(e["heldout_loss"])) for e in record["adaptation"]["history"]]

    runs = wandb_runs(tmp_path / "elsewhere" / "wandb")
    assert not Path("run/wandb").exists() and {(r["id"], r["project"]) for r in runs} == {(first["wandb"], "tapt")}
    assert [step for step, _ in history(runs, "adapt/learning_rate")] == list(range(1, 13))
    assert history(runs, "adapt/heldout_loss") == heldout
    assert [step for step, _ in history(runs, "train/learning_rate")] == list(range(1, 7))  # its own axis

    run_id = first["mlflow"]
    assert [s for s, _ in mlflow_history(mlflow_client, run_id, "adapt/learning_rate")] == list(range(1, 13))
    assert mlflow_history(mlflow_client, run_id, "adapt/heldout_loss") == heldout
    assert [s for s, _ in mlflow_history(mlflow_client, run_id, "adapt/loss")] == [6, 12]  # each epoch's last step
    board = scalars(Path("run/tensorboard/adapt-lm"))  # TensorBoard: another run, beside the fine-tuning's
    assert [step for step, _ in board["adapt/learning_rate"]] == list(range(1, 13))
    assert board["adapt/heldout_loss"] == heldout
    assert "adapt/loss" not in scalars(Path("run/tensorboard"))
