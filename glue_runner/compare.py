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

The statistics are plain functions on lists and arrays; reading runs and printing come after.
"""

import csv
import itertools
import math
import statistics
import sys
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy.stats import norm, rankdata
from scipy.stats import t as student_t

from . import leaderboard, results
from .data import TaskSpec, get_task
from .errors import GlueRunnerError

ALPHA = 0.05  # two-sided, for the seed test; one-sided for each bootstrap direction
POWER = 0.8  # for "how many seeds would show a difference this size"
ASO_MIN_SEEDS = 3  # below this, eps_min is all bootstrap noise
# eps_min below which ASO counts as evidence of an order: deepsig recommends 0.2 over the original 0.5,
# which Ulmer et al. (2022, "deep-significance") found to let through too many false wins on few seeds
ASO_THRESHOLD = 0.2
RESAMPLES = 1000  # paired bootstrap resamples of the dev examples
SEED = 0  # every random draw here is fixed: the same runs always give the same table


# ---- the seed test: scores over training seeds, two independent samples --------------

def welch_interval(a: list[float], b: list[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """Welch's t interval for mean(b) - mean(a); None with fewer than 2 values a side, or
    when neither side varies (the interval is then undefined, as in scipy)."""
    if len(a) < 2 or len(b) < 2:
        return None
    var_a, var_b = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se2 = var_a + var_b
    if se2 == 0:
        return None
    df = se2 ** 2 / (var_a ** 2 / (len(a) - 1) + var_b ** 2 / (len(b) - 1))  # Welch-Satterthwaite
    half = float(student_t.ppf((1 + confidence) / 2, df)) * math.sqrt(se2)
    difference = statistics.fmean(b) - statistics.fmean(a)
    return difference - half, difference + half


def permutation_test(a: list[float], b: list[float], max_relabellings: int = 10_000, seed: int = SEED) -> float:
    """Two-sided p-value of mean(b) - mean(a) under random relabelling of the pooled values.

    Exact (every relabelling) when there are at most max_relabellings of them, else that many
    random ones, counting the observed labelling once more (Phipson & Smyth, 2010). Two-sided
    as scipy.stats.permutation_test: twice the smaller one-sided p, at most 1.
    """
    values = np.asarray([*a, *b], dtype=float)
    n, n_a = len(values), len(a)
    if math.comb(n, n_a) <= max_relabellings:
        in_a = np.array(list(itertools.combinations(range(n), n_a)))
        extra = 0
    else:
        rng = np.random.default_rng(seed)
        in_a = rng.permuted(np.tile(np.arange(n), (max_relabellings, 1)), axis=1)[:, :n_a]
        extra = 1

    def difference(sums_a):
        return (values.sum() - sums_a) / (n - n_a) - sums_a / n_a

    null = difference(values[in_a].sum(axis=1))
    observed = difference(values[:n_a].sum())
    tolerance = 100 * np.finfo(float).eps * abs(observed)  # the same difference, summed in another order
    greater = (np.count_nonzero(null >= observed - tolerance) + extra) / (len(null) + extra)
    less = (np.count_nonzero(null <= observed + tolerance) + extra) / (len(null) + extra)
    return float(min(1.0, 2 * min(greater, less)))


def min_p_value(n_a: int, n_b: int) -> float:
    """The smallest p the exact two-sided permutation test can give: the observed labelling is
    the most extreme one of comb(n_a + n_b, n_a), and so is its mirror."""
    return min(1.0, 2 / math.comb(n_a + n_b, n_a))


MIN_SEEDS = next(n for n in itertools.count(1) if min_p_value(n, n) < ALPHA)  # 4: comb(8, 4) = 70


def seeds_needed(a: list[float], b: list[float]) -> int | None:
    """Seeds per side for a two-sided test at ALPHA to find a difference of this size with
    POWER: the normal approximation n = 2 ((z_{1-alpha/2} + z_power) sd / difference)^2, sd
    the pooled standard deviation, and at least MIN_SEEDS, below which the exact permutation
    test cannot reach ALPHA (fewer seeds show a difference only when ASO finds a clear order).
    None with one seed a side: no spread to estimate from."""
    if len(a) + len(b) < 3:
        return None
    mean_a, mean_b = statistics.fmean(a), statistics.fmean(b)
    squares = sum((x - mean_a) ** 2 for x in a) + sum((x - mean_b) ** 2 for x in b)
    sd = math.sqrt(squares / (len(a) + len(b) - 2))
    difference = mean_b - mean_a
    z = norm.ppf(1 - ALPHA / 2) + norm.ppf(POWER)
    return max(MIN_SEEDS, math.ceil(2 * (z * sd / difference) ** 2))


def _quantiles(samples: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The empirical quantile function of each row of samples at t: its ceil(n t)-th smallest."""
    n = samples.shape[-1]
    return np.sort(samples, axis=-1)[..., np.clip(np.ceil(n * t).astype(int) - 1, 0, n - 1)]


