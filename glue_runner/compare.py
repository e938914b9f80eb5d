"""glue-run compare A B: is model B better than model A, task by task and on the GLUE score?

    runs of A and B -> per leaderboard column, each seed's score (x100)
    -> seed test: B - A with Welch's 95% interval, a permutation test, ASO -> the verdict
    -> paired bootstrap over the dev examples, per seed run on both sides -> beside the verdict
    -> a table in the terminal (and a Markdown file)

Two questions, two kinds of evidence. The verdict rests on the seeds: would another
training run (seed) change the answer? Seeds of two models are not paired, so the tests are
two-sample ones. The paired bootstrap asks a narrower question, with the same seed on both
sides: on dev examples like these, does B's run beat A's? It says nothing about the
training randomness, which explains many claimed wins (Dror et al., 2018, "The
Hitchhiker's Guide to Testing Statistical Significance in NLP"; 2019, "Deep Dominance").

The statistics are stats.py's plain functions on lists and arrays; here runs are read and printed.
"""

import csv
import sys
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import leaderboard, results
from .errors import GlueRunnerError
from .files import markdown_table, png, safe_name, write_atomic
from .stats import (ALPHA, ASO_MIN_SEEDS, ASO_THRESHOLD, MIN_SEEDS, RESAMPLES, SEED, PairResult, SeedTest, pair_result,
                    column_score, mean_std, paired_bootstrap, seed_test)
from .tasks import TaskSpec, get_task


# ---- reading runs ------------------------------------------------------------------

@dataclass
class Predictions:
    """One run's dev predictions of one split, sorted by example index: label positions in
    the task's order, or scores."""
    index: np.ndarray
    predictions: np.ndarray
    labels: np.ndarray


def read_predictions(path: Path, task: TaskSpec) -> Predictions:
    if not path.is_file():
        raise GlueRunnerError(f"{path} is missing")
    convert = float if task.regression else {name: i for i, name in enumerate(task.label_names)}.__getitem__
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter="\t")
            header = next(reader, None)
            if header != ["index", "prediction", "label"]:
                raise GlueRunnerError(f"{path} is not a dev predictions file (header {header}, not index, "
                                      "prediction, label)")
            rows = [(int(i), convert(p), convert(y)) for i, p, y in reader]
    except (ValueError, KeyError, OSError) as e:  # a short row, a label not the task's, not UTF-8, ...
        raise GlueRunnerError(f"{path}: unreadable ({type(e).__name__}: {e})") from None
    if not rows:
        raise GlueRunnerError(f"{path} holds no examples")
    index, predictions, labels = (np.array(column) for column in zip(*rows))
    order = np.argsort(index, kind="stable")
    return Predictions(index[order], predictions[order], labels[order])


def bootstrap_runs(run_a: dict, run_b: dict, column: leaderboard.Column) -> tuple[np.ndarray, np.ndarray]:
    """paired_bootstrap of the two runs' predictions of the column's split, matched by index."""
    task = get_task(column.task)
    name = f"predictions_{column.split}.tsv"
    a, b = (read_predictions(Path(run["path"]) / name, task) for run in (run_a, run_b))
    if not np.array_equal(a.index, b.index):
        raise GlueRunnerError(f"the runs scored different dev examples ({len(a.index)} and {len(b.index)} in "
                              f"{name}; another --max-eval-samples?), so they cannot be paired")
    if not np.array_equal(a.labels, b.labels):
        raise GlueRunnerError(f"the runs' labels in {name} differ: they were scored on different dev data")
    # Each column its own random stream, the same whichever other columns are compared.
    return paired_bootstrap(a.labels, a.predictions, b.predictions, task.metrics,
                            seed=[SEED, zlib.crc32(column.name.encode())])


@dataclass
class Comparison:
    """One row: a leaderboard column, or the GLUE score."""
    name: str
    a: dict[int, float]  # seed -> score (x100); empty when A has no run here
    b: dict[int, float]
    test: SeedTest | None  # None when a side is missing
    pairs: list[PairResult]  # one per seed both sides ran
    missing: str  # why a side has no scores ("only in A", ...); "" when both have


