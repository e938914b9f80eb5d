"""DistributedDataParallel on the CPU: rank sharding, and a real 2-process gloo run under torchrun."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fixtures import native_bf16
from glue_runner.train import make_batches

PROBE = Path(__file__).with_name("ddp_probe.py")


# ---- make_batches sharding ---------------------------------------------------

@pytest.mark.parametrize("n, batch_size, world_size", [(23, 4, 2), (23, 5, 3), (100, 8, 4), (3, 16, 2)])
def test_eval_shards_cover_every_example_once(n, batch_size, world_size):
    lengths = np.random.default_rng(0).integers(3, 128, n)
    shards = [np.concatenate(make_batches(lengths, batch_size, shuffle=False, seed=0, rank=r, world_size=world_size)
                             or [np.zeros(0, dtype=np.int64)])
              for r in range(world_size)]
    union = np.concatenate(shards)
    assert sorted(union.tolist()) == list(range(n))


@pytest.mark.parametrize("n, batch_size, world_size", [(48, 4, 2), (50, 4, 2), (101, 8, 3), (1000, 32, 4)])
def test_train_shards_step_together_on_disjoint_examples(n, batch_size, world_size):
    lengths = np.random.default_rng(1).integers(3, 128, n)
    shards = [make_batches(lengths, batch_size, shuffle=True, seed=7, rank=r, world_size=world_size)
              for r in range(world_size)]
    # every rank runs the same number of steps, or the gradient all-reduce would hang
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) > 0
    seen = np.concatenate([b for s in shards for b in s])
    assert len(seen) == len(set(seen.tolist()))  # no example on two ranks
    # only the remainder batches are dropped: at most world_size - 1 of them
    assert len(seen) > n - world_size * batch_size


def test_one_process_keeps_every_training_example():
    lengths = np.random.default_rng(2).integers(3, 128, 50)
    batches = make_batches(lengths, 4, shuffle=True, seed=7)
    assert sorted(np.concatenate(batches).tolist()) == list(range(50))


# ---- a real run: torchrun, 2 processes, gloo ---------------------------------

# gradual unfreezing: the layers not yet unfrozen get no gradient, which DDP must be told to expect
@pytest.mark.parametrize("extra", [
    pytest.param(["--no-bf16"], id="float32-all-layers"),
    # bfloat16 where the CPU computes it natively (glue-run's default there); precision and schedule are
    # apart in the loop, so one run of each pairing covers both
    pytest.param(["--gradual-unfreezing", "--bf16" if native_bf16() else "--no-bf16"], id="gradual-unfreezing"),
])
def test_two_process_gloo_run(tmp_path, tiny_bert, glue_dir, extra):
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               str(PROBE), str(probe_dir),
               "--task", "mrpc", "--model", str(tiny_bert), "--data-dir", str(glue_dir), "--device", "cpu",
               "--num-train-epochs", "2", "--batch-size", "4", "--eval-batch-size", "5",
               # accumulation exercises DDP's no_sync on the first micro-batch of each step
               "--gradient-accumulation-steps", "2", "--learning-rate", "1e-3",
               # 23 dev rows in batches of 5: rank 0 scores 3 batches, rank 1 two
               "--max-eval-samples", "23",
               *extra,
               "--results-dir", str(tmp_path / "results"),
               "--cache-dir", str(tmp_path / "cache")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]

    ranks = [json.loads((probe_dir / f"rank{r}.json").read_text()) for r in range(2)]
    # the ranks trained on different halves of the data, yet hold the same weights
    assert ranks[0]["after"] == ranks[1]["after"]
    assert ranks[0]["after"] != ranks[0]["before"]
    # evaluated after each of the 2 epochs; every gathered prediction equals one process's
    assert [p["rows"] for p in ranks[1]["predictions"]] == [23, 23]
    assert all(p["equal_to_one_process"] for r in ranks for p in r["predictions"])

    # only rank 0 writes and logs
    run_dir = tmp_path / "results" / "runs" / tiny_bert.name / "mrpc-seed42"
    assert list(tmp_path.rglob("metrics.json")) == [run_dir / "metrics.json"]
    with open(tmp_path / "results" / "runs.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 1
    assert output.count("epoch 1: ") == 1 and output.count("epoch 2: ") == 1
    with open(run_dir / "predictions_validation.tsv", newline="") as f:
        indices = [int(row["index"]) for row in csv.DictReader(f, delimiter="\t")]
    assert sorted(indices) == list(range(23))
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["data"]["examples"]["validation"] == 23
    assert record["device"].endswith("x2")


def torchrun(tmp_path, probe_dir, flags, **env):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(PROBE),
               str(probe_dir), *flags]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)


def test_a_two_process_run_stopped_and_resumed_ends_exactly_as_one_never_stopped(tmp_path, tiny_bert, glue_dir):
    """Each process draws its own dropout masks, and their random states part as training goes on (here within
    the first two epochs): the checkpoint keeps every process's state."""
    flags = ["--task", "sst2", "--model", str(tiny_bert), "--data-dir", str(glue_dir), "--device", "cpu",
             "--num-train-epochs", "3", "--batch-size", "4", "--learning-rate", "1e-3", "--logging-steps", "1",
             "--cache-dir", str(tmp_path / "cache")]
    weights = {}
    for name, stop_at in (("whole", "0"), ("stopped", "9")):
        probe = tmp_path / f"probe-{name}"
        probe.mkdir()
        done = torchrun(tmp_path, probe, [*flags, "--results-dir", str(tmp_path / name)], PROBE_SIGTERM_AT_STEP=stop_at)
        if name == "stopped":
            assert done.returncode != 0 and list((tmp_path / name).rglob("checkpoint-*")), done.stderr[-3000:]
            done = torchrun(tmp_path, probe, [*flags, "--results-dir", str(tmp_path / name)])
            assert "resuming from" in done.stderr, done.stderr[-3000:]
        assert done.returncode == 0, done.stderr[-3000:]
        weights[name] = [json.loads((probe / f"rank{r}.json").read_text())["after"] for r in range(2)]
    assert weights["stopped"] == weights["whole"]


def test_a_checkpoint_of_two_processes_is_not_resumed_by_one(tmp_path, tiny_bert, glue_dir, run_cli, capsys):
    """Two processes take twice the examples a step: another run, which starts over and says why."""
    from glue_runner import fingerprints, results
    from glue_runner.cli import build_parser
    from glue_runner.session import configs_from_args
    from glue_runner.tasks import get_task

    flags = ["--task", "sst2", "--num-train-epochs", "1", "--batch-size", "8", "--max-train-samples", "16"]
    args = build_parser().parse_args([*flags, "--model", str(tiny_bert), "--data-dir", str(glue_dir)])
    cfg = configs_from_args(args)[0].resolved(get_task("sst2").recipe)
    folder = results.run_folder(cfg, "sst2")
    saved = results.identity(cfg)
    saved["inputs"]["processes"] = 2
    (folder / "checkpoint-3").mkdir(parents=True)
    (folder / "checkpoint-3" / "config.json").write_text(json.dumps(saved))
    assert fingerprints.changes(saved["inputs"], results.identity(cfg)["inputs"])
    assert run_cli(*flags) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "were made from other inputs (the processes (2 there, 1 now" in err and "the run starts over" in err
    assert "resuming" not in err and (folder / "metrics.json").exists()
