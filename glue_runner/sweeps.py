"""Sweeps beyond one run per task and seed: the papers' search protocol, and the bounds CI gates on.

    --grid learning_rate=2e-5,3e-5 batch_size=16,32   every point for every task and seed; each task's
                                                      best point on the dev set is selected, and
                                                      <results-dir>/grids/<model>-<hash>.md/.json record it
    --expect cola:matthews_correlation>=0.3           checked after the sweep (mean over seeds): exit 3
    --expect-file FILE                                if one is missed

A grid point is a set of settings, so each task, seed and point is a run identity of its own:
its own folder, its own leaderboard row, skipped when already done. Nothing here runs anything;
cli.py is imported where flags are read, so run.py can use the rest without it.
"""

from __future__ import annotations

import itertools
import json
import math
import operator
import os
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import leaderboard, results, stats, tables
from .config import FIELDS, OPTIONS, RunConfig, check_bounds, comma_list, converter, flag, option_of, value_type
from .data import task_for
from .errors import GlueRunnerError
from .files import disk_errors, markdown_table, safe_name, write_atomic
from .run import Outcome
from .tasks import TaskSpec

if TYPE_CHECKING:
    import argparse
    import dataclasses


# ---- the grid ----------------------------------------------------------------

# RunConfig settings that change the result but are a sweep's axes already, not a grid's
OWN_AXES = {"task": "--task takes a comma list", "seed": "--seeds takes a comma list",
            "model": "run a grid per model, then glue-run compare them"}


@dataclass
class Grid:
    """Settings -> the values to try; its points are every combination, in the order given."""
    axes: dict[str, tuple]

    def points(self) -> list[dict]:
        return [dict(zip(self.axes, values)) for values in itertools.product(*self.axes.values())]

    def point_of(self, cfg: RunConfig) -> tuple:
        """cfg's values of the grid's settings, as points() orders them."""
        return tuple(getattr(cfg, name) for name in self.axes)


def parse_grid(args: argparse.Namespace) -> Grid:
    """--grid's NAME=V1,V2 items, each value converted and bounds-checked as its flag's would be."""
    if args.output_dir:
        raise GlueRunnerError("--grid makes a run per point, each in its own folder under --results-dir; "
                              "drop --output-dir")
    axes = {}
    for item in args.grid:
        name, _, text = item.partition("=")
        name = name.strip().replace("-", "_")
        values = [v.strip() for v in text.split(",") if v.strip()]
        if not name or not values:
            raise GlueRunnerError(f"--grid '{item}' is not NAME=V1,V2,... (e.g. learning_rate=2e-5,3e-5)")
        if name in axes:
            raise GlueRunnerError(f"--grid names {name} twice; give all its values in one item")
        f = grid_field(name)
        if getattr(args, name) != f.default:
            raise GlueRunnerError(f"--grid {name} and {flag(name)} both set {name}; drop one")
        axes[name] = tuple(dict.fromkeys(grid_value(f, v) for v in values))  # a value given twice is one point
    return Grid(axes)


def grid_field(name: str) -> dataclasses.Field:
    """The RunConfig field a grid may vary: one that changes the result and whose flag takes one value."""
    allowed = [n for n, f in FIELDS.items() if option_of(f).changes_result and n not in OWN_AXES
               and value_type(f) is not bool and converter(f) is not comma_list]
    choose = f"; grid settings: {', '.join(allowed)}"
    if name in OWN_AXES:
        raise GlueRunnerError(f"--grid {name}: every point already runs for each {name} of the sweep; "
                              f"{OWN_AXES[name]}")
    if name not in FIELDS:
        raise GlueRunnerError(f"--grid: unknown setting '{name}'{choose}")
    if not OPTIONS[name].changes_result:
        raise GlueRunnerError(f"--grid {name}: it does not change the result, so there is nothing to select{choose}")
    if name not in allowed:
        kind = "a switch" if value_type(FIELDS[name]) is bool else "a list"
        raise GlueRunnerError(f"--grid {name}: {flag(name)} is {kind}, not one value; run a sweep for each "
                              f"setting of it{choose}")
    return FIELDS[name]


def grid_value(f: dataclasses.Field, text: str):
    try:
        value = converter(f)(text)
    except ValueError:
        raise GlueRunnerError(f"--grid {f.name}: '{text}' is not a valid {flag(f.name)} value "
                              f"({converter(f).__name__})") from None
    if option_of(f).choices and value not in option_of(f).choices:
        raise GlueRunnerError(f"--grid {f.name}: '{text}' is not one of {', '.join(option_of(f).choices)}")
    try:
        check_bounds(RunConfig(task="", model="", **{f.name: value}))
    except GlueRunnerError as e:
        raise GlueRunnerError(f"--grid {f.name}: {e}") from None
    return value


