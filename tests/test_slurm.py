"""glue-run under a real Slurm: the README's job array, preemption and requeue, and a run across 2 processes.

A one-node cluster (tests/slurm/cluster.sh: munge, slurmctld and slurmd on this machine) runs the
README's sbatch scripts, tests/slurm/*.sbatch, as users submit them. The cluster is the one in
$GLUE_SLURM_DIR (.ci/run starts it there), else one these tests start, as root, for themselves; where
neither can be, they skip and say why. Slurm's own records say what happened to each job: its state,
restarts and exit code (scontrol show job), and a line per finished or requeued job in the
jobcomp/filetxt log (sacct would need an accounting database).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from glue_runner import results

SLURM = Path(__file__).parent / "slurm"
SWEEP, DDP = SLURM / "glue-sweep.sbatch", SLURM / "glue-ddp.sbatch"
WAITING = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED")  # a job's states before it ends


def fields(line: str) -> dict[str, str]:
    """Slurm's one-line records, KEY=value KEY=value ..."""
    return dict(re.findall(r"(\w+)=(\S*)", line))


@dataclass
class Cluster:
    env: dict  # SLURM_CONF, and a PATH on which jobs find this glue-run

    def __call__(self, *argv: str) -> str:
        return subprocess.run([str(a) for a in argv], env=self.env, check=True, capture_output=True,
                              text=True).stdout

    def sbatch(self, folder: Path, *argv) -> str:
        return self("sbatch", "--parsable", "--chdir", folder, *argv).strip()

    def jobs(self, job: str) -> list[dict]:
        """scontrol show job: one record per array task (or the job), while Slurm keeps it (MinJobAge)."""
        return [fields(line) for line in self("scontrol", "show", "job", "--oneliner", job).splitlines()]

    def wait(self, job: str, timeout: float = 240) -> list[dict]:
        """Until no task of `job` is pending, running or being requeued; returns their records."""
        deadline = time.monotonic() + timeout
        while any(j["JobState"] in WAITING for j in self.jobs(job)):
            assert time.monotonic() < deadline, f"job {job} still not done: {self.jobs(job)}"
            time.sleep(0.5)
        return self.jobs(job)

    def completions(self, job: str) -> list[dict]:
        """The jobcomp log's lines for `job` (an array's tasks, and each try of a requeued one), in order."""
        log = Path(re.search(r"^JobCompLoc\s*=\s*(\S+)", self("scontrol", "show", "config"), re.M).group(1))
        return [r for r in map(fields, log.read_text().splitlines()) if job in (r["JobId"], r.get("ArrayJobId"))]


def answers(env: dict) -> bool:
    if not Path(env["SLURM_CONF"]).is_file():  # Slurm's commands would retry reading it for a minute
        return False
    try:
        return subprocess.run(["sinfo"], env=env, capture_output=True, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@pytest.fixture(scope="module")
def cluster():
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    given = os.environ.get("GLUE_SLURM_DIR")
    if given:
        env["SLURM_CONF"] = str(Path(given) / "slurm.conf")
        if not answers(env):
            pytest.skip(f"GLUE_SLURM_DIR={given}, but no Slurm cluster answers there "
                        f"(tests/slurm/cluster.sh start {given})")
        yield Cluster(env)
        return
    if os.geteuid() != 0:
        pytest.skip("a Slurm cluster for the tests is started as root (tests/slurm/cluster.sh start), or given "
                    "by GLUE_SLURM_DIR")
    if not shutil.which("slurmctld") or not shutil.which("munged"):
        pytest.skip("Slurm is not installed: tests/slurm/cluster.sh install (apt-get install slurm-wlm munge)")
    # not under pytest's folders, which only root may enter: munged runs as the munge user
    folder = Path(tempfile.mkdtemp(prefix="glue-runner-slurm-"))
    started = subprocess.run([SLURM / "cluster.sh", "start", folder], capture_output=True, text=True)
    if started.returncode:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"the Slurm cluster did not start: {started.stderr.strip()[-1500:]}")
    env["SLURM_CONF"] = str(folder / "slurm.conf")
    try:
        yield Cluster(env)
    finally:
        subprocess.run([SLURM / "cluster.sh", "stop", folder], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def wait_for_checkpoint(cluster: Cluster, job: str, run_dir: Path, after: int = 0, timeout: float = 180) -> None:
    """Until the run saves a checkpoint of a step after `after`."""
    deadline = time.monotonic() + timeout
    while not [c for c in results.list_checkpoints(run_dir) if results.step_of(c) > after]:
        assert cluster.jobs(job)[0]["JobState"] in WAITING, cluster.jobs(job)
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)


