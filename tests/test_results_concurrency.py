"""The results table under concurrency: many runs finishing at once, some killed mid-write.

Each writer is a separate process doing what run.run does at the end of a run
(results.write_run, then results.update_tables), slowed by sleeps between its
steps and by large prediction files so SIGKILL lands inside writes and inside the
table update (while the lock is held).
"""

import csv
import json
import os
import random
import signal
import subprocess
import sys
import threading

from glue_runner import files, results, tables

WRITER = """
import random, sys, time
from pathlib import Path
from glue_runner import files, results, tables

results_dir, i = Path(sys.argv[1]), int(sys.argv[2])
rng = random.Random(i)
record = {"task": "sst2", "model_name": f"model{i}", "seed": i, "date": f"2026-01-01T00:00:{i:02d}+00:00",
          "metrics": {"accuracy": i / 100}, "train": {"samples": i, "samples_per_second": 1.0, "seconds": 1.0}}
big = files.delimited_text(["index", "prediction"], [[n, "positive" * rng.randint(1, 9)] for n in range(150_000)])
time.sleep(rng.uniform(0, 0.3))
print("writing", flush=True)
results.write_run(results_dir / "runs" / f"model{i}" / "sst2", record, {"predictions_validation.tsv": big})
time.sleep(rng.uniform(0, 0.3))
print("updating", flush=True)
tables.update_tables(results_dir)
"""

WRITERS = 12
# Where the victims die: right as they start writing their run folder (inside the 1.5 MB
# predictions file or metrics.json), right as they start the table update (inside the lock,
# or inside runs.csv/runs.md), or at once.
KILL_AT = ["writing", "writing", "updating", "updating", None]


def test_many_writers_some_killed_leave_valid_tables(tmp_path):
    rng = random.Random(0)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(i)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(WRITERS)]
    victims = rng.sample(procs, len(KILL_AT))

    def kill_at(proc: subprocess.Popen, phase: str | None) -> None:
        while phase and proc.stdout.readline().strip() not in (phase, ""):  # "": it already ended
            pass
        proc.kill()

    killers = [threading.Thread(target=kill_at, args=pair) for pair in zip(victims, KILL_AT)]
    for thread in killers:
        thread.start()
    for thread in killers:
        thread.join(timeout=120)
    for proc in procs:
        _, err = proc.communicate(timeout=120)  # a lock left held by a killed writer would hang here
        assert proc.returncode == 0 or (proc in victims and proc.returncode == -signal.SIGKILL), err

    def finished() -> set[str]:
        return {p.parent.parent.name for p in (tmp_path / "runs").rglob("metrics.json")}

    def table() -> tuple[set[str], set[str]]:
        with open(tmp_path / "runs.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        md = (tmp_path / "runs.md").read_text().splitlines()
        md_rows = [line.split(" | ")[2] for line in md if line.startswith("| 2026")]
        assert all(len(r) == len(rows[0]) and None not in r.values() for r in rows)  # no torn rows
        return {r["model"] for r in rows}, set(md_rows)

    survivors = {f"model{i}" for i, p in enumerate(procs) if p.returncode == 0}
    every_metrics_json_parses = [json.loads(p.read_text()) for p in (tmp_path / "runs").rglob("metrics.json")]
    assert len(every_metrics_json_parses) == len(finished())
    csv_models, md_models = table()
    # Every run that finished is listed, and nothing is listed that has no metrics.json; a run
    # killed between its metrics.json and the table update appears at the next update.
    assert survivors <= csv_models <= finished()
    assert csv_models == md_models
    tables.update_tables(tmp_path)
    assert table() == (finished(), finished())
    assert list(tmp_path.glob(".runs.*.tmp")) == []  # the next update clears what killed updates left
    assert 0 < len(survivors) < WRITERS  # the test did kill some, and some finished
    # A killed write leaves at most a hidden temporary file, never a partial metrics.json or table.
    leftovers = [p.name for p in tmp_path.rglob("*") if p.is_file() and p.name.endswith(".tmp")]
    assert all(name.startswith(".") for name in leftovers)


def test_results_are_readable_like_any_other_file(tmp_path):
    files.write_atomic(tmp_path / "runs.csv", "a,b\n")
    assert (tmp_path / "runs.csv").stat().st_mode & 0o777 == 0o666 & ~files.UMASK
