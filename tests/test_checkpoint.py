"""Checkpoints and resume: a killed run, resumed, ends exactly where an uninterrupted one does.

"Exactly" is checked on everything a run produces: the metrics, the per-epoch
history, the final training loss and every weight of the saved model. The tiny
BERT keeps its 0.1 dropout, so the RNG states must be restored too.
"""

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from glue_runner import results, train
from glue_runner.config import RunConfig
from glue_runner.errors import GlueRunnerError

# 12 steps of 4 examples per epoch, 3 epochs; a learning rate high enough that the weights move.
ARGS = ["--task", "sst2", "--batch-size", "4", "--learning-rate", "3e-3", "--logging-steps", "5", "--save-model"]


def outcome(folder: Path) -> dict:
    record = json.loads((folder / "metrics.json").read_text())
    weights = load_file(folder / "model" / "model.safetensors")
    return {"metrics": record["metrics"], "epochs": record["epochs"], "steps": record["train"]["steps"],
            "samples": record["train"]["samples"], "final_loss": record["train"]["final_loss"], "weights": weights}


def assert_same(a: dict, b: dict) -> None:
    assert {k: v for k, v in a.items() if k != "weights"} == {k: v for k, v in b.items() if k != "weights"}
    assert a["weights"].keys() == b["weights"].keys()
    for name in a["weights"]:
        assert torch.equal(a["weights"][name], b["weights"][name]), name


@pytest.fixture
def reference(run_cli, tmp_path):
    """An uninterrupted run, cached per argument list (each test's tmp_path is fresh anyway)."""
    def make(*extra: str) -> dict:
        assert run_cli(*ARGS, *extra, "--output-dir", str(tmp_path / "reference")) == 0
        return outcome(tmp_path / "reference")
    return make