# ---- selection and the grid's report -------------------------------------------

INFLATION = ("Selecting on the dev set inflates dev scores: the selected point won a comparison on these same "
             "examples, so its dev score is an optimistic estimate of how it does on new data. Report the "
             "test-set score of the selected point (--do-predict builds the GLUE submission from it), not its "
             "dev score.")


@dataclass
class Point:
    """One task at one grid point: its runs, one per seed of the sweep."""
    task: str
    settings: dict
    runs: list[tuple[RunConfig, Outcome]]

    def seed_scores(self) -> list[float]:
        """The task's score (x100, its metrics averaged as the leaderboard does) for each seed that has one."""
        return [s for _, o in self.runs if (s := leaderboard.task_score(o.record)) is not None]

    @property
    def score(self) -> float | None:
        scores = self.seed_scores()
        return stats.mean(scores)

    @property
    def undefined(self) -> int:
        """Seeds whose score is undefined (a model that predicts a constant has no correlation, say)."""
        return len(self.runs) - len(self.seed_scores())

    def metrics(self) -> leaderboard.Cell:
        """Metric -> its values over the seeds (x100), for the metrics the task's columns show."""
        return leaderboard.Cell([{m: v for c in leaderboard.task_columns(o.record)
                                  for m, v in leaderboard.metric_values(o.record, c).items()} for _, o in self.runs])


def select(points: list[Point]) -> int:
    """The point with the best dev score (mean over seeds). An undefined score loses: a point with
    fewer seeds undefined beats one with more, whatever their means (a seed that collapsed is no
    evidence for its point); a tie goes to the earlier point; when no point has a score the first stands."""
    scored = [i for i, p in enumerate(points) if p.score is not None]
    return max(scored, key=lambda i: (-points[i].undefined, points[i].score, -i), default=0)


@dataclass
class GridReport:
    name: str  # the report's file name: <model>-<8 hex digits of the sweep's run identities>
    model: str
    grid: Grid
    seeds: list[int]
    points: dict[str, list[Point]]  # task -> its points, in grid order
    selected: dict[str, int]  # task -> the index of its selected point
    results_dir: Path

    def chosen_runs(self) -> list[tuple[RunConfig, Outcome]]:
        return [run for task, points in self.points.items() for run in points[self.selected[task]].runs]


def grid_report(grid: Grid, configs: list[RunConfig], outcomes: list[Outcome]) -> GridReport:
    """The sweep's runs by task and point, and each task's selected point. A task predicted with
    another task's model (AX) takes that task's selection: it has no dev set of its own."""
    runs, specs = defaultdict(list), {}
    for cfg, outcome in zip(configs, outcomes):
        specs[outcome.record["task"]] = task_for(cfg)
        runs[outcome.record["task"], grid.point_of(cfg)].append((cfg, outcome))
    points = {task: [Point(task, p, runs[task, tuple(p.values())]) for p in grid.points()] for task in specs}
    selected = {}
    for task in sorted(points, key=lambda t: bool(specs[t].predict_with)):  # AX after MNLI
        source = specs[task].predict_with
        selected[task] = selected[source] if source in selected else select(points[task])
    model = outcomes[0].record["model_name"]
    sweep = results.identity_hash({"runs": [cfg.identity() for cfg in configs]})
    return GridReport(f"{safe_name(model)}-{sweep}", model, grid, list(dict.fromkeys(c.seed for c in configs)),
                      points, selected, Path(configs[0].results_dir))


def chosen_runs(configs: list[RunConfig], outcomes: list[Outcome], grid: Grid | None) -> list[tuple]:
    """The runs a sweep's result rests on: with a grid, each task's selected point; else all of them."""
    return grid_report(grid, configs, outcomes).chosen_runs() if grid else list(zip(configs, outcomes))


def summary(values: list[float]) -> dict:
    return {"mean": stats.mean(values), "std": stats.std(values), "seeds": len(values)}


def value_text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def metric_names(report: GridReport) -> list[str]:
    return list(dict.fromkeys(m for points in report.points.values() for point in points for _, o in point.runs
                              for c in leaderboard.task_columns(o.record) for m in c.metrics))


def table(report: GridReport) -> tuple[list[str], list[list[str]]]:
    """One row per task and point: its settings, seeds, score and metrics (mean ± std), and the selection."""
    names = metric_names(report)
    header = ["task", *report.grid.axes, "seeds", "score", *names, "selected", "notes"]
    rows = []
    for task, points in report.points.items():
        for i, point in enumerate(points):
            cell = point.metrics()
            rows.append([task, *map(value_text, point.settings.values()), str(len(point.runs)),
                         stats.mean_std(point.seed_scores()), *[stats.mean_std(cell.values(m)) for m in names],
                         "✓" if i == report.selected[task] else "", "; ".join(notes(point))])
    return header, rows