@dataclass
class ModelComparison:
    """Model A against model B: one Comparison per column, and the GLUE score's."""
    a: str
    b: str
    rows: list[Comparison]
    unreadable: list[results.Unreadable] = field(default_factory=list)
    board: leaderboard.Board | None = None  # A's and B's leaderboard rows, for the chart
    compared: list[leaderboard.Column] = field(default_factory=list)  # the columns both sides scored: the GLUE score's

    def verdicts(self) -> dict[str, str]:
        """Chart group -> its verdict (the GLUE score's group is called just that)."""
        return {("GLUE score" if row.name.startswith("GLUE score") else row.name): row.test.verdict if row.test
                else row.missing.split(":")[0] for row in self.rows}


def runs_of(runs: list[dict], column: leaderboard.Column) -> dict[int, dict]:
    """seed -> run, for the side's runs that score the column."""
    return {r["seed"]: r for r in runs if r["task"] == column.task and leaderboard.metric_values(r, column)}


def side(rows: dict[str, list[dict]], name: str, results_dir: Path,
         unreadable: list[results.Unreadable] = ()) -> list[dict]:
    """A side's runs: a leaderboard row's, named as the row is, or by a model name that has one row."""
    if name in rows:
        return rows[name]
    matches = [row for row in rows if row.startswith(f"{name} (")]
    if len(matches) == 1:
        return rows[matches[0]]
    if matches:
        raise GlueRunnerError(f"{name!r} has runs with different settings, in rows {', '.join(map(repr, matches))}; "
                              "name one of those rows")
    lost = f"; {len(unreadable)} run file(s) there cannot be read, and may be its: " + \
        "; ".join(u.warning() for u in unreadable) if unreadable else ""
    raise GlueRunnerError(f"no runs of {name!r} under {results_dir}; rows there: {', '.join(map(repr, rows)) or 'none'}"
                          + lost)


def other_dev_sets(runs_a: dict[int, dict], runs_b: dict[int, dict], column: leaderboard.Column) -> str:
    """Why the two sides' scores of a column cannot be compared: they scored different numbers of
    dev examples (--max-eval-samples); "" when they did not."""
    def sizes(runs):
        return sorted({r.get("data", {}).get("examples", {}).get(column.split) for r in runs.values()} - {None})

    a, b = sizes(runs_a), sizes(runs_b)
    if a and b and a != b:
        return (f"not comparable: A scored {'/'.join(map(str, a))} dev examples, B {'/'.join(map(str, b))} "
                "(--max-eval-samples)")
    return ""


def comparison(name: str, a: dict[int, float], b: dict[int, float], pairs: list[PairResult],
               missing: str) -> Comparison:
    test = None if missing else seed_test(list(a.values()), list(b.values()))
    return Comparison(name, a, b, test, pairs, missing)


def build(results_dir: Path, a: str, b: str, tasks: list[str] | None = None) -> ModelComparison:
    if a == b:
        raise GlueRunnerError(f"compare needs two different model names, got {a!r} twice")
    columns = leaderboard.select_columns(tasks)
    runs, unreadable, _ = leaderboard.glue_runs(results_dir)
    by_row = leaderboard.by_row(leaderboard.latest_runs(runs, None, None))
    side_a, side_b = side(by_row, a, results_dir, unreadable), side(by_row, b, results_dir, unreadable)
    rows, resampled = [], {}  # (column name, seed) -> paired_bootstrap's arrays
    for column in columns:
        runs_a, runs_b = runs_of(side_a, column), runs_of(side_b, column)
        if not runs_a and not runs_b:
            continue
        pairs = []
        for seed in sorted(runs_a.keys() & runs_b.keys()):
            try:
                resampled[column.name, seed] = bootstrap_runs(runs_a[seed], runs_b[seed], column)
                pairs.append(pair_result(seed, *resampled[column.name, seed]))
            except GlueRunnerError as e:
                pairs.append(PairResult(seed, problem=str(e)))
        scores = [{seed: column_score(leaderboard.metric_values(run, column))
                   for seed, run in sorted(side.items())} for side in (runs_a, runs_b)]
        rows.append(comparison(column.name, *scores, pairs,
                               missing="only in A" if not runs_b else "only in B" if not runs_a else
                               other_dev_sets(runs_a, runs_b, column)))
    if not rows:
        raise GlueRunnerError(f"neither {a} nor {b} has scored runs of {', '.join(c.name for c in columns)} "
                              f"under {results_dir}; pick other --task")
    compared = [c for c in columns if c.task in leaderboard.scored_tasks()
                and any(r.name == c.name and r.test for r in rows)]
    if compared:
        rows.append(glue_comparison({r.name: r for r in rows}, compared, resampled))
    shown = [c for c in columns if any(r.name == c.name for r in rows)]
    # each side one row, named as the table names it; the GLUE score over the tasks both ran, as in the table
    sides = [replace(row, model=f"{label}: {name}") for label, name, runs in (("A", a, side_a), ("B", b, side_b))
             for row in leaderboard.rows_from_runs(runs, shown)]
    return ModelComparison(a, b, rows, unreadable, leaderboard.Board(shown, sides), compared)


