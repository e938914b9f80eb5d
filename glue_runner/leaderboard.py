"""The leaderboard: every run under a results folder, one row per model, GLUE's columns.

    metrics.json files -> latest run per (model, task, seed) -> mean ± std over seeds
    -> GLUE score -> leaderboard.md, leaderboard.csv, leaderboard.png (and the terminal)

Numbers are dev-set scores times 100, as the GLUE leaderboard prints them. The ± is
the sample standard deviation over seeds (shown from two seeds on).
"""

import datetime
import json
import statistics
import sys
import textwrap
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from . import results, stats, tables
from .config import FIELDS, OPTIONS, SMOKE, names_path
from .errors import GlueRunnerError
from .files import delimited_text, markdown_table, png, write_atomic
from .tasks import get_task, glue_tasks


@dataclass(frozen=True)
class Column:
    name: str  # as gluebenchmark.com titles it
    task: str
    metrics: tuple[str, ...]  # in the leaderboard's order: "F1/Accuracy", "Pearson/Spearman"
    split: str  # the split it scores, whose predictions are predictions_<split>.tsv


def glue_columns() -> list[Column]:
    """The GLUE leaderboard's columns, in its order: each split of tasks/*.yaml with a `column:`."""
    return [Column(spec.column, task.name, tuple(m + spec.metric_suffix for m in task.metrics), split)
            for task in glue_tasks() for split, spec in task.splits.items() if spec.column]


def scored_tasks() -> set[str]:
    """The tasks of the GLUE score: those with a dev set (AX, a diagnostic, does not count)."""
    return {task.name for task in glue_tasks() if task.eval_splits}


@dataclass
class Cell:
    """One model on one column: per seed, metric -> value (x100); how many of those seeds' runs scored
    no better than the trivial predictor (the most frequent training label)."""
    per_seed: list[dict[str, float]]
    not_beaten: int = 0

    def values(self, metric: str) -> list[float]:
        return [s[metric] for s in self.per_seed if metric in s]

    def mean(self, metric: str) -> float | None:
        return stats.mean(self.values(metric))

    def std(self, metric: str) -> float | None:
        return stats.std(self.values(metric))

    def seed_scores(self) -> list[float]:
        """The column's score for each seed: the mean of its metrics."""
        return [stats.column_score(s) for s in self.per_seed if s]

    @property
    def score(self) -> float | None:
        return stats.mean(self.seed_scores())


@dataclass
class Row:
    model: str
    cells: dict[str, Cell]  # column name -> cell; a missing column is missing, never zero
    seeds: tuple[int, ...] = ()
    source: str = ""  # published rows: where the numbers come from
    note: str = ""  # what to know before comparing the row: subsets, untrained, or a published row's caveat

    def glue_score(self, columns: list[Column]) -> tuple[float | None, int, int]:
        """(score, scored tasks present, scored tasks shown) over `columns`."""
        return glue_score({c: cell.score for c, cell in self.cells.items()}, columns)


@dataclass
class Board:
    columns: list[Column]
    rows: list[Row] = field(default_factory=list)
    unreadable: list[results.Unreadable] = field(default_factory=list)
    own_data_runs: int = 0  # runs on the user's own files: not GLUE scores, so not in these columns