def markdown(report: GridReport) -> str:
    header, rows = table(report)
    axes = "; ".join(f"`{name}` in {', '.join(map(value_text, values))}" for name, values in report.grid.axes.items())
    return "\n".join([
        f"# Grid search: {report.model}", "",
        f"Made by `glue-run --grid`: {axes}; seeds {', '.join(map(str, report.seeds))}. Every point was trained "
        "once per seed. Dev-set scores x100, `mean ± std` over the seeds; a task's score is the mean of its "
        "metrics (MNLI's matched and mismatched accuracies averaged), as the GLUE score counts it. Each task's "
        "selected point (✓) has the best score; AX, which has no dev set, takes MNLI's.", "",
        f"**{INFLATION}**", "",
        markdown_table(header, rows)])


def to_json(report: GridReport) -> dict:
    names = metric_names(report)
    tasks = {}
    for task, points in report.points.items():
        tasks[task] = {"selected": points[report.selected[task]].settings,
                       "points": [point_json(p, i == report.selected[task], names, report) for i, p in enumerate(points)]}
    return {"model": report.model, "grid": report.grid.axes, "seeds": report.seeds,
            "scores": "dev set, x100; a task's score is the mean of its metrics; mean and std over the seeds",
            "note": INFLATION, "tasks": tasks}


def point_json(point: Point, selected: bool, names: list[str], report: GridReport) -> dict:
    cell = point.metrics()
    return {"settings": point.settings, "selected": selected, "seeds": [cfg.seed for cfg, _ in point.runs],
            "score": summary(point.seed_scores()),
            "metrics": {m: summary(cell.values(m)) for m in names if cell.values(m)},
            "runs": [os.path.relpath(o.output_dir, report.results_dir) for _, o in point.runs],
            "notes": notes(point)}


def notes(point: Point) -> list[str]:
    undefined = [f"score undefined on {point.undefined} of {len(point.runs)} seed(s)"] if point.undefined else []
    return undefined + sorted({n for _, o in point.runs for n in tables.run_notes(o.record)})


def record(grid: Grid, configs: list[RunConfig], outcomes: list[Outcome]) -> GridReport:
    """The grid's report, written to <results-dir>/grids/<name>.md and .json: the same sweep
    (the same runs) finds and rewrites the same files."""
    report = grid_report(grid, configs, outcomes)
    folder = report.results_dir / "grids"
    with disk_errors(str(folder), "The runs' own files are complete",
                             "run the same command again: the finished runs are skipped"):
        write_atomic(folder / f"{report.name}.md", markdown(report))
        write_atomic(folder / f"{report.name}.json",
                             json.dumps(to_json(report), indent=2, default=str, allow_nan=False) + "\n")
    return report


def show(report: GridReport, console) -> None:
    from rich.console import Console
    from rich.table import Table

    header, rows = table(report)
    out = Table(title=f"Grid search: {report.model} (dev sets, x100, mean ± std over seeds; ✓ selected)",
                caption="The selected point's dev score is optimistic: report its test-set score")
    for i, name in enumerate(header):
        out.add_column(name, justify="right" if 0 < i < len(header) - 1 else "left")
    for row in rows:
        out.add_row(*row)
    Console(width=None if sys.stdout.isatty() else 250).print(out)  # as leaderboard.show: wide tables stay whole
    folder = report.results_dir / "grids"
    console.print(f"wrote {folder / report.name}.md, {folder / report.name}.json", highlight=False, soft_wrap=True)


# ---- expected bounds ---------------------------------------------------------------

OPERATORS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
BOUND = re.compile(r"\s*([\w-]+)\s*:\s*(\w+)\s*(>=|<=|>|<)\s*(\S+)\s*")


@dataclass(frozen=True)
class Bound:
    task: str
    metric: str
    operator: str
    value: float

    def __str__(self) -> str:
        return f"{self.task}:{self.metric}{self.operator}{self.value:g}"


def reported_metrics(task: TaskSpec) -> list[str]:
    """The dev metrics a task's runs record: each dev split's metrics with its suffix, and, where a
    split has several, their mean, combined_score (as metrics.compute_metrics adds it)."""
    names = []
    for split in task.eval_splits:
        suffix = task.splits[split].metric_suffix
        names += [m + suffix for m in task.metrics] + (["combined_score" + suffix] if len(task.metrics) > 1 else [])
    return names