def glue_comparison(rows: dict[str, Comparison], columns: list[leaderboard.Column], resampled: dict) -> Comparison:
    """The GLUE score of each seed present on every compared column, and its paired bootstrap
    (each column resampled on its own, as a new draw of every task's dev set would be)."""
    def per_seed(side: str) -> dict[int, float]:
        seeds = set.intersection(*(set(getattr(rows[c.name], side)) for c in columns))
        return {s: leaderboard.glue_score({c.name: getattr(rows[c.name], side)[s] for c in columns}, columns)[0]
                for s in sorted(seeds)}

    a, b = per_seed("a"), per_seed("b")
    pairs = []
    for seed in sorted(a.keys() & b.keys()):
        lacking = [c.name for c in columns if (c.name, seed) not in resampled]
        if lacking:
            pairs.append(PairResult(seed, problem=f"{', '.join(lacking)} could not be bootstrapped"))
            continue
        draws = len(resampled[columns[0].name, seed][0])
        sides = [np.array([leaderboard.glue_score({c.name: resampled[c.name, seed][side][i] for c in columns},
                                                  columns)[0] for i in range(draws)]) for side in (0, 1)]
        pairs.append(pair_result(seed, *sides))
    tasks = len({c.task for c in columns})
    total = len(leaderboard.scored_tasks())
    missing = "" if a and b else f"no seed of {'B' if a else 'A'} ran every task"
    return comparison("GLUE score" + (f" ({tasks}/{total} tasks)" if tasks < total else ""), a, b, pairs, missing)


# ---- showing it --------------------------------------------------------------------

def format_side(scores: dict[int, float]) -> str:
    if not scores:
        return "–"
    return f"{mean_std(list(scores.values()), 1)} ({len(scores)})"


def format_p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def format_difference(difference: float, interval: tuple[float, float] | None) -> str:
    return f"{difference:+.1f}" + ("" if interval is None else f" [{interval[0]:+.1f}, {interval[1]:+.1f}]")


def bootstrap_summary(pairs: list[PairResult]) -> str:
    done = [p for p in pairs if not p.problem]
    if not pairs:
        return "no seed run by both"
    if not done:
        return "not possible (see below)"
    b, a = sum(p.p_b < ALPHA for p in done), sum(p.p_a < ALPHA for p in done)
    text = (f"B better in {b}/{len(done)}, A in {a}/{len(done)}" if a and b else
            f"B better in {b}/{len(done)}" if b else f"A better in {a}/{len(done)}" if a else
            f"neither better in {len(done)}") + " seed pairs"
    skipped = len(pairs) - len(done)
    return text + (f"; {skipped} not possible" if skipped else "")


def table(report: ModelComparison) -> tuple[list[str], list[list[str]]]:
    header = ["Task", f"A: {report.a}", f"B: {report.b}", "B − A [95% CI]", "permutation p", "ASO ε_min",
              "paired bootstrap (p < 0.05)", "Verdict"]
    rows = []
    for row in report.rows:
        test = row.test
        if test is None:
            rows.append([row.name, format_side(row.a), format_side(row.b), "–", "–", "–", "–", row.missing])
            continue
        eps = f"{test.eps_min:.2f} ({test.ahead})" if test.eps_min is not None else f"– (<{ASO_MIN_SEEDS} seeds)"
        rows.append([row.name, format_side(row.a), format_side(row.b), format_difference(test.difference, test.interval),
                     format_p(test.p_value), eps, bootstrap_summary(row.pairs), test.verdict])
    return header, rows


def pair_table(report: ModelComparison) -> tuple[list[str], list[list[str]]]:
    header = ["Task", "Seed", "B − A on the dev set [95% interval]", "p (B better)", "p (A better)"]
    rows = [[row.name, str(pair.seed), format_difference(pair.difference, pair.interval), format_p(pair.p_b),
             format_p(pair.p_a)] for row in report.rows for pair in row.pairs if not pair.problem]
    return header, rows


