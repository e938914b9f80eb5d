"""Several workers on one sweep: each run done once, a killed worker's run resumed by another, and
--shard's deterministic split."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from glue_runner import results
from glue_runner.cli import build_parser
from glue_runner.errors import GlueRunnerError
from glue_runner.session import configs_from_args, parse_shard, shard_of

FAST = ["--num-train-epochs", "1", "--batch-size", "8", "--learning-rate", "1e-3", "--max-train-samples", "16"]
SWEEP = ["--task", "rte,wnli", "--seeds", "1,2", *FAST]  # 4 runs


def worker(tmp_path: Path, tiny_bert: Path, glue_dir: Path, *argv: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "glue_runner.cli", *argv, "--model", str(tiny_bert),
                             "--data-dir", str(glue_dir), "--cache-dir", str(tmp_path / "cache")],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(procs: list[subprocess.Popen]) -> list[str]:
    outputs = []
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        outputs.append(" ".join(err.split()))
    return outputs


def wrote(output: str) -> list[str]:
    """The run folders a worker wrote (each 'wrote <folder>' of a run it trained)."""
    return [word for word in output.split(" wrote ")[1:] for word in [word.split()[0]] if "/runs/" in word]


def test_workers_on_one_sweep_finish_every_run_exactly_once(tmp_path, tiny_bert, glue_dir):
    outputs = finish([worker(tmp_path, tiny_bert, glue_dir, *SWEEP) for _ in range(3)])  # 3 workers, 4 runs
    folders = [folder for output in outputs for folder in wrote(output)]
    assert len(folders) == len(set(folders)) == 4  # each run trained by one worker, once
    assert len(list((tmp_path / "results" / "runs").rglob("metrics.json"))) == 4
    assert all("leaderboard.md" in output for output in outputs)  # each ends with the whole sweep's tables
    assert (tmp_path / "results" / "runs.md").read_text().count("| tiny-bert |") == 4


def test_a_killed_workers_run_is_resumed_by_another(tmp_path, tiny_bert, glue_dir):
    slow = ["--task", "rte,wnli", *FAST[:-2], "--max-train-samples", "48", "--batch-size", "1", "--save-steps", "1"]
    first = worker(tmp_path, tiny_bert, glue_dir, *slow)
    folder = tmp_path / "results" / "runs" / "tiny-bert" / "rte-seed42"
    deadline = time.monotonic() + 300
    while not results.list_checkpoints(folder):
        assert first.poll() is None and time.monotonic() < deadline, "the first worker made no checkpoint"
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert not (folder / "metrics.json").exists()
    [output] = finish([worker(tmp_path, tiny_bert, glue_dir, *slow)])
    assert "resuming from results/runs/tiny-bert/rte-seed42/checkpoint-" in output
    assert len(list((tmp_path / "results" / "runs").rglob("metrics.json"))) == 2


def configs(*argv: str):
    return configs_from_args(build_parser().parse_args(["--model", "m", *argv]))


def test_shards_partition_the_sweep_and_keep_ax_with_its_mnli():
    sweep = configs("--task", "all", "--seeds", "1,2,3")
    parts = [shard_of(sweep, (i, 4)) for i in range(4)]
    every = [i for part in parts for i in part]
    assert sorted(every) == list(range(len(sweep)))  # no run left out, none twice
    for part in parts:
        for i in part:
            if sweep[i].task == "ax":  # its MNLI run, of the same seed, is in the same shard
                assert any(sweep[j].task == "mnli" and sweep[j].seed == sweep[i].seed for j in part)


def test_two_shards_run_their_halves_and_the_last_writes_the_tables(tmp_path, tiny_bert, glue_dir):
    outputs = finish([worker(tmp_path, tiny_bert, glue_dir, *SWEEP, "--shard", f"{i}/2") for i in range(2)])
    folders = [folder for output in outputs for folder in wrote(output)]
    assert len(folders) == len(set(folders)) == 4 and all(len(wrote(output)) == 2 for output in outputs)
    assert sum("leaderboard.md" in output for output in outputs) >= 1


@pytest.mark.parametrize("text", ["2/2", "-1/3", "1", "a/b", "1/0"])
def test_a_shard_outside_its_count_is_one_clear_error(text):
    with pytest.raises(GlueRunnerError, match="--shard"):
        parse_shard(text)