def text(log: Path) -> str:
    return " ".join(log.read_text().split())  # one line: rich folds long lines


# ---- the README's job array ------------------------------------------------------

@pytest.mark.parametrize("script", [SWEEP, DDP], ids=lambda p: p.name)
def test_the_readme_holds_the_scripts_these_tests_submit(script):
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert f"```bash\n{script.read_text()}```" in readme


def test_the_readmes_job_array_runs_a_smoke_sweep_once_and_the_last_shard_writes_the_leaderboard(
        cluster, tmp_path, tiny_bert):
    results_dir = tmp_path / "results"
    job = cluster.sbatch(tmp_path, "--array=0-3", SWEEP, "--task", "all", "--smoke", "--model", tiny_bert,
                         "--results-dir", results_dir, "--cache-dir", tmp_path / "cache",
                         "--expect", "sst2:accuracy>=0.3,rte:accuracy>=0.3")
    tasks = cluster.wait(job)
    assert sorted(t["ArrayTaskId"] for t in tasks) == ["0", "1", "2", "3"]
    logs = {t["ArrayTaskId"]: text(tmp_path / f"glue-sweep-{job}_{t['ArrayTaskId']}.log") for t in tasks}
    wrote = sorted(i for i, log in logs.items() if f"wrote {results_dir / 'leaderboard.md'}" in log)

    # the untrained tiny model learns nothing in SST-2's and STS-B's smoke budgets: the shard that judges the
    # sweep exits 3, so the array shows the failure, and is not requeued; the other shards end well
    states = {t["ArrayTaskId"]: (t["JobState"], t["ExitCode"], t["Restarts"]) for t in tasks}
    assert states == {i: ("FAILED", "3:0", "0") if i in wrote else ("COMPLETED", "0:0", "0") for i in states}
    assert all("smoke: did not learn" in logs[i] for i in wrote)
    records = cluster.completions(job)
    assert sorted(r["ArrayTaskId"] for r in records) == ["0", "1", "2", "3"]  # one line per task: none ran twice

    # every run of the sweep (--smoke without the Hub: the 7 bundled tasks) finished, once, where it belongs
    runs = sorted(p.name for p in (results_dir / "runs" / tiny_bert.name).iterdir())
    assert runs == [f"{t}-seed42" for t in ["cola", "mrpc", "qnli", "rte", "sst2", "stsb", "wnli"]]
    assert all((results_dir / "runs" / tiny_bert.name / r / "metrics.json").is_file() for r in runs)
    assert not list(results_dir.rglob("checkpoint-*"))
    assert len((results_dir / "runs.csv").read_text().splitlines()) == 1 + 7

    last = max(tasks, key=lambda t: t["EndTime"])["ArrayTaskId"]
    # the shard that ends last writes it and checks --expect; two shards that end at the same instant
    # may both (each writes the whole file), every other one leaves them to it
    assert last in wrote, logs[last][-2000:]
    for i, log in logs.items():
        if i in wrote:
            assert "held sst2:accuracy>=0.3" in log and "held rte:accuracy>=0.3" in log
        else:
            assert "--expect and --smoke's verdicts are checked by the shard that finishes the sweep's last run" in log
            assert f"shard {i}/4: its" in log and "are not yet" in log
    leaderboard = (results_dir / "leaderboard.md").read_text()
    assert all(column in leaderboard for column in ["CoLA", "SST-2", "MRPC", "STS-B", "QNLI", "RTE", "WNLI"])


# ---- preemption, a kill, and requeue -----------------------------------------------

# 8 epochs of 12 steps: long enough to be stopped part way, at a rate at which the tiny model learns the
# task; a checkpoint every 3 steps and at every epoch's end; --save-model, so the weights are compared too
RUN = ["--task", "sst2", "--num-train-epochs", "8", "--batch-size", "4", "--learning-rate", "3e-3",
       "--save-steps", "3", "--save-model"]


