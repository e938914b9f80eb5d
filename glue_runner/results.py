"""Write one run's results and keep the results table under results/ up to date.

A run's folder holds metrics.json (written last: a run counts only once it is
there), dev predictions and, with --do-predict, test predictions. Every file is
written to a temporary name and renamed into place, so a crash or Ctrl-C never
leaves half a file. The tables (runs.csv, runs.md) are regenerated from every
metrics.json under results/ while holding a lock, so runs that finish at the
same moment, or die mid-write, cannot lose or mangle each other's rows.
"""

import csv
import fcntl
import io
import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

# evaluate's GLUE metric names, in the order tables show them
METRIC_ORDER = ["matthews_correlation", "accuracy", "f1", "pearson", "spearmanr", "combined_score",
                "accuracy_mm"]


def safe_name(name: str) -> str:
    """A folder name that stays inside its parent: no separators, no '..', no odd characters."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip().replace("/", "__")).strip("._")
    return cleaned or "unnamed"


UMASK = os.umask(0o022)
os.umask(UMASK)  # reading the umask means setting it: put it straight back


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~UMASK)  # mkstemp makes 0600 files; results are as readable as any other file
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def delimited_text(header: list[str], rows: list, delimiter: str = "\t") -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_run(output_dir: Path, record: dict, predictions: dict[str, str]) -> Path:
    """predictions: file name -> TSV text. metrics.json goes last: it marks the run complete."""
    for name, text in predictions.items():
        write_atomic(output_dir / name, text)
    write_atomic(output_dir / "metrics.json", json.dumps(record, indent=2, allow_nan=False) + "\n")
    return output_dir / "metrics.json"


@contextmanager
def locked(results_dir: Path):
    results_dir.mkdir(parents=True, exist_ok=True)
    with open(results_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by the kernel if the process dies
        yield


def load_runs(results_dir: Path) -> list[dict]:
    runs = []
    for path in sorted(Path(results_dir).rglob("metrics.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue  # not ours or unreadable: a table must still be made from the rest
        if isinstance(record, dict) and "task" in record and "metrics" in record:
            record["path"] = str(path.parent)
            runs.append(record)
    return runs


def table_rows(runs: list[dict], results_dir: Path) -> tuple[list[str], list[list]]:
    metric_names = [m for m in METRIC_ORDER if any(m in r["metrics"] for r in runs)]
    metric_names += sorted({m for r in runs for m in r["metrics"]} - set(metric_names))
    header = ["date", "task", "model", "seed", *metric_names, "train_samples", "samples_per_s", "train_s", "run"]
    rows = []
    for r in sorted(runs, key=lambda r: (r.get("date", ""), r["task"], r.get("model_name", ""))):
        train = r.get("train", {})
        rows.append([r.get("date", ""), r["task"], r.get("model_name", ""), r.get("seed", ""),
                     *[_fmt(r["metrics"].get(m)) for m in metric_names],
                     train.get("samples", ""), _fmt(train.get("samples_per_second"), 1),
                     _fmt(train.get("seconds"), 1), os.path.relpath(r["path"], results_dir)])
    return header, rows


def _fmt(value, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) if c != "" else "–" for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def update_tables(results_dir: Path) -> None:
    results_dir = Path(results_dir)
    with locked(results_dir):
        for stale in results_dir.glob(".runs.*.tmp"):  # left by a writer killed mid-update; we hold the lock
            stale.unlink(missing_ok=True)
        header, rows = table_rows(load_runs(results_dir), results_dir)
        write_atomic(results_dir / "runs.csv", delimited_text(header, rows, ","))
        write_atomic(results_dir / "runs.md", "# glue-runner runs\n\nOne row per run, regenerated from every "
                     "`metrics.json` below this folder.\n\n" + markdown_table(header, rows))
