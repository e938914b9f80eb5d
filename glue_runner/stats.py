"""The statistics of comparing models over seeds, as plain functions on lists and arrays.

    column_score             a column's score from its metrics: their mean, as GLUE scores a task
    mean, std, mean_std      the spread of a score over seeds (leaderboard, grids, compare)
    the seed test            B - A over training seeds: Welch's 95% interval, a permutation test,
                             ASO (Dror et al., 2019, "Deep Dominance"), and a verdict in words
    the paired bootstrap     one seed's runs of A and B on the same dev examples, resampled

Every random draw is seeded (SEED): the same runs always give the same numbers.
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass

import numpy as np


def mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def std(values: list[float]) -> float | None:
    """The sample standard deviation; None for fewer than two values."""
    return statistics.stdev(values) if len(values) > 1 else None


def column_score(values: dict) -> float:
    """A column's score from its metrics (metric -> value): their unweighted mean, as the GLUE
    paper scores a task with several metrics. Plain arithmetic, so values that are numpy arrays
    (glue-run compare's bootstrap resamples) are scored the same way."""
    return sum(values.values()) / len(values)


def mean_std(values: list[float], digits: int = 2) -> str:
    """'mean ± std' as tables show it: the mean alone for one value, '–' for none."""
    if not values:
        return "–"
    spread = std(values)
    return f"{mean(values):.{digits}f}" + (f" ± {spread:.{digits}f}" if spread is not None else "")


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
    from scipy.stats import t as student_t

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
    from scipy.stats import norm

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
    from scipy.stats import norm

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
    from scipy.stats import rankdata

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
        return column_score({m: 100 * BATCHED_METRICS[m](predictions[index], labels[index])
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
