"""runs.md and runs.csv: one row per run in a results folder, rebuilt from every metrics.json
under a lock, each row with the notes a reader must see before comparing it with another.
"""

from __future__ import annotations

import os
from pathlib import Path

from .config import is_task_file
from .files import delimited_text, disk_errors, markdown_table, write_atomic
from .results import Unreadable, load_runs, locked
from .tasks import glue_tasks


def run_notes(record: dict) -> list[str]:
    """What a reader of a table must know before comparing this run with others."""
    config, notes = record.get("config", {}), []
    own_task = not config.get("task") or is_task_file(str(config["task"]))
    if config.get("train_file") or config.get("validation_file") or (own_task and "config" in record):
        notes.append("own data")
    examples, available = record.get("data", {}).get("examples", {}), record.get("data", {}).get("available")
    for setting, kind, prefix in (("max_train_samples", "train", "train"), ("max_eval_samples", "dev", "validation")):
        splits = [s for s in examples if s.startswith(prefix)]
        # a limit at or above the data's size kept all of it; a record from before "available" cannot say
        cut = available is None or any(examples[s] < available.get(s, examples[s] + 1) for s in splits)
        if config.get(setting) and cut:
            notes.append(f"subset: {config[setting]} {kind}")
    if record.get("data", {}).get("dev_is_training_data"):
        notes.append("scored on its training data")
    if config.get("smoke"):
        notes.append("smoke")
    if config.get("num_train_epochs") == 0:
        notes.append("untrained")
    if config.get("probe"):
        notes.append("probe")
    # defaults.py fitted the learning rate or the epochs: a row of another model or data size trained otherwise
    notes += (record.get("chosen") or {}).get("notes", [])
    if record.get("baseline", {}).get("beaten") is False:
        notes.append(NOT_BEATEN)
    return notes


# the note on a run whose score is no better than predicting the most frequent training label
NOT_BEATEN = "no better than baseline"


def table_rows(runs: list[dict], unreadable: list[Unreadable], results_dir: Path) -> tuple[list[str], list[list]]:
    # the GLUE tasks' metrics first, in the leaderboard's order (tasks/*.yaml), then any others
    glue_order = dict.fromkeys(m + split.metric_suffix for t in glue_tasks() for split in t.splits.values()
                               for m in t.metrics)
    metric_names = [m for m in glue_order if any(m in r["metrics"] for r in runs)]
    metric_names += sorted({m for r in runs for m in r["metrics"]} - set(metric_names))
    header = ["date", "task", "model", "seed", *metric_names, "baseline", "train_samples", "samples_per_s", "train_s",
              "notes", "run"]
    rows = []
    for r in sorted(runs, key=lambda r: (r.get("date", ""), r["task"], r.get("model_name", ""))):
        train = r.get("train") or {}
        rows.append([r.get("date", ""), r["task"], r.get("model_name", ""), r.get("seed", ""),
                     *[_fmt(r["metrics"].get(m)) for m in metric_names], baseline_text(r),
                     train.get("samples", ""), _fmt(train.get("samples_per_second"), 1),
                     _fmt(train.get("seconds"), 1), "; ".join(run_notes(r)), os.path.relpath(r["path"], results_dir)])
    for u in unreadable:
        rows.append(["", "", "", "", *[""] * len(metric_names), "", "", "", "", f"UNREADABLE: {u.reason}",
                     os.path.relpath(u.path.parent, results_dir)])
    return header, rows


def baseline_text(record: dict) -> str:
    """The trivial predictor's scores, in the metrics' order: "f1 0.8122 · accuracy 0.6838"."""
    return " · ".join(f"{name} {value:.4f}" for name, value in record.get("baseline", {}).get("metrics", {}).items()
                      if not name.startswith("combined_score"))


def _fmt(value, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def update_tables(results_dir: Path) -> list[Unreadable]:
    """Rebuild runs.csv and runs.md from every run; returns the run files that could not be read."""
    results_dir = Path(results_dir)
    with locked(results_dir), disk_errors(f"the tables in {results_dir}", "The runs' own files are complete",
                                          f"run `glue-run leaderboard --results-dir {results_dir}` to rebuild them"):
        for stale in results_dir.glob(".runs.*.tmp"):  # left by a writer killed mid-update; we hold the lock
            stale.unlink(missing_ok=True)
        runs, unreadable = load_runs(results_dir)
        header, rows = table_rows(runs, unreadable, results_dir)
        write_atomic(results_dir / "runs.csv", delimited_text(header, rows, ","))
        write_atomic(results_dir / "runs.md", "# glue-runner runs\n\nOne row per run, regenerated from every "
                     "`metrics.json` below this folder.\n\n" + markdown_table(header, rows))
    return unreadable