def violation_ratio(a: np.ndarray, b: np.ndarray, dt: float = 0.005) -> np.ndarray:
    """del Barrio et al.'s (2018) eps_W2 for "B is stochastically larger than A": the share of
    the squared Wasserstein distance between the two score distributions that lies where B's
    quantile function is below A's. 0: B is larger at every quantile; 1: A is; 0.5 when the
    distributions are the same. Rows of a and b are compared row by row (bootstrap samples).

    As deepsig's compute_violation_ratio (its scores_a is our B), integrated over the same
    grid t = dt, 2 dt, ..., except that deepsig leaves the grid's first point out of the
    violation integral only, which biases its ratio down slightly.
    """
    t = np.arange(dt, 1, dt)
    qa, qb = _quantiles(a, t), _quantiles(b, t)
    gap = (qb - qa) ** 2
    total = gap.sum(axis=-1)
    violated = np.where(qb < qa, gap, 0).sum(axis=-1)
    return np.divide(violated, total, out=np.full(total.shape, 0.5), where=total > 0)


def aso(a: list[float], b: list[float], confidence: float = 0.95, iterations: int = 1000, dt: float = 0.005,
        seed: int = SEED) -> float:
    """Almost Stochastic Order (del Barrio et al., 2018; Dror et al., 2019): eps_min, the upper
    confidence bound of violation_ratio(a, b), with its spread estimated by bootstrap. Below
    0.5, B is almost stochastically larger than A; the smaller, the clearer.

    As deepsig's aso(b, a): each bootstrap iteration resamples both score lists with
    replacement, sigma is the standard deviation of sqrt(nm/(n+m)) (ratio* - ratio), and
    eps_min = ratio + sigma / sqrt(nm/(n+m)) * z_confidence, clipped to [0, 1].
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    observed = violation_ratio(a, b, dt)
    rng = np.random.default_rng(seed)
    resampled = violation_ratio(rng.choice(a, (iterations, len(a))), rng.choice(b, (iterations, len(b))), dt)
    scale = math.sqrt(len(a) * len(b) / (len(a) + len(b)))
    sigma = np.std(scale * (resampled - observed))
    return float(np.clip(observed + sigma / scale * norm.ppf(confidence), 0, 1))


def verdict(a: list[float], b: list[float], interval: tuple[float, float] | None, p_value: float,
            eps_min: float | None) -> str:
    """In plain words, from the seeds alone. A side is better when Welch's interval excludes 0 and a
    test that does not assume normal scores agrees: the permutation test (p < ALPHA), or ASO (eps_min,
    for the side ahead, below ASO_THRESHOLD). Three seeds a side, the papers' usual number, can so
    show a clear difference, though they never give a permutation p < 0.05; needing both keeps false
    claims no more frequent than Welch's interval alone makes them."""
    difference = statistics.fmean(b) - statistics.fmean(a)
    # seeds that all score alike on each side leave Welch's interval undefined: the difference is then exact
    constant = interval is None and min(len(a), len(b)) >= 2 and len(set(a)) == len(set(b)) == 1
    if constant or (interval is not None and (interval[0] > 0 or interval[1] < 0)):
        if difference and (p_value < ALPHA or (eps_min is not None and eps_min < ASO_THRESHOLD)):
            return "B better" if difference > 0 else "A better"
    if difference == 0:
        return "no difference shown"
    needed = seeds_needed(a, b)
    if needed is None:
        return f"needs more seeds (at least {ASO_MIN_SEEDS} per side)"
    if needed > min(len(a), len(b)):
        return f"needs more seeds (~{needed} per side)"
    return "no difference shown"


