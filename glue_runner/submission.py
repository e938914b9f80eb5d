"""A GLUE leaderboard submission: one TSV per test set, checked, then zipped.

gluebenchmark.com takes a zip holding, at its top level, CoLA.tsv ... AX.tsv (the names
are in each test split's `submission:` in tasks/), each with the header `index<TAB>prediction`
and one row per test example. Predictions are label names for MNLI, AX, QNLI and RTE,
the label's position (0/1) elsewhere, and for STS-B a score clipped to [0, 5] with 3
decimals (`submission_labels:` in tasks/ says which).

They are built from the runs' own test predictions (predictions_test*.tsv in each run
folder): AX's run holds the predictions of the MNLI model it was given.
"""

from __future__ import annotations

import csv
import io
import math
import zipfile
from dataclasses import replace
from pathlib import Path

from . import data
from .config import RunConfig
from .errors import GlueRunnerError
from .files import delimited_text, safe_name, write_atomic
from .tasks import TaskSpec, glue_tasks

HEADER = ["index", "prediction"]


def submission_files() -> dict[str, tuple[TaskSpec, str]]:
    """Every file of a full submission, in leaderboard order: name -> (task, test split)."""
    return {spec.submission: (task, split) for task in glue_tasks() for split, spec in task.splits.items()
            if spec.submission}


def convert(task: TaskSpec, predictions_tsv: str) -> str:
    """A run's predictions_test*.tsv (label names, or 3-decimal scores) -> the leaderboard's format."""
    rows = list(csv.reader(io.StringIO(predictions_tsv), delimiter="\t", quoting=csv.QUOTE_NONE))
    out = []
    for index, prediction in (row[:2] for row in rows[1:] if row):
        if task.regression:
            prediction = f"{min(max(float(prediction), 0.0), 5.0):.3f}"  # STS-B scores live in [0, 5]
        elif task.submission_labels == "index":
            prediction = str(task.label_names.index(prediction))
        out.append([index, prediction])
    return delimited_text(HEADER, out)


def write(folder: Path, run_dirs: dict[str, Path]) -> list[str]:
    """Write the submission files of the tasks in run_dirs (task name -> run folder) into folder."""
    folder = Path(folder)
    for stale in submission_files():
        (folder / stale).unlink(missing_ok=True)  # never mix in files of an older submission
    written = []
    for filename, (task, split) in submission_files().items():
        if task.name not in run_dirs:
            continue
        source = Path(run_dirs[task.name]) / f"predictions_{split}.tsv"
        if not source.is_file():
            raise GlueRunnerError(f"{source} is missing; run {task.name} with --do-predict to make it")
        write_atomic(folder / filename, convert(task, source.read_text(encoding="utf-8")))
        written.append(filename)
    return written


def expected_rows(cfg: RunConfig, filenames: list[str]) -> dict[str, int]:
    """Rows per submission file: the size of each full test set, read from cfg's data source."""
    counts = {}
    for filename in filenames:
        task, split = submission_files()[filename]
        full = replace(cfg, task=task.name, max_train_samples=None, max_eval_samples=None, max_predict_samples=None)
        splits = data.load_splits(task, full, log=lambda *a, **k: None)
        if split not in splits:
            raise GlueRunnerError(f"no {task.name} {split} data to count the rows of {filename}; "
                                  "add the GLUE test files to --data-dir")
        counts[filename] = len(splits[split].dataset)
    return counts


def validate(folder: Path, expected: dict[str, int] | None = None) -> list[str]:
    """Everything wrong with a submission folder, one line each; empty when it is valid."""
    folder = Path(folder)
    if not folder.is_dir():
        return [f"{folder} is not a folder"]
    files = submission_files()
    problems = [f"{name} is missing" for name in files if not (folder / name).is_file()]
    problems += [f"{p.name} is not a GLUE submission file; remove it"
                 for p in sorted(folder.iterdir()) if p.name not in files and not p.name.startswith(".")]
    for name, (task, _) in files.items():
        if (folder / name).is_file():
            problems += check_file(folder / name, task, expected.get(name) if expected else None)
    return problems


def check_file(path: Path, task: TaskSpec, expected_rows: int | None) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError:
        return [f"{path.name}: not UTF-8 text"]
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last row
    if not lines or lines[0] != "\t".join(HEADER):
        return [f"{path.name}:1: header must be 'index<TAB>prediction', found {lines[0] if lines else ''!r}"]
    problems, seen, bad = [], set(), 0
    for line_num, line in enumerate(lines[1:], start=2):
        error = check_row(line, task, seen)
        if error:
            bad += 1
            if bad == 1:
                problems.append(f"{path.name}:{line_num}: {error}")
    if bad > 1:
        problems.append(f"{path.name}: {bad} bad rows in all")
    rows = len(lines) - 1
    if expected_rows is not None and rows != expected_rows:
        problems.append(f"{path.name}: {rows} rows, but the test set has {expected_rows}"
                        + ("; was --max-predict-samples set?" if rows < expected_rows else ""))
    return problems


def check_row(line: str, task: TaskSpec, seen: set) -> str | None:
    fields = line.split("\t")
    if len(fields) != 2:
        return f"{len(fields)} fields, expected 2 (index, prediction)"
    index, prediction = fields
    if not index.isdigit():
        return f"index {index!r} is not a whole number"
    if index in seen:
        return f"index {index} appears twice"
    seen.add(index)
    allowed = allowed_labels(task)
    if allowed is not None:
        return None if prediction in allowed else f"prediction {prediction!r} is not one of {', '.join(allowed)}"
    try:
        value = float(prediction)
    except ValueError:
        return f"prediction {prediction!r} is not a number"
    return None if math.isfinite(value) and 0.0 <= value <= 5.0 else f"score {prediction} is outside [0, 5]"


def allowed_labels(task: TaskSpec) -> list[str] | None:
    """The predictions the leaderboard accepts for a task; None for a score (STS-B)."""
    if task.regression:
        return None
    if task.submission_labels == "names":
        return list(task.label_names)
    return [str(i) for i in range(len(task.label_names))]


def zip_folder(folder: Path) -> Path:
    """folder.zip with the files at its top level, as the leaderboard wants them."""
    folder = Path(folder)
    target = folder.with_suffix(".zip")
    tmp = target.with_name(f".{target.name}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in submission_files():
            zf.write(folder / name, arcname=name)
    tmp.replace(target)
    return target


def from_runs(run_dirs: dict[str, Path], cfg: RunConfig, name: str, say) -> Path | None:
    """After `glue-run --do-predict` on several tasks: write, check and zip the submission.

    Returns the zip, or None (saying why) when the folder is not a complete, valid submission.
    """
    folder = Path(cfg.results_dir) / "submissions" / safe_name(name)
    written = write(folder, run_dirs)
    problems = validate(folder, expected_rows(cfg, written))
    if problems:
        say(f"[yellow]submission files in {folder} ({len(written)} written) are not a valid GLUE submission, "
            f"so no zip was made:[/]")
        for problem in problems:
            say(f"[yellow]  {problem}[/]", highlight=False)
        return None
    target = zip_folder(folder)
    say(f"[green]GLUE submission: {target} (checked: {len(written)} files, rows, labels)[/]")
    return target