def parse_bounds(texts: list[str] | None, file: Path | None, tasks: list[TaskSpec]) -> list[Bound]:
    """--expect's comma lists and --expect-file's lines (comma lists too, # starts a comment), checked
    against the sweep's tasks before it runs."""
    items = [(f"--expect '{text}'", text) for text in texts or []]
    if file:
        try:
            lines = Path(file).read_text(encoding="utf-8-sig").splitlines()  # -sig: editors that write a BOM
        except (OSError, UnicodeDecodeError) as e:
            raise GlueRunnerError(f"--expect-file {file} cannot be read ({getattr(e, 'strerror', None) or e}); "
                                  "give a text file with one bound a line") from None
        items += [(f"{file}:{n}", line.split("#")[0]) for n, line in enumerate(lines, start=1)]
    bounds = [parse_bound(where, bound, tasks) for where, text in items for bound in text.split(",") if bound.strip()]
    if file and not bounds:
        raise GlueRunnerError(f"--expect-file {file} holds no bounds (only blank lines and comments): a gate that "
                              "checks nothing would pass every time; add TASK:METRIC>=X lines")
    return bounds


def parse_bound(where: str, text: str, tasks: list[str]) -> Bound:
    match = BOUND.fullmatch(text)
    if not match:
        raise GlueRunnerError(f"{where}: '{text.strip()}' is not TASK:METRIC followed by >=, >, <= or < and a number "
                              "(e.g. cola:matthews_correlation>=0.3)")
    task_name, metric, op, number = match.groups()
    in_sweep = {task.name: task for task in tasks}
    task = in_sweep.get(task_name.lower().replace("-", ""))
    if task is None:
        raise GlueRunnerError(f"{where}: {task_name} is not in this sweep ({', '.join(in_sweep)}); "
                              f"add it to --task or drop the bound")
    reported = reported_metrics(task)
    if metric not in reported:
        raise GlueRunnerError(f"{where}: {task.name} does not report {metric}; "
                              + (f"it reports {', '.join(reported)}" if reported else "it has no dev set"))
    try:
        value = float(number)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value):
        raise GlueRunnerError(f"{where}: '{number}' is not a finite number")
    if abs(value) > 1:  # every metric lies in [-1, 1]; the tables' scores are x100
        raise GlueRunnerError(f"{where}: {metric} lies between -1 and 1 in metrics.json (the tables show it x100), so "
                              f"{number} cannot be met or missed; did you mean {value / 100:g}?")
    return Bound(task.name, metric, op, value)


def check_expected(bounds: list[Bound], runs: list[tuple[RunConfig, Outcome]], console) -> bool:
    """Each bound against the mean over the seeds of its task's runs: a line per bound that held, and
    one naming every bound missed with the value it got. True when all held."""
    missed = []
    for bound in bounds:
        found = [o.record["metrics"].get(bound.metric) for cfg, o in runs if o.record["task"] == bound.task]
        values = [v for v in found if v is not None]
        got = stats.mean(values)
        # an undefined value (constant predictions) meets no bound: the mean of the others would hide a collapse
        undefined = f"; undefined on {len(found) - len(values)} of {len(found)}" if len(values) < len(found) else ""
        said = f"{bound}: got {got:.4f} (mean of {len(values)} seed(s){undefined})" if values else \
            f"{bound}: got no value (undefined on every run)"
        if got is not None and not undefined and OPERATORS[bound.operator](got, bound.value):
            console.print(f"[green]held[/] {said}", highlight=False, soft_wrap=True)
        else:
            missed.append(said)
    if missed:
        console.print(f"[bold red]missed {len(missed)} of {len(bounds)} expected bound(s):[/] " + "; ".join(missed),
                      highlight=False, soft_wrap=True)
    return not missed


def check_smoke(runs: list[tuple[RunConfig, Outcome]], console) -> bool:
    """--smoke's verdicts over the sweep (metrics.json's "smoke"): a line of the tasks that learned and those not
    expected to in their budget, and one naming each task expected to learn that did not, with its score and the
    baseline's. True when every task expected to learn did."""
    verdicts = [(o.record["task"], o.record["smoke"]) for _, o in runs if "smoke" in o.record]
    learned = [task for task, v in verdicts if v["expected"] and v["learned"]]
    unexpected = [task for task, v in verdicts if not v["expected"]]
    missed = [f"{task} ({v['scores']})" for task, v in verdicts if v["expected"] and not v["learned"]]
    console.print(f"smoke: {len(learned)} task(s) learned" + (f" ({', '.join(learned)})" if learned else "")
                  + (f"; {', '.join(unexpected)} not expected to in their budget" if unexpected else ""),
                  highlight=False, soft_wrap=True)
    if missed:
        console.print(f"[bold red]smoke: did not learn:[/] {'; '.join(missed)}. A healthy pretrained encoder beats "
                      "the baseline on these in its smoke budget: check the model's weights, that its tokenizer is "
                      "its own, and the training labels", highlight=False, soft_wrap=True)
    return not missed