@dataclass
class SeedTest:
    """B against A over training seeds: one score per seed and side (x100), unpaired."""
    difference: float  # mean(B) - mean(A)
    interval: tuple[float, float] | None  # Welch's 95% t interval of the difference
    p_value: float  # two-sided permutation test of the difference of means
    # ASO for the side ahead (B over A when B's mean is higher, else A over B); None below ASO_MIN_SEEDS a side
    eps_min: float | None
    verdict: str

    @property
    def ahead(self) -> str:
        """The order eps_min speaks to."""
        return "A>B" if self.difference < 0 else "B>A"


def seed_test(a: list[float], b: list[float]) -> SeedTest:
    interval, p_value = welch_interval(a, b), permutation_test(a, b)
    difference = statistics.fmean(b) - statistics.fmean(a)
    eps_min = None
    if min(len(a), len(b)) >= ASO_MIN_SEEDS:
        eps_min = aso(b, a) if difference < 0 else aso(a, b)
    return SeedTest(difference, interval, p_value, eps_min, verdict(a, b, interval, p_value, eps_min))


# ---- the paired bootstrap: one seed's runs on the same dev examples ------------------
# The GLUE metrics of metrics.py, each computed on many resamples at once: row r of
# `predictions` and `labels` is resample r. tests/test_compare.py holds each to its
# metrics.METRICS counterpart.