def start(tmp_path, tiny_bert, glue_dir, *extra: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "glue_runner.cli", *ARGS, *extra, "--output-dir", "killed",
            "--model", str(tiny_bert), "--data-dir", str(glue_dir), "--cache-dir", str(tmp_path / "cache")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_checkpoint(proc: subprocess.Popen, folder: Path, step: int = 1, timeout: float = 120) -> None:
    """Poll until checkpoint-<step> or a later one exists (the kill then lands a few ms later)."""
    deadline = time.monotonic() + timeout
    while not [p for p in results.list_checkpoints(folder) if results.step_of(p) >= step]:
        assert proc.poll() is None, f"the run ended before checkpoint-{step}: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.002)


# (micro-batch, accumulation, the checkpoint after which to kill); every run has 36 steps. The kill
# lands a few milliseconds after that checkpoint appears: inside the next step, its save or the
# epoch's evaluation, and with accumulation often between the two micro-batches of a step.
@pytest.mark.parametrize("batch, accumulation, after", [("4", "1", 1), ("4", "1", 20), ("2", "2", 5)],
                         ids=["after-the-first-checkpoint", "in-epoch-2", "mid-accumulation"])
def test_sigkill_then_resume_ends_like_an_uninterrupted_run(run_cli, reference, tmp_path, tiny_bert, glue_dir,
                                                            batch, accumulation, after):
    training = ["--batch-size", batch, "--gradient-accumulation-steps", accumulation]
    expected = reference(*training)
    extra = [*training, "--save-steps", "1"]
    proc = start(tmp_path, tiny_bert, glue_dir, *extra)
    wait_for_checkpoint(proc, tmp_path / "killed", after)
    proc.kill()
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it was killed; make it longer"
    assert not (tmp_path / "killed" / "metrics.json").exists()

    assert run_cli(*ARGS, *extra, "--output-dir", str(tmp_path / "killed")) == 0  # the same command again
    assert_same(outcome(tmp_path / "killed"), expected)
    assert results.list_checkpoints(tmp_path / "killed") == []  # a finished run keeps none


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_sigint_save_a_checkpoint_and_say_how_to_resume(run_cli, reference, tmp_path, tiny_bert,
                                                                    glue_dir, sig, code):
    expected = reference()
    proc = start(tmp_path, tiny_bert, glue_dir, "--save-steps", "4")
    wait_for_checkpoint(proc, tmp_path / "killed")
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr[-2000:]
    assert f"stopped by {sig.name}" in stderr and "run the same command again" in stderr
    saved = results.list_checkpoints(tmp_path / "killed")[-1]
    assert f"saved {Path('killed') / saved.name}" in " ".join(stderr.split())
    assert run_cli(*ARGS, "--output-dir", str(tmp_path / "killed"), "--resume") == 0
    assert_same(outcome(tmp_path / "killed"), expected)


@contextmanager
def crash_after(monkeypatch, saves: int):
    """Make the process 'die' right after its n-th checkpoint (an exception nobody catches)."""
    real_save, count = results.save_checkpoint, {"n": 0}

    def save(*args, **kwargs):
        path = real_save(*args, **kwargs)
        count["n"] += 1
        if count["n"] == saves:
            raise SystemExit("simulated crash")
        return path

    with monkeypatch.context() as m, pytest.raises(SystemExit):
        m.setattr(results, "save_checkpoint", save)
        yield


@pytest.mark.parametrize("saves", [1, 3], ids=["mid-epoch", "at-epoch-end"])
def test_resume_from_mid_epoch_and_epoch_end_checkpoints(run_cli, reference, tmp_path, monkeypatch, saves):
    expected = reference()
    with crash_after(monkeypatch, saves):  # --save-steps 4: saves at steps 4, 8, then 12 after the evaluation
        run_cli(*ARGS, "--save-steps", "4", "--output-dir", str(tmp_path / "run"))
    assert run_cli(*ARGS, "--save-steps", "4", "--output-dir", str(tmp_path / "run")) == 0
    assert_same(outcome(tmp_path / "run"), expected)


def test_resume_without_the_rng_states_would_differ(run_cli, reference, tmp_path, monkeypatch):
    """The exactness tests above are sensitive: dropout draws differ if the RNG is not restored."""
    expected = reference()
    with crash_after(monkeypatch, 1):
        run_cli(*ARGS, "--save-steps", "5", "--output-dir", str(tmp_path / "run"))
    monkeypatch.setattr(train, "set_rng_state", lambda state: None)
    assert run_cli(*ARGS, "--save-steps", "5", "--output-dir", str(tmp_path / "run")) == 0
    assert outcome(tmp_path / "run")["final_loss"] != expected["final_loss"]


def test_crash_after_training_before_results_resumes_to_the_same_metrics(run_cli, reference, tmp_path, monkeypatch):
    expected = reference()
    with monkeypatch.context() as m, pytest.raises(SystemExit):
        m.setattr(results, "write_run", lambda *a: sys.exit("simulated crash"))
        run_cli(*ARGS, "--output-dir", str(tmp_path / "run"))
    # no checkpoint after the last epoch, whose results come next: the run resumes from epoch 2's end
    assert [results.step_of(p) for p in results.list_checkpoints(tmp_path / "run")] == [12, 24]
    assert run_cli(*ARGS, "--output-dir", str(tmp_path / "run")) == 0
    assert_same(outcome(tmp_path / "run"), expected)


def test_keeps_the_newest_k_and_ignores_half_written_ones(tmp_path):
    model = torch.nn.Linear(2, 2)
    cfg = RunConfig(task="sst2", model="m", save_total_limit=2)
    for step in (3, 10, 7):
        results.save_checkpoint(tmp_path, step, model, {"position": {"step": step}}, cfg)
    assert [p.name for p in results.list_checkpoints(tmp_path)] == ["checkpoint-7", "checkpoint-10"]
    (tmp_path / ".checkpoint-12.abc.tmp").mkdir()  # a save killed before its rename
    assert results.list_checkpoints(tmp_path)[-1].name == "checkpoint-10"
    assert results.choose_checkpoint(tmp_path, cfg).name == "checkpoint-10"
    results.remove_checkpoints(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_rng_states_round_trip_through_weights_only_loading(tmp_path):
    import random

    import numpy as np

    torch.manual_seed(1), random.seed(1), np.random.seed(1)
    results.save_checkpoint(tmp_path, 1, torch.nn.Linear(2, 2), {"rng": train.rng_state()},
                    RunConfig(task="sst2", model="m"))
    expected = torch.rand(3), random.random(), np.random.rand()
    state = results.load_checkpoint(tmp_path / "checkpoint-1", torch.nn.Linear(2, 2))  # weights_only=True
    train.set_rng_state(state["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    assert (random.random(), np.random.rand()) == expected[1:]


def test_a_pickled_object_in_state_is_refused(tmp_path):
    cfg = RunConfig(task="sst2", model="m")
    folder = results.save_checkpoint(tmp_path, 1, torch.nn.Linear(2, 2), {}, cfg)
    torch.save({"evil": os.system}, folder / "state.pt")  # would run code with weights_only=False
    with pytest.raises(GlueRunnerError, match="cannot be resumed.*--no-resume"):
        results.load_checkpoint(folder, torch.nn.Linear(2, 2))


def test_settings_must_match_to_resume(run_cli, tmp_path, monkeypatch, capsys):
    with crash_after(monkeypatch, 1):
        run_cli(*ARGS, "--save-steps", "5", "--output-dir", str(tmp_path / "run"))
    assert run_cli(*ARGS, "--save-steps", "5", "--output-dir", str(tmp_path / "run"), "--learning-rate", "1e-4") == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "learning_rate: 0.003 there, 0.0001 now" in err and "--no-resume" in err
    assert run_cli(*ARGS, "--output-dir", str(tmp_path / "run"), "--learning-rate", "1e-4", "--no-resume") == 0
    assert "deleting the checkpoints" in capsys.readouterr().err


def test_resume_flag_needs_a_checkpoint(run_cli, tmp_path, capsys):
    assert run_cli(*ARGS, "--output-dir", str(tmp_path / "run"), "--resume") == 2
    assert "holds no complete checkpoint" in capsys.readouterr().err