def outcome(run_dir: Path) -> dict:
    record = json.loads((run_dir / "metrics.json").read_text())
    return {"metrics": record["metrics"], "epochs": record["epochs"], "steps": record["train"]["steps"],
            "final_loss": record["train"]["final_loss"], "weights": load_file(run_dir / "model" / "model.safetensors")}


def same(a: dict, b: dict) -> bool:
    return ({k: v for k, v in a.items() if k != "weights"} == {k: v for k, v in b.items() if k != "weights"}
            and a["weights"].keys() == b["weights"].keys()
            and all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"]))


def glue_run_pid(results_dir: Path) -> int:
    """The glue-run process (not srun, whose command line holds the same words) writing to results_dir."""
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().decode().split("\0")
        except (OSError, ValueError):
            continue
        if Path(argv[0]).name.startswith("python") and str(results_dir) in argv:
            return int(proc.name)
    raise AssertionError(f"no glue-run process writes to {results_dir}")


def test_a_task_killed_then_preempted_resumes_each_time_it_is_requeued_and_ends_as_if_never_stopped(
        cluster, tmp_path, tiny_bert, glue_dir):
    def submit(name: str) -> tuple[str, Path]:
        job = cluster.sbatch(tmp_path, "--array=0", SWEEP, *RUN, "--model", tiny_bert, "--data-dir", glue_dir,
                             "--results-dir", tmp_path / name, "--cache-dir", tmp_path / "cache")
        return job, tmp_path / name / "runs" / tiny_bert.name / "sst2-seed42"

    (job, run_dir), (reference, reference_dir) = submit("interrupted"), submit("reference")

    # killed without warning (the OOM killer, a node lost): its lock goes with its process, its newest
    # checkpoint stays whole, and glue-run's exit code is not 143, so the task does not requeue itself
    wait_for_checkpoint(cluster, job, run_dir)
    os.kill(glue_run_pid(tmp_path / "interrupted"), signal.SIGKILL)
    [task] = cluster.wait(job)
    assert (task["JobState"], task["ExitCode"]) == ("FAILED", "137:0")
    killed_at = results.step_of(results.list_checkpoints(run_dir)[-1])
    cluster("scontrol", "requeue", job)  # what its owner, or a preemption in REQUEUE mode, does

    # preempted: SIGTERM to the task's steps, as a preemption's grace time or --signal=TERM@ sends it
    wait_for_checkpoint(cluster, job, run_dir, after=killed_at)
    cluster("scancel", "--signal=TERM", job)

    for each in (job, reference):
        [task] = cluster.wait(each)
        assert (task["JobState"], task["ExitCode"]) == ("COMPLETED", "0:0")
        assert task["Restarts"] == ("2" if each == job else "0")
    assert same(outcome(run_dir), outcome(reference_dir))
    assert outcome(reference_dir)["metrics"]["accuracy"] > 0.75  # it learned: the weights moved, the same way

    log = text(tmp_path / f"glue-sweep-{job}_0.log")  # every try's: --open-mode=append
    assert f"resuming from {run_dir / f'checkpoint-{killed_at}'} (step {killed_at})" in log
    step, saved = re.search(r"stopped by SIGTERM at step (\d+); saved (\S+);", log).groups()
    assert Path(saved) == run_dir / f"checkpoint-{step}"
    assert f"resuming from {saved} (step {step})" in log and "Traceback" not in log
    # Slurm's record: killed (the script's 137), requeued twice (a PENDING line each), done; a step of some
    # try ended in glue-run's 143 (the derived codes of a requeued job are updated late, so on a later line)
    tries = [(r["JobState"], r["ExitCode"], r["DerivedExitCode"]) for r in cluster.completions(job)]
    assert tries[0][:2] == ("FAILED", "137:0") and tries[-1][:2] == ("COMPLETED", "0:0"), tries
    assert [t[0] for t in tries[1:-1]] == ["PENDING", "PENDING"] and "143:0" in {t[2] for t in tries}, tries


# ---- one run across 2 processes (gloo on the CPU) -------------------------------------

def ddp_run(tiny_bert: Path, glue_dir: Path, folder: Path) -> list:
    # 4 epochs of 6 steps a rank; a checkpoint every 2 steps
    return ["--task", "sst2", "--model", tiny_bert, "--data-dir", glue_dir, "--device", "cpu",
            "--num-train-epochs", "4", "--batch-size", "4", "--save-steps", "2",
            "--results-dir", folder / "results", "--cache-dir", folder / "cache"]


def test_srun_torchrun_stopped_by_sigterm_saves_a_checkpoint_with_glue_runs_message(cluster, tmp_path, tiny_bert,
                                                                                   glue_dir):
    """slurmstepd signals torchrun and both workers, and torchrun forwards its copy: every rank stops at the
    same step, rank 0 saves and says so, and no rank is left in a collective. torchrun itself, signalled,
    ends with its own SignalException and exit code 1, whatever its workers did: the README's DDP recipe
    starts the ranks with srun instead."""
    run = " ".join(map(str, ddp_run(tiny_bert, glue_dir, tmp_path)))
    job = cluster.sbatch(tmp_path, "--cpus-per-task=2", "--output=torchrun-%j.log", "--wrap",
                         f"srun torchrun --standalone --nproc-per-node 2 -m glue_runner.cli {run}")
    run_dir = tmp_path / "results" / "runs" / tiny_bert.name / "sst2-seed42"
    wait_for_checkpoint(cluster, job, run_dir)
    cluster("scancel", "--signal=TERM", job)
    [task] = cluster.wait(job)

    log = text(tmp_path / f"torchrun-{job}.log")
    stops = re.findall(r"stopped by SIGTERM at step (\d+); saved (\S+);", log)
    assert len(stops) == 1 and log.count("SIGTERM: stopping") == 1, log[-3000:]  # rank 0's, once
    assert Path(stops[0][1]) == run_dir / f"checkpoint-{stops[0][0]}" == results.list_checkpoints(run_dir)[-1]
    assert not (run_dir / "metrics.json").exists()
    for stopped_at_once in ("Connection closed", "KeyboardInterrupt", "interrupted;"):
        assert stopped_at_once not in log, log[-3000:]
    assert log.count("Traceback") == log.count("SignalException: Process")  # only the launcher's own
    assert (task["JobState"], task["ExitCode"]) == ("FAILED", "1:0")


def test_the_readmes_ddp_job_stops_on_sigterm_with_exit_143_requeues_itself_and_resumes(cluster, tmp_path, tiny_bert,
                                                                                       glue_dir):
    job = cluster.sbatch(tmp_path, "--ntasks=2", DDP, *ddp_run(tiny_bert, glue_dir, tmp_path))
    run_dir = tmp_path / "results" / "runs" / tiny_bert.name / "sst2-seed42"
    wait_for_checkpoint(cluster, job, run_dir)
    cluster("scancel", "--signal=TERM", job)
    [task] = cluster.wait(job)

    assert (task["JobState"], task["ExitCode"], task["Restarts"]) == ("COMPLETED", "0:0", "1")
    # the jobcomp log: a try that ended in a requeue (a PENDING line), then the finished one; a step of
    # some try ended in 143 (the derived codes of a requeued job are updated late, so not always the first)
    tries = cluster.completions(job)
    assert [t["JobState"] for t in tries] == ["PENDING", "COMPLETED"], tries
    assert "143:0" in {t["DerivedExitCode"] for t in tries}, tries
    log = text(tmp_path / f"glue-ddp-{job}.log")
    [(step, saved)] = re.findall(r"stopped by SIGTERM at step (\d+); saved (\S+);", log)
    # each rank heard Slurm's SIGTERM once, and ended with glue-run's own exit code, no traceback
    exits = re.findall(r"tasks? (\d+)(?:-(\d+))?: Exited with exit code (\d+)", log)  # "task 1", "tasks 0-1"
    assert sorted(r for first, last, code in exits if code == "143"
                  for r in range(int(first), int(last or first) + 1)) == [0, 1], exits
    assert log.count("SIGTERM: stopping") == 1  # rank 0 speaks for both
    assert "Traceback" not in log and "Connection closed" not in log
    assert f"resuming from {saved} (step {step})" in log
    assert json.loads((run_dir / "metrics.json").read_text())["device"].endswith("x2")