def _accuracy(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return (predictions == labels).mean(axis=1)


def _f1(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    # F1 of class 1 = 2 TP / (predicted 1s + actual 1s); 0 with neither, as sklearn's zero_division=0.0
    true_positives = ((predictions == 1) & (labels == 1)).sum(axis=1)
    ones = (predictions == 1).sum(axis=1) + (labels == 1).sum(axis=1)
    return np.divide(2 * true_positives, ones, out=np.zeros(len(ones)), where=ones > 0)


def _matthews(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    # sklearn's multiclass formula from the confusion counts; 0 where undefined, as sklearn
    n = float(predictions.shape[1])
    classes = np.union1d(labels, predictions)
    correct = (predictions == labels).sum(axis=1).astype(float)
    true = (labels[:, :, None] == classes).sum(axis=1).astype(float)  # per resample and class
    predicted = (predictions[:, :, None] == classes).sum(axis=1).astype(float)
    covariance = correct * n - (true * predicted).sum(axis=1)
    denominator = (n * n - (true * true).sum(axis=1)) * (n * n - (predicted * predicted).sum(axis=1))
    return np.divide(covariance, np.sqrt(denominator), out=np.zeros(len(correct)), where=denominator > 0)


def _pearson(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    x = predictions - predictions.mean(axis=1, keepdims=True)
    y = labels - labels.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):  # constant input: NaN, as metrics.py
        return (x * y).sum(axis=1) / np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))


def _spearman(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    # Spearman's rho is Pearson's r of the ranks (ties share their mean rank), ranked per resample
    return _pearson(rankdata(predictions, axis=1), rankdata(labels, axis=1))


BATCHED_METRICS = {"matthews_correlation": _matthews, "accuracy": _accuracy, "f1": _f1,
                   "pearson": _pearson, "spearmanr": _spearman}


def paired_bootstrap(labels: np.ndarray, predictions_a: np.ndarray, predictions_b: np.ndarray,
                     metrics: tuple[str, ...], resamples: int = RESAMPLES,
                     seed: int | list[int] = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Each side's score (x100, the mean of `metrics`) on all the examples, then on
    `resamples` resamples of them drawn with replacement, the same resamples for both sides:
    two arrays of 1 + resamples scores."""
    n = len(labels)
    rng = np.random.default_rng(seed)
    rows = max(1, 2_000_000 // n)  # resamples scored at once: a few tens of MB, even for QQP's 40,000

    def scores(predictions, index):
        return leaderboard.column_score({m: 100 * BATCHED_METRICS[m](predictions[index], labels[index])
                                         for m in metrics})

    blocks = [np.arange(n)[None]] + [rng.integers(0, n, size=(min(rows, resamples - start), n))
                                     for start in range(0, resamples, rows)]
    a = np.concatenate([scores(predictions_a, index) for index in blocks])
    b = np.concatenate([scores(predictions_b, index) for index in blocks])
    return a, b


@dataclass
class PairResult:
    """The paired bootstrap of one seed: A's run against B's on the same dev examples."""
    seed: int
    difference: float | None = None  # B - A on all the examples (x100)
    p_b: float | None = None  # share of resamples where B's score is not above A's: one-sided p of "B better"
    p_a: float | None = None  # share where A's is not above B's: p of "A better"
    interval: tuple[float, float] | None = None  # 95% percentile interval of B - A
    problem: str = ""  # why this seed could not be bootstrapped


def pair_result(seed: int, a: np.ndarray, b: np.ndarray) -> PairResult:
    """From paired_bootstrap's arrays (first all the examples, then the resamples)."""
    difference = b - a
    resampled = difference[1:][np.isfinite(difference[1:])]  # a resample can leave a correlation undefined
    if not math.isfinite(difference[0]) or not len(resampled):
        return PairResult(seed, problem="the score is undefined on these predictions (constant scores?)")
    low, high = np.percentile(resampled, [2.5, 97.5])
    return PairResult(seed, float(difference[0]), float(np.mean(resampled <= 0)), float(np.mean(resampled >= 0)),
                      (float(low), float(high)))


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
class Report:
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


def build(results_dir: Path, a: str, b: str, tasks: list[str] | None = None) -> Report:
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
        scores = [{seed: leaderboard.column_score(leaderboard.metric_values(run, column))
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
    return Report(a, b, rows, unreadable, leaderboard.Board(shown, sides), compared)


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
    values = list(scores.values())
    spread = f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else ""
    return f"{statistics.fmean(values):.1f}{spread} ({len(values)})"


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


def table(report: Report) -> tuple[list[str], list[list[str]]]:
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


def pair_table(report: Report) -> tuple[list[str], list[list[str]]]:
    header = ["Task", "Seed", "B − A on the dev set [95% interval]", "p (B better)", "p (A better)"]
    rows = [[row.name, str(pair.seed), format_difference(pair.difference, pair.interval), format_p(pair.p_b),
             format_p(pair.p_a)] for row in report.rows for pair in row.pairs if not pair.problem]
    return header, rows


def problems(report: Report) -> list[str]:
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


def markdown(report: Report) -> str:
    lines = [f"# Is B really better than A? {report.b} (B) against {report.a} (A)", "",
             results.markdown_table(*table(report)), *[line + "\n" for line in READING]]
    header, pairs = pair_table(report)
    if pairs:
        lines += ["## Paired bootstrap per seed", "", results.markdown_table(header, pairs)]
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
    return Path(results_dir) / f"compare-{results.safe_name(a)}-vs-{results.safe_name(b)}{only}.png"


def show(console, results_dir: Path, a: str, b: str, tasks: list[str] | None = None,
         markdown_file: Path | None = None) -> None:
    """Build the comparison, print it, draw it as the leaderboard's chart with each verdict over
    its group, and write it to markdown_file if given."""
    from rich.console import Console

    report = build(results_dir, a, b, tasks)
    png = chart_path(results_dir, a, b, tasks)
    results.write_atomic(png, results.png(leaderboard.chart(report.board, report.verdicts(), report.compared)))
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
        results.write_atomic(Path(markdown_file), markdown(report))
        console.print(f"wrote {markdown_file}", highlight=False, soft_wrap=True)
    console.print(f"wrote {png}", highlight=False, soft_wrap=True)