def glue_score(column_scores: dict[str, float | None], columns: list[Column] | None = None) -> tuple[float | None, int, int]:
    """The GLUE score as defined by Wang et al. (2018), "GLUE: A Multi-Task Benchmark and
    Analysis Platform for Natural Language Understanding", section 4 (Evaluation): a task with
    several metrics (MRPC, QQP: F1 and accuracy; STS-B: Pearson and Spearman) scores the
    unweighted mean of its metrics, and the benchmark score is the unweighted mean of the task
    scores. MNLI is one task: its matched and mismatched accuracies are averaged first. The
    diagnostic set AX is not part of the score. (Check: BERT-base's leaderboard row gives 78.3.)

    Missing tasks are left out, never counted as zero: the result is the mean over the scored
    tasks present, returned with how many were present and how many `columns` show, so a
    partial score is always labelled as partial (e.g. "4/9 tasks").
    """
    columns = glue_columns() if columns is None else columns
    scored = scored_tasks()
    by_task = defaultdict(list)
    for column in columns:
        score = column_scores.get(column.name)
        if column.task in scored and score is not None:
            by_task[column.task].append(score)
    shown = len({c.task for c in columns if c.task in scored})
    if not by_task:
        return None, 0, shown
    return statistics.fmean(statistics.fmean(v) for v in by_task.values()), len(by_task), shown


# ---- building the board ------------------------------------------------------

