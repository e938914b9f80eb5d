"""SIGTERM as schedulers and launchers deliver it: more than once, to every process, at any moment.

Slurm signals every process of a job step, and torchrun (like srun) passes the one it got on to its
workers, so a worker hears one SIGTERM two or three times. Each means "stop with a checkpoint", never
"stop at once": that is what a second Ctrl-C means, from a person who cannot wait. A rank that stopped
at once would leave the others inside a collective (gloo's "Connection closed by peer").
"""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from glue_runner import results
from glue_runner.train import StopRequest


def test_a_repeated_sigterm_is_still_a_stop_with_a_checkpoint():
    heard = []
    with StopRequest(heard.append) as stop:
        for _ in range(3):  # slurmstepd's, then torchrun's and srun's copies
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler runs between bytecodes of this thread
        assert stop.signum == signal.SIGTERM
    assert len(heard) == 1  # said once


def test_a_second_ctrl_c_stops_at_once_even_after_a_sigterm():
    with StopRequest() as stop, pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
    assert stop.signum == signal.SIGTERM


def test_a_stop_heard_between_two_stages_is_honoured_by_the_next():
    """A run's own StopRequest hears a signal that lands between loading and training (or after training);
    the loop's, entered later, starts with it, and a stop the loop heard goes back out to the run's."""
    with StopRequest() as run_stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        with StopRequest() as loop_stop:
            assert loop_stop.signum == signal.SIGTERM
    assert run_stop.signum == signal.SIGTERM

    with StopRequest() as run_stop:
        with StopRequest() as loop_stop:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
        assert loop_stop.signum == run_stop.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # every handler put back


def sigterm_during(monkeypatch, name: str) -> None:
    """SIGTERM this process as run.<name> starts: a stage in which no loop is listening."""
    from glue_runner import run

    real = getattr(run, name)

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        return real(*args, **kwargs)

    monkeypatch.setattr(run, name, signalled)


FAST = ["--task", "rte", "--num-train-epochs", "2", "--batch-size", "8", "--max-train-samples", "16",
        "--output-dir", "run"]


def test_a_sigterm_between_loading_and_training_stops_at_the_first_step_with_a_checkpoint(run_cli, monkeypatch,
                                                                                        capsys):
    sigterm_during(monkeypatch, "fitted")  # loading is over, the loop has not started
    assert run_cli(*FAST) == 143
    err = " ".join(capsys.readouterr().err.split())
    assert "stopped by SIGTERM at step 1; saved run/checkpoint-1" in err
    assert [p.name for p in results.list_checkpoints(Path("run"))] == ["checkpoint-1"]
    assert not Path("run/metrics.json").exists()


def test_a_sigterm_after_training_lets_the_run_write_its_results_then_stops(run_cli, monkeypatch, capsys):
    sigterm_during(monkeypatch, "write_results")
    assert run_cli(*FAST, "--seeds", "1,2") == 143  # the second seed's run never starts
    err = " ".join(capsys.readouterr().err.split())
    assert "SIGTERM: stopping at the next step with a checkpoint saved, or once this run's results are written" in err
    assert "stopped by SIGTERM once rte seed 1 was written to run/rte-seed1" in err
    assert Path("run/rte-seed1/metrics.json").exists() and not results.list_checkpoints(Path("run/rte-seed1"))
    assert not Path("run/rte-seed2").exists()


# ---- 2 processes, gloo, under torchrun -------------------------------------------

def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def rank_logs(log_dir: Path, rank: int) -> str:
    """What rank `rank` wrote (torchrun --redirects 3 keeps each worker's stdout and stderr in files)."""
    return "".join(p.read_text() for p in sorted(log_dir.glob(f"*/attempt_0/{rank}/std*.log")))


@pytest.mark.skipif(not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists(),
                    reason="needs Linux's /proc/<pid>/task/<pid>/children to find torchrun's workers")
def test_torchrun_stopped_as_slurm_stops_it_saves_a_checkpoint_and_says_so_once(tmp_path, tiny_bert, glue_dir):
    """slurmstepd signals torchrun and both workers; torchrun then sends each worker a second SIGTERM."""
    logs = tmp_path / "logs"
    run_dir = tmp_path / "results" / "runs" / tiny_bert.name / "sst2-seed42"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "--log-dir", str(logs), "--redirects", "3", "-m", "glue_runner.cli",
               "--task", "sst2", "--model", str(tiny_bert), "--data-dir", str(glue_dir), "--device", "cpu",
               # a checkpoint every step, read back only at epoch ends (24 steps): the stop is honoured
               # after the second SIGTERM has landed
               "--num-train-epochs", "20", "--batch-size", "1", "--save-steps", "1", "--logging-steps", "1000",
               "--results-dir", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    torchrun = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
    try:
        deadline = time.monotonic() + 120
        while not results.list_checkpoints(run_dir):
            assert torchrun.poll() is None, torchrun.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.01)
        workers = children(torchrun.pid)
        assert len(workers) == 2
        for pid in workers:
            os.kill(pid, signal.SIGTERM)
        while "SIGTERM: stopping" not in rank_logs(logs, 0):  # heard, and training goes on to the epoch's end
            assert torchrun.poll() is None and time.monotonic() < deadline, rank_logs(logs, 0)[-3000:]
            time.sleep(0.005)
        torchrun.send_signal(signal.SIGTERM)  # which it forwards to each worker
        launcher = torchrun.communicate(timeout=120)[0]
    finally:
        torchrun.kill()

    rank0, rank1 = rank_logs(logs, 0), rank_logs(logs, 1)
    for said in (rank0, rank1, launcher):  # no rank stopped at once, none was left inside a collective
        assert "Connection closed" not in said and "KeyboardInterrupt" not in said and "interrupted" not in said
    assert "Traceback" not in rank0 + rank1, rank0[-3000:] + rank1[-3000:]
    stopped = re.findall(r"stopped by SIGTERM at step (\d+); saved (\S+);", " ".join(rank0.split()))
    assert len(stopped) == 1, rank0[-3000:]
    assert "stopped by" not in rank1  # rank 0 says it, once
    assert (tmp_path / stopped[0][1]).name == f"checkpoint-{stopped[0][0]}"
    assert results.list_checkpoints(run_dir)[-1].name == f"checkpoint-{stopped[0][0]}"
    assert not (run_dir / "metrics.json").exists()