def problems(report: ModelComparison) -> list[str]:
    return [f"{row.name}, seed {pair.seed}: {pair.problem}" for row in report.rows for pair in row.pairs
            if pair.problem]


READING = [
    "Scores x100 (a task's metrics averaged), mean ± std over seeds, (the number of seeds).",
    "The verdict rests on the seeds, which speak to the training randomness: would other runs "
    "change the answer? B − A is the difference of the means with Welch's 95% interval; the permutation "
    "test is two-sided over the seeds. **B better** / **A better**: the interval excludes 0, and the "
    f"permutation test's p < 0.05 or ASO's ε_min for the side ahead is below {ASO_THRESHOLD} (below "
    f"{MIN_SEEDS} seeds a side the permutation test cannot reach 0.05: 3 against 3 gives p ≥ 0.1). "
    "**needs more seeds (~N per side)**: these seeds cannot show a difference this size; N is a "
    "normal-approximation estimate for 80% power. **no difference shown**: enough seeds for a difference "
    "this size, and none shown.",
    f"ASO ε_min (Almost Stochastic Order, Dror et al. 2019, as deepsig computes it) for the side ahead "
    f"(B>A or A>B): 0 when that side's scores are larger at every quantile, 0.5 when no order shows; "
    f"shown from {ASO_MIN_SEEDS} seeds a side.",
    "The paired bootstrap speaks to these dev examples only: for each seed both models ran, the dev examples "
    f"are resampled {RESAMPLES:,} times, the same resamples for A and B, and a side is better at one-sided p < 0.05.",
]


def markdown(report: ModelComparison) -> str:
    lines = [f"# Is B really better than A? {report.b} (B) against {report.a} (A)", "",
             markdown_table(*table(report)), *[line + "\n" for line in READING]]
    header, pairs = pair_table(report)
    if pairs:
        lines += ["## Paired bootstrap per seed", "", markdown_table(header, pairs)]
    if problems(report):
        lines += ["Not bootstrapped:", "", *[f"- {problem}" for problem in problems(report)], ""]
    if report.unreadable:
        lines += ["Run files that cannot be read (left out above):", "",
                  *[f"- {problem.warning()}" for problem in report.unreadable], ""]
    return "\n".join(lines)


def rich_table(header: list[str], rows: list[list[str]], title: str):
    from rich.table import Table

    out = Table(title=title)
    for i, name in enumerate(header):
        out.add_column(name, justify="left" if i == 0 or name == "Verdict" else "right")
    for row in rows:
        out.add_row(*row)
    return out


def chart_path(results_dir: Path, a: str, b: str, tasks: list[str] | None) -> Path:
    """Named by what it compares, so a comparison of some tasks does not replace the full one."""
    only = "-" + "-".join(tasks) if tasks else ""
    return Path(results_dir) / f"compare-{safe_name(a)}-vs-{safe_name(b)}{only}.png"


def show(console, results_dir: Path, a: str, b: str, tasks: list[str] | None = None,
         markdown_file: Path | None = None) -> None:
    """Build the comparison, print it, draw it as the leaderboard's chart with each verdict over
    its group, and write it to markdown_file if given."""
    from rich.console import Console

    report = build(results_dir, a, b, tasks)
    picture = chart_path(results_dir, a, b, tasks)
    write_atomic(picture, png(leaderboard.chart(report.board, report.verdicts(), report.compared)))
    # Piped output has no width to fit: give the wide table room instead of wrapping every cell.
    out = Console(width=None if sys.stdout.isatty() else 250)
    out.print(rich_table(*table(report), f"Is B really better than A? A = {a}, B = {b}"))
    header, pairs = pair_table(report)
    if pairs:
        out.print(rich_table(header, pairs, "Paired bootstrap per seed (these dev examples only)"))
    for problem in problems(report):
        out.print(f"not bootstrapped: {problem}", highlight=False)
    for problem in report.unreadable:
        console.print(f"[yellow]warning: {problem.warning()}[/]", highlight=False, soft_wrap=True)
    for line in READING:
        out.print(line.replace("**", ""), highlight=False)
    if markdown_file is not None:
        write_atomic(Path(markdown_file), markdown(report))
        console.print(f"wrote {markdown_file}", highlight=False, soft_wrap=True)
    console.print(f"wrote {picture}", highlight=False, soft_wrap=True)