def parse_since(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise GlueRunnerError(f"--since '{text}' is not a date; write it as YYYY-MM-DD") from None


def select_columns(tasks: list[str] | None) -> list[Column]:
    if not tasks:
        return glue_columns()
    names = {get_task(t).name for t in tasks}
    return [c for c in glue_columns() if c.task in names]


def variant(run: dict) -> str:
    """What puts a run in its row besides its task and seed, as sorted JSON: its model (as its
    identity names it: an absolute path or a Hub id), every setting that changes the result
    other than the recipe's, and the recipe settings given as flags (metrics.json's
    "overrides"): a sweep with --learning-rate 2e-5 is one row, apart from the recipes' row,
    although 2e-5 is some tasks' recipe. Records from before "overrides" count as recipe runs."""
    identity = results.settings(results.record_identity(run))  # other data or weights make a newer run of the row
    settings = {k: v for k, v in identity.items() if k not in ("task", "seed") and OPTIONS[k].fallback is None}
    return json.dumps({**settings, **run.get("overrides", {})}, sort_keys=True)


def metric_values(run: dict, column: Column) -> dict[str, float]:
    """One run's metrics of `column`, x100; None marks a metric undefined on that run (e.g.
    constant predictions), so it is left out."""
    return {m: 100 * run["metrics"][m] for m in column.metrics if run["metrics"].get(m) is not None}


def task_columns(run: dict) -> list[Column]:
    """A run's task's leaderboard columns; a task of your own has one, of the metrics its run records."""
    columns = [c for c in glue_columns() if c.task == run["task"]]
    return columns or [Column(run["task"], run["task"], tuple(m for m in run["metrics"] if m != "combined_score"))]


def task_score(run: dict) -> float | None:
    """A run's score on its task (x100): its columns' scores averaged, as glue_score counts MNLI-m
    and MNLI-mm as one task; None when none of its metrics is defined."""
    scores = [stats.column_score(values) for column in task_columns(run) if (values := metric_values(run, column))]
    return stats.mean(scores)


def latest_runs(runs: list[dict], models: list[str] | None, since: datetime.date | None) -> list[dict]:
    """One run per (model, variant, task, seed): the most recent."""
    latest = {}
    for run in sorted(runs, key=lambda r: r.get("date", "")):
        if models and run.get("model_name") not in models:
            continue
        if since and not (run.get("date") and datetime.datetime.fromisoformat(run["date"]).date() >= since):
            continue
        latest[(run.get("model_name", ""), variant(run), run["task"], run.get("seed"))] = run
    return list(latest.values())


def row_names(keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """(model name, variant) -> the row's name: the model's name, and where two rows share it,
    the settings in which they differ."""
    names = {}
    for name in {n for n, _ in keys}:
        variants = {v: json.loads(v) for n, v in keys if n == name}
        differ = sorted({k for a in variants.values() for b in variants.values() for k in {*a, *b} if a.get(k) != b.get(k)})
        paths = {k: short_paths([s.get(k) for s in variants.values()]) for k in differ
                 if any(value and names_path(FIELDS[k], value) for value in (s.get(k) for s in variants.values()))}
        for v, settings in variants.items():
            # a smoke row is named "smoke", not by the preset's limits beside it
            preset = {k for k, v in SMOKE.items() if settings.get("smoke") and settings.get(k) == v}
            shown = ", ".join(text for k in differ if k not in preset and
                              (text := setting_text(k, paths[k].get(settings.get(k)) if k in paths else settings.get(k))))
            names[(name, v)] = name + (f" ({shown})" if shown else "")
    return names


def short_paths(values: list) -> dict:
    """Each path as a row's name shows it: never whole (a name carries no machine's folders), but with as
    many of its last parts as tell it from the others ("model", "a/model", "a/…/model")."""
    parts = {value: Path(value).parts for value in values if value}
    shown = {}
    for value, mine in parts.items():
        for k in range(1, len(mine) + 1):
            if sum(other[-k:] == mine[-k:] for other in parts.values()) == 1 or k == len(mine):
                break
        tail = mine[-k:] if k <= 2 else (mine[-k], "…", mine[-1])
        shown[value] = "/".join(p for p in tail if p != "/")
    return shown


def setting_text(key: str, value) -> str:
    """A setting as a row's name shows it: a switch by its name when on, a recipe setting left to
    the recipe as "recipe", others as key=value; "" for a setting off or unset, so the plain run's
    row is the model's name alone beside "model (probe)". The names stay distinct: two rows that
    differ in a setting show it on at least one of them."""
    if isinstance(value, bool):
        return key if value else ""
    if value is None:
        return f"{key}=recipe" if OPTIONS[key].fallback is not None else ""
    return f"{key}={value}"


def by_row(runs: list[dict]) -> dict[str, list[dict]]:
    """Row name -> its runs: one row per model and settings (see variant), in name order."""
    keys = [(run.get("model_name", ""), variant(run)) for run in runs]
    names = row_names(keys)
    rows = defaultdict(list)
    for run, key in zip(runs, keys):
        rows[names[key]].append(run)
    return dict(sorted(rows.items()))


def rows_from_runs(runs: list[dict], columns: list[Column]) -> list[Row]:
    rows = []
    for name, model_runs in by_row(runs).items():
        cells = {}
        for column in columns:
            per_seed, not_beaten = [], 0
            for run in sorted(model_runs, key=lambda r: r.get("seed") or 0):
                if run["task"] != column.task:
                    continue
                values = metric_values(run, column)
                if values:
                    per_seed.append(values)
                    not_beaten += tables.NOT_BEATEN in tables.run_notes(run)
            if per_seed:
                cells[column.name] = Cell(per_seed, not_beaten)
        seeds = tuple(sorted({r["seed"] for r in model_runs if r.get("seed") is not None}))
        # the cells say which runs did not beat their baseline; the row's notes, what holds for its runs
        notes = sorted({note for r in model_runs for note in tables.run_notes(r) if note != tables.NOT_BEATEN})
        rows.append(Row(name, cells, seeds, note="; ".join(notes)))
    return rows


def reference_rows(columns: list[Column]) -> list[Row]:
    text = resources.files("glue_runner").joinpath("reference_scores.yaml").read_text(encoding="utf-8")
    shown = {c.name for c in columns}
    return [Row(entry["model"], {name: Cell([dict(values)]) for name, values in entry["scores"].items() if name in shown},
                source=entry["source"], note=entry.get("note", ""))
            for entry in yaml.safe_load(text)]


def check_models(runs: list[dict], models: list[str], results_dir: Path) -> None:
    known = sorted({r.get("model_name", "") for r in runs})
    unknown = [m for m in models if m not in known]
    if unknown:
        raise GlueRunnerError(f"no runs of model {', '.join(map(repr, unknown))} under {results_dir}; "
                              f"models there: {', '.join(known) or 'none'}")


def glue_runs(results_dir: Path) -> tuple[list[dict], list[results.Unreadable], int]:
    """The runs of GLUE tasks on GLUE data under results_dir, the run files that cannot be read,
    and how many runs are on the user's own data or tasks (not GLUE scores, so not shown here)."""
    runs, unreadable = results.load_runs(results_dir)
    glue = {t.name for t in glue_tasks()}
    kept = [r for r in runs if r["task"] in glue and "own data" not in tables.run_notes(r)]
    return kept, unreadable, len(runs) - len(kept)


def build(results_dir: Path, models: list[str] | None = None, tasks: list[str] | None = None,
          since: datetime.date | None = None, reference: bool = False) -> Board:
    columns = select_columns(tasks)
    runs, unreadable, own_data_runs = glue_runs(results_dir)
    if models:
        check_models(runs, models, results_dir)
    rows = [r for r in rows_from_runs(latest_runs(runs, models, since), columns) if r.cells]
    if not rows and not reference:
        if own_data_runs and not runs:
            raise GlueRunnerError(f"the {own_data_runs} finished run(s) under {results_dir} are on your own data or "
                                  "tasks, which have no GLUE columns; runs.md there lists them with their scores")
        raise GlueRunnerError(f"no finished runs under {results_dir} match (no metrics.json); "
                              "run glue-run --task ... first, or loosen --model/--task/--since")
    return Board(columns, rows + (reference_rows(columns) if reference else []), unreadable, own_data_runs)


# ---- showing it ----------------------------------------------------------------

# after a cell with a seed no better than its baseline; the footnote says what it means
NOT_BEATEN_MARK = "†"


def format_cell(cell: Cell | None, column: Column) -> str:
    if cell is None:
        return "–"
    if not any(cell.values(m) for m in column.metrics):
        return f"{cell.score:.1f}"  # a published number whose metric the source leaves unstated
    parts = []
    for metric in column.metrics:
        mean, std = cell.mean(metric), cell.std(metric)
        parts.append("–" if mean is None else f"{mean:.1f}" + (f" ± {std:.1f}" if std is not None else ""))
    return "/".join(parts) + (f" {NOT_BEATEN_MARK}" if cell.not_beaten else "")


def format_score(row: Row, columns: list[Column]) -> str:
    score, present, shown = row.glue_score(columns)
    if score is None:
        return "–"
    return f"{score:.1f}" + ("" if present == shown else f" ({present}/{shown} tasks)")


def table(board: Board) -> tuple[list[str], list[list[str]]]:
    header = ["Model", "Seeds", *[c.name + (" (" + "/".join(metric_label(m) for m in c.metrics) + ")"
                                            if len(c.metrics) > 1 else "") for c in board.columns], "GLUE score",
              "Notes"]
    rows = [[row.model, ",".join(map(str, row.seeds)) or "published",
             *[format_cell(row.cells.get(c.name), c) for c in board.columns], format_score(row, board.columns),
             "" if row.source else row.note]
            for row in board.rows]
    return header, rows


def footnotes(board: Board) -> list[str]:
    """What the table leaves out, and why."""
    notes = [f"{board.own_data_runs} run(s) on your own data or tasks are not GLUE scores and are left out of "
             "these columns; runs.md lists them."] if board.own_data_runs else []
    if any(cell.not_beaten for row in board.rows for cell in row.cells.values()):
        notes.append(f"{NOT_BEATEN_MARK}: at least one seed there scored no better than predicting the most frequent "
                     "training label for every example (its metrics.json's \"baseline\"): that run learned nothing "
                     "usable.")
    return notes + [f"Unreadable: {u.warning()}" for u in board.unreadable]


def metric_label(metric: str) -> str:
    """A metric's short name in a column head ("MRPC (F1/Acc)"); a metric without one shows its own."""
    return {"f1": "F1", "accuracy": "Acc", "pearson": "Pearson", "spearmanr": "Spearman"}.get(metric, metric)


def markdown(board: Board) -> str:
    header, rows = table(board)
    scored = [c.name for c in board.columns if c.task in scored_tasks()]
    lines = [
        "# GLUE leaderboard (dev sets)", "",
        "Made by `glue-run leaderboard` from every run under this folder (the latest run per model, task "
        "and seed). Scores x100; `a ± s` is the mean and sample standard deviation over seeds; `–` is "
        "missing. AX has no dev labels, so it stays empty until scored by gluebenchmark.com.", "",
        markdown_table(header, rows),
        "GLUE score: each task's metrics averaged, then the mean over the tasks "
        f"({', '.join(scored)}; MNLI-m and MNLI-mm count as one task), as in Wang et al. (2018). "
        "Missing tasks are left out, and such a score is marked `(present/shown tasks)`: compare it only "
        "with scores over the same tasks (`--task`). Notes: `subset` rows trained or scored on the first N "
        "examples only (--max-train-samples, --max-eval-samples); `untrained` rows were scored without "
        "training (--num-train-epochs 0); `probe` rows trained only a linear head on the frozen encoder's "
        "features (--probe): beside the same model's fine-tuned row, they show what fine-tuning adds. Compare "
        "rows only with rows of the same subset notes.",
    ]
    lines += [""] + [f"- {note}" for note in footnotes(board)] if footnotes(board) else []
    published = [r for r in board.rows if r.source]
    if published:
        lines += ["", "Published rows:", ""] + [f"- {r.model}: {r.source}. {r.note}" for r in published]
    return "\n".join(lines) + "\n"


def csv_text(board: Board) -> str:
    header = ["model", "seeds"]
    for c in board.columns:
        for m in c.metrics:
            header += [f"{c.name} {m}", f"{c.name} {m} std"]
        header.append(f"{c.name} score")
    header += ["glue_score", "glue_tasks", "notes", "source"]
    rows = []
    for row in board.rows:
        line = [row.model, " ".join(map(str, row.seeds))]
        for c in board.columns:
            cell = row.cells.get(c.name)
            for m in c.metrics:
                line += [fmt(cell and cell.mean(m)), fmt(cell and cell.std(m))]
            line.append(fmt(cell and cell.score))  # the task's metrics averaged, as the GLUE score uses it
        score, present, shown = row.glue_score(board.columns)
        rows.append(line + [fmt(score), f"{present}/{shown}", "" if row.source else row.note, row.source])
    return delimited_text(header, rows, ",")


def fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def rich_table(board: Board):
    """The Markdown table for the terminal, less the columns no row has (the files keep them)."""
    from rich.table import Table

    header, rows = table(board)
    keep = [i for i in range(len(header)) if i < 2 or any(row[i] not in ("–", "") for row in rows)]
    empty = [header[i] for i in range(len(header) - 1) if i not in keep]
    caption = [f"no numbers yet: {', '.join(empty)}"] if empty else []
    caption += [note for note in footnotes(board) if not note.startswith("Unreadable")]
    out = Table(title="GLUE leaderboard (dev sets, x100, mean ± std over seeds)",
                caption="\n".join(caption) or None)
    for i in keep:
        out.add_column(header[i], justify="left" if i < 2 else "right")
    for row in rows:
        out.add_row(*[row[i] for i in keep])
    return out


def chart(board: Board, verdicts: dict[str, str] | None = None, glue_over: list[Column] | None = None):
    """Grouped bars: one group per task column (and the GLUE score), one bar per model;
    error bars are the standard deviation over seeds of the column's score; `verdicts`
    (glue-run compare's, per group) are written over their groups; glue_over: the columns the
    GLUE score is over (default: the board's). A matplotlib Figure; the caller saves and closes it."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, none opened
    import matplotlib.pyplot as plt

    columns = [c for c in board.columns if any(c.name in r.cells for r in board.rows)]
    groups = [c.name for c in columns] + ["GLUE score"]
    width = 0.8 / max(len(board.rows), 1)
    fig, ax = plt.subplots(figsize=(max(8, 1.1 * len(groups) + 2), 5), layout="constrained")
    for i, row in enumerate(board.rows):
        heights, errors = [], []
        for c in columns:
            cell = row.cells.get(c.name)
            heights.append(cell.score if cell else float("nan"))
            spread = cell.seed_scores() if cell else []
            errors.append(statistics.stdev(spread) if len(spread) > 1 else float("nan"))  # NaN: no bar
        score, present, shown = row.glue_score(glue_over or board.columns)
        heights.append(float("nan") if score is None else score)
        errors.append(float("nan"))
        x = [g + (i - (len(board.rows) - 1) / 2) * width for g in range(len(groups))]
        bars = ax.bar(x, heights, width, yerr=errors, capsize=3, label=textwrap.fill(row.model, 70),
                      hatch="//" if row.source else None, alpha=0.6 if row.source else 1.0)
        labels = ["" if h != h else f"{h:.1f}" for h in heights]  # h != h: NaN, a missing cell
        if score is not None and present < shown:
            labels[-1] += f" ({present}/{shown})"  # a partial GLUE score says so
        ax.bar_label(bars, labels, fontsize=7, padding=3, rotation=90)
    for g, group in enumerate(groups):
        if verdicts and verdicts.get(group):
            ax.annotate(textwrap.fill(verdicts[group], 13), (g, 1), xycoords=("data", "axes fraction"), xytext=(0, -4),
                        textcoords="offset points", ha="center", va="top", fontsize=7, fontweight="bold")
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel("dev score x100 (task's metrics averaged)")
    ax.margins(y=0.3 if verdicts else 0.15)  # room for the value labels (and verdicts) above the tallest bars
    # Title over the figure and legend under it: beside the bars, a legend of long row names
    # ("model (learning_rate=2e-05, ...)") squeezed the axes until a title over them ran off the picture.
    fig.suptitle("GLUE dev-set scores\nmean over seeds, error bars ±1 std; hatched = published", fontsize=10)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.grid(axis="y", alpha=0.3)
    fig.legend(loc="outside lower center", fontsize="small")
    return fig


def show(console, results_dir: Path, **filters) -> None:
    """Build results_dir's board, rebuild its runs tables and write the board's files, then print it,
    naming every run file that cannot be read. A folder with nothing to show gets no files; one that cannot
    be written (a shared, read-only one) is still shown, and said to be unwritten."""
    from rich.console import Console

    board = build(results_dir, **filters)
    try:
        tables.update_tables(results_dir)
        paths = write(board, results_dir)
    except (OSError, GlueRunnerError) as e:
        paths, unwritten = [], getattr(e, "strerror", None) or str(e)
    # Piped output has no width to fit: give the wide table room instead of wrapping every cell.
    Console(width=None if sys.stdout.isatty() else 250).print(rich_table(board))
    for problem in board.unreadable:
        console.print(f"[yellow]warning: {problem.warning()}[/]", highlight=False, soft_wrap=True)
    if paths:
        console.print(f"wrote {', '.join(map(str, paths))}", highlight=False, soft_wrap=True)
    else:
        console.print(f"[yellow]warning: the leaderboard's and the runs' tables in {results_dir} were not rewritten "
                      f"({unwritten}); the table above is complete. To keep them, copy the folder to one you can "
                      "write to and run glue-run leaderboard --results-dir there[/]", highlight=False, soft_wrap=True)


def write(board: Board, results_dir: Path) -> list[Path]:
    results_dir = Path(results_dir)
    md, csv_path, picture = (results_dir / f"leaderboard.{ext}" for ext in ("md", "csv", "png"))
    write_atomic(md, markdown(board))
    write_atomic(csv_path, csv_text(board))
    write_atomic(picture, png(chart(board)))
    return [md, csv_path, picture]
