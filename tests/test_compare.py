"""glue_runner.compare: the statistics against scipy and deepsig, the bootstrap on hand-made
predictions, the verdict rules, and `glue-run compare` on a results folder written here."""

import json
import math

import numpy as np
import pytest
import scipy.stats

from glue_runner import compare, leaderboard, metrics, results, stats
from glue_runner.files import delimited_text
from glue_runner.cli import main
from glue_runner.tasks import get_task


def random_pairs(count, low=2, high=8, seed=0):
    """(a, b): seed scores of two models, of random sizes, spreads and offsets."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        n_a, n_b = rng.integers(low, high, size=2)
        yield (list(rng.normal(80, rng.uniform(0.2, 2), n_a)),
               list(rng.normal(80 + rng.uniform(-2, 2), rng.uniform(0.2, 2), n_b)))


# ---- the seed test -----------------------------------------------------------------

def test_welch_interval_matches_scipy():
    for a, b in random_pairs(20):
        expected = scipy.stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
        assert stats.welch_interval(a, b) == pytest.approx((expected.low, expected.high), rel=1e-9)
    assert stats.welch_interval([80.0], [81.0, 82.0]) is None  # one seed: no spread
    assert stats.welch_interval([80.0, 80.0], [81.0, 81.0]) is None  # no spread on either side


def scipy_permutation_p(a, b, n_resamples):
    return scipy.stats.permutation_test(
        (b, a), lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis), permutation_type="independent",
        alternative="two-sided", n_resamples=n_resamples, vectorized=True).pvalue


def test_permutation_test_matches_scipy_exactly_on_few_seeds():
    for a, b in random_pairs(20):
        assert math.comb(len(a) + len(b), len(a)) <= 10_000  # every relabelling, in both
        assert stats.permutation_test(a, b) == pytest.approx(scipy_permutation_p(a, b, 10_000), abs=1e-12)


def test_permutation_test_draws_relabellings_when_there_are_too_many():
    # 9 against 9 seeds: 48,620 relabellings, so 10,000 random ones. scipy's exact p is within
    # 4 standard errors of the draws (2 sqrt(p (1 - p) / 10,000) <= 0.01), and so is ours made exact.
    for a, b in random_pairs(3, low=9, high=10, seed=1):
        exact = scipy_permutation_p(a, b, 100_000)
        assert stats.permutation_test(a, b, max_relabellings=100_000) == pytest.approx(exact, abs=1e-12)
        assert stats.permutation_test(a, b) == pytest.approx(exact, abs=0.04)
        assert stats.permutation_test(a, b) > 0  # the observed labelling counts: never 0


def test_three_seeds_against_three_fully_separated_give_p_one_tenth():
    # 20 relabellings; only the observed one and its mirror are as extreme: p = 2/20
    assert stats.permutation_test([80.0, 81.0, 82.0], [90.0, 91.0, 92.0]) == pytest.approx(0.1)
    assert stats.min_p_value(3, 3) == pytest.approx(0.1)
    assert stats.min_p_value(4, 4) == pytest.approx(2 / 70)
    assert stats.MIN_SEEDS == 4


def test_aso_matches_deepsig():
    deepsig = pytest.importorskip("deepsig")
    from deepsig.aso import compute_violation_ratio

    rng = np.random.default_rng(3)
    for shift in (0.3, 0.8, 1.0):
        a, b = rng.normal(0, 1, 12), rng.normal(shift, 1, 12)
        # deepsig's first argument is the model suspected better: our B. Its bootstrap (300
        # iterations, to keep the test quick) and ours differ by about 0.01; a wrong formula
        # (the bound's sign, its z, its scale) moves eps_min by 0.2 or more.
        ours = stats.aso(a, b, iterations=20_000)
        theirs = deepsig.aso(b, a, num_bootstrap_iterations=300, seed=1, show_progress=False)
        assert 0 < ours < 1 and 0 < theirs < 1  # not clipped: the comparison says something
        assert ours == pytest.approx(theirs, abs=0.05)
    for a, b in random_pairs(40, low=3, high=10):
        ours, theirs = stats.violation_ratio(np.array(a), np.array(b)), compute_violation_ratio(b, a, dt=0.005)
        if min(b) >= min(a):  # nothing violated at the grid's first point, which deepsig leaves out
            assert ours == pytest.approx(theirs, rel=1e-9)
        else:
            assert theirs <= ours


def test_aso_tells_clearly_different_distributions_apart():
    a, b = [80.0, 80.5, 81.0, 81.5], [85.0, 85.5, 86.0]
    assert stats.aso(a, b) == 0.0  # B larger at every quantile
    assert stats.aso(b, a) == 1.0
    assert stats.aso(a, a) >= 0.5  # the same distribution: no order claimed
    assert stats.violation_ratio(np.array(a), np.array(a)) == 0.5


# ---- the verdict ---------------------------------------------------------------------

def test_verdict_rules():
    low, high = [80.0, 80.5, 81.0, 81.5, 82.0], [85.0, 85.5, 86.0, 86.5, 87.0]
    assert stats.seed_test(low, high).verdict == "B better"  # p = 2/252, interval above 0
    assert stats.seed_test(high, low).verdict == "A better"
    # 3 seeds a side never reach a permutation p < 0.05 (0.1 at best), but fully separated scores
    # with Welch's interval above 0 are a clear order for ASO: eps_min 0
    three = stats.seed_test(low[:3], high[:3])
    assert three.p_value == pytest.approx(0.1) and three.eps_min == 0.0 and three.verdict == "B better"
    assert stats.seed_test(high[:3], low[:3]).verdict == "A better"
    # ... but ASO alone is not enough: here it sees an order, and Welch's interval still holds 0
    overlap = stats.seed_test([80.0, 81.0, 82.0], [81.8, 83.0, 83.5])
    assert overlap.interval[0] < 0 < overlap.interval[1] and overlap.eps_min < stats.ASO_THRESHOLD
    assert overlap.verdict == "needs more seeds (~5 per side)"
    # difference 1, pooled sd 2: n = 2 ((1.96 + 0.84) * 2 / 1)^2 = 62.8
    assert stats.seed_test([0.0, 2.0, 4.0], [1.0, 3.0, 5.0]).verdict == "needs more seeds (~63 per side)"
    assert stats.seed_test([80.0], [81.0]).verdict == "needs more seeds (at least 3 per side)"
    assert stats.seed_test(low, low).verdict == "no difference shown"
    # 3.0 > 2.9 spoils the separation that the permutation test needs (p = 4/70), not ASO's order
    test = stats.seed_test([0.0, 1.0, 2.0, 3.0], [2.9, 3.9, 4.9, 5.9])
    assert test.p_value == pytest.approx(4 / 70) and test.interval[0] > 0 and test.eps_min < stats.ASO_THRESHOLD
    assert test.verdict == "B better"


def test_aso_needs_three_seeds_a_side():
    assert stats.seed_test([80.0, 81.0], [85.0, 86.0, 87.0]).eps_min is None
    assert stats.seed_test([80.0, 81.0, 82.0], [85.0, 86.0, 87.0]).eps_min == 0.0


def test_aso_speaks_for_the_side_ahead():
    behind = stats.seed_test([85.0, 86.0, 87.0], [80.0, 81.0, 82.0])
    assert behind.ahead == "A>B" and behind.eps_min == 0.0  # aso(B, A): A larger at every quantile


def test_the_verdicts_rarely_claim_a_difference_that_is_not_there():
    # equal models: a "better" verdict is a false claim. Welch's interval alone errs in 5% of draws;
    # requiring the permutation test or ASO to agree can only make that rarer, on 3 seeds too.
    rng = np.random.default_rng(0)
    for n in (3, 4):
        draws = [stats.seed_test(list(rng.normal(80, 2, n)), list(rng.normal(80, 2, n))) for _ in range(400)]
        assert sum(d.verdict.endswith("better") for d in draws) / len(draws) <= 0.06


# ---- the paired bootstrap --------------------------------------------------------------

def test_batched_metrics_match_metrics_py():
    from glue_runner.tasks import glue_tasks

    glue_metrics = {m for task in glue_tasks() for m in task.metrics}
    assert stats.BATCHED_METRICS.keys() == glue_metrics  # a new GLUE metric needs its batched form
    rng = np.random.default_rng(0)
    n = 40
    rows = np.vstack([rng.integers(0, n, size=(6, n)), np.zeros((1, n), dtype=int)])  # the last: constant
    for name, kind in ((name, metrics.KINDS[name][0]) for name in sorted(glue_metrics)):
        for classes in ((2,) if name == "f1" else (2, 3) if kind == "classification" else (None,)):
            if kind == "classification":
                labels, predictions = rng.integers(0, classes, n), rng.integers(0, classes, n)
            else:
                labels, predictions = rng.uniform(0, 5, n).round(1), rng.uniform(0, 5, n)
            expected = [metrics.METRICS[kind][name](predictions[r], labels[r]) for r in rows]
            got = stats.BATCHED_METRICS[name](predictions[rows], labels[rows])
            np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=name)


def test_paired_bootstrap_b_right_wherever_a_is_wrong():
    labels = np.array([0, 1] * 50)
    a = labels.copy()
    a[:20] = 1 - a[:20]  # A gets 20 examples wrong, B none
    scores_a, scores_b = stats.paired_bootstrap(labels, a, labels, ("accuracy",))
    assert len(scores_a) == stats.RESAMPLES + 1
    pair = stats.pair_result(1, scores_a, scores_b)
    assert pair.difference == pytest.approx(20.0)
    assert pair.p_b == 0 and pair.p_a == 1  # B is ahead on every resample
    assert pair.interval[0] > 0


def test_paired_bootstrap_of_identical_predictions_is_exactly_zero():
    rng = np.random.default_rng(0)
    labels, predictions = rng.uniform(0, 5, 60), rng.uniform(0, 5, 60)
    scores_a, scores_b = stats.paired_bootstrap(labels, predictions, predictions.copy(), ("pearson", "spearmanr"))
    assert np.array_equal(scores_a, scores_b)
    pair = stats.pair_result(1, scores_a, scores_b)
    assert pair.difference == 0 and pair.interval == (0.0, 0.0) and pair.p_b == 1


# ---- glue-run compare --------------------------------------------------------------------

DATE = "2025-03-01T12:00:00+00:00"


def add_run(results_dir, model, task_name, seed, splits, date=DATE, reverse=False):
    """A run as the runner writes it: metrics.json scored from its predictions files.
    splits: split -> (labels, predictions), label names or scores."""
    task = get_task(task_name)
    kind = "regression" if task.regression else "classification"
    value = float if task.regression else task.label_names.index
    scores, files = {}, {}
    for split, (labels, predictions) in splits.items():
        y, p = np.array([value(v) for v in labels]), np.array([value(v) for v in predictions])
        for m in task.metrics:
            scores[m + task.splits[split].metric_suffix] = metrics.METRICS[kind][m](p, y)
        rows = [[i, pred, label] for i, (pred, label) in enumerate(zip(predictions, labels))]
        files[f"predictions_{split}.tsv"] = delimited_text(["index", "prediction", "label"],
                                                              rows[::-1] if reverse else rows)
    results.write_run(results_dir / "runs" / model / f"{task_name}-seed{seed}-{date[:10]}",
                      {"task": task_name, "model_name": model, "seed": seed, "date": date, "metrics": scores}, files)


def guesses(labels, names, wrong, rng):
    """The labels with `wrong` of them, at random places, replaced by another label."""
    predictions = list(labels)
    for i in rng.choice(len(labels), wrong, replace=False):
        predictions[i] = next(n for n in names if n != labels[i])
    return predictions


@pytest.fixture
def results_dir(tmp_path):
    rng = np.random.default_rng(0)
    sst2, cola, mnli = (get_task(t).label_names for t in ("sst2", "cola", "mnli"))
    sst2_labels = list(rng.choice(sst2, 200))
    for seed in range(1, 6):  # SST-2: 5 seeds a side, B 15 points ahead on every one
        add_run(tmp_path, "base", "sst2", seed, {"validation": (sst2_labels, guesses(sst2_labels, sst2, 60 + seed, rng))})
        add_run(tmp_path, "new", "sst2", seed, {"validation": (sst2_labels, guesses(sst2_labels, sst2, 30 + seed, rng))},
                reverse=True)  # rows in another order: matched by index
    # an older run of the same model, task and seed: replaced by the newer one above
    add_run(tmp_path, "base", "sst2", 1, {"validation": (sst2_labels, sst2_labels)}, date="2025-01-01T00:00:00+00:00")
    cola_labels = list(rng.choice(cola, 300))
    for seed in range(1, 4):  # CoLA: 3 seeds a side; seed 3 of "new" scored only the first 150 examples
        add_run(tmp_path, "base", "cola", seed, {"validation": (cola_labels, guesses(cola_labels, cola, 120, rng))})
        n = 150 if seed == 3 else 300
        add_run(tmp_path, "new", "cola", seed, {"validation": (cola_labels[:n], guesses(cola_labels[:n], cola, n // 5, rng))})
    mrpc_labels = ["equivalent", "not_equivalent"] * 20
    add_run(tmp_path, "base", "mrpc", 1, {"validation": (mrpc_labels, mrpc_labels)})
    stsb_labels = [f"{x:.3f}" for x in rng.uniform(0, 5, 100)]
    add_run(tmp_path, "base", "stsb", 1, {"validation": (stsb_labels, [f"{float(x) + rng.normal(0, 2):.3f}" for x in stsb_labels])})
    add_run(tmp_path, "new", "stsb", 1, {"validation": (stsb_labels, [f"{float(x) + rng.normal(0, 0.5):.3f}" for x in stsb_labels])})
    m, mm = list(rng.choice(mnli, 120)), list(rng.choice(mnli, 100))
    for model, wrong in (("base", 50), ("new", 20)):
        add_run(tmp_path, model, "mnli", 1, {"validation_matched": (m, guesses(m, mnli, wrong, rng)),
                                             "validation_mismatched": (mm, guesses(mm, mnli, wrong, rng))})
    return tmp_path


def test_compare_report(results_dir):
    report = compare.build(results_dir, "base", "new")
    rows = {r.name: r for r in report.rows}
    assert list(rows) == ["CoLA", "SST-2", "MRPC", "STS-B", "MNLI-m", "MNLI-mm", "GLUE score (4/9 tasks)"]
    sst2 = rows["SST-2"]
    assert len(sst2.a) == 5 and max(sst2.a.values()) < 70  # the older perfect run of seed 1 is replaced
    assert sst2.test.verdict == "B better"
    assert [p.p_b < 0.05 for p in sst2.pairs] == [True] * 5
    cola = rows["CoLA"]
    assert cola.test.verdict == "B better"  # 3 seeds a side, fully separated: Welch and ASO agree
    assert [bool(p.problem) for p in cola.pairs] == [False, False, True]
    assert "different dev examples" in cola.pairs[2].problem
    assert rows["MRPC"].test is None and rows["MRPC"].b == {}
    assert rows["STS-B"].test.verdict == "needs more seeds (at least 3 per side)"
    assert rows["STS-B"].pairs[0].p_b < 0.05 and rows["MNLI-mm"].pairs[0].p_b < 0.05
    # the GLUE score of each seed on every compared task: only seed 1 has them all
    glue = rows["GLUE score (4/9 tasks)"]
    by_task = [rows["CoLA"].a[1], rows["SST-2"].a[1], rows["STS-B"].a[1], (rows["MNLI-m"].a[1] + rows["MNLI-mm"].a[1]) / 2]
    assert glue.a == {1: pytest.approx(sum(by_task) / 4)}
    assert glue.pairs[0].difference == pytest.approx(glue.b[1] - glue.a[1], abs=0.01)  # STS-B's files round to 3 decimals
    # --task: the GLUE score is over those
    assert [r.name for r in compare.build(results_dir, "base", "new", ["sst2"]).rows] == ["SST-2", "GLUE score (1/9 tasks)"]


def test_the_glue_score_needs_a_seed_with_every_task(tmp_path):
    labels = ["positive", "negative"] * 10
    cola = ["acceptable", "unacceptable"] * 10
    for model, sst2_seed in (("base", 2), ("new", 1)):
        add_run(tmp_path, model, "cola", 1, {"validation": (cola, cola)})
        add_run(tmp_path, model, "sst2", sst2_seed, {"validation": (labels, labels)})
    glue = compare.build(tmp_path, "base", "new").rows[-1]
    assert glue.a == {} and glue.b == {1: 100.0}
    assert glue.test is None and glue.missing == "no seed of A ran every task"


def test_compare_command(results_dir, capsys):
    md = results_dir / "compare.md"
    assert main(["compare", "base", "new", "--results-dir", str(results_dir), "--markdown", str(md)]) == 0
    out = capsys.readouterr().out
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 8}
    assert "B better" in lines["SST-2"] and "B better in 5/5 seed pairs" in lines["SST-2"]
    assert "B better" in lines["CoLA"] and "B better in 2/2 seed pairs; 1 not possible" in lines["CoLA"]
    assert "needs more seeds (at least 3 per side)" in lines["STS-B"]
    assert "only in A" in lines["MRPC"]
    assert "speaks to these dev examples only" in out and "training randomness" in out
    text = md.read_text(encoding="utf-8")
    assert text.startswith("# Is B really better than A? new (B) against base (A)")
    assert "| SST-2 | " in text and "| B better |" in text and "| only in A |" in text
    assert "- CoLA, seed 3: the runs scored different dev examples" in text
    assert "| CoLA | 2 | +" in text and "| CoLA | 3 |" not in text
    assert (results_dir / "compare-base-vs-new.png").read_bytes()[:4] == b"\x89PNG"
    full = (results_dir / "compare-base-vs-new.png").read_bytes()
    assert main(["compare", "base", "new", "--task", "sst2", "--results-dir", str(results_dir)]) == 0
    assert (results_dir / "compare-base-vs-new-sst2.png").exists()  # beside the full chart, not over it
    assert (results_dir / "compare-base-vs-new.png").read_bytes() == full


def test_the_chart_carries_each_verdict_over_its_group(results_dir):
    import matplotlib.pyplot as plt

    report = compare.build(results_dir, "base", "new")
    figure = leaderboard.chart(report.board, report.verdicts())
    written = {" ".join(t.get_text().split()) for t in figure.axes[0].texts}
    plt.close(figure)
    assert {"B better", "only in A"} <= written and any(t.startswith("needs more seeds") for t in written)
    assert [row.model for row in report.board.rows] == ["A: base", "B: new"]  # which bars are A, which B


def test_the_charts_glue_score_is_over_the_tasks_both_sides_ran(results_dir):
    """As in the table: A's MRPC run (B has none) is in MRPC's bars, not in A's GLUE score."""
    import matplotlib.pyplot as plt

    report = compare.build(results_dir, "base", "new")
    table = {r.name: r for r in report.rows}["GLUE score (4/9 tasks)"]
    figure = leaderboard.chart(report.board, report.verdicts(), report.compared)
    glue_labels = [t.get_text() for t in figure.axes[0].texts if t.get_text()[:1].isdigit()]
    plt.close(figure)
    assert "MRPC" not in [c.name for c in report.compared]
    for row in report.board.rows:
        score = row.glue_score(report.compared)[0]
        assert f"{score:.1f}" in glue_labels
    assert abs(report.board.rows[0].glue_score(report.compared)[0] - np.mean(list(table.a.values()))) < 5


def test_constant_scores_on_both_sides_still_get_a_verdict():
    test = stats.seed_test([70.0] * 5, [71.0] * 5)
    assert test.interval is None and test.p_value < 0.05 and test.verdict == "B better"
    assert stats.seed_test([70.0] * 2, [71.0] * 2).verdict.startswith("needs more seeds")


def test_runs_scored_on_other_dev_sets_are_not_compared(tmp_path):
    labels = ["equivalent", "not_equivalent"] * 20
    rng = np.random.default_rng(1)
    for model, n in (("full", 40), ("subset", 20)):
        for seed in (1, 2, 3):
            add_run(tmp_path, model, "mrpc", seed, {"validation": (labels[:n], guesses(labels[:n], labels, 3, rng))})
            path = next((tmp_path / "runs" / model).glob(f"mrpc-seed{seed}-*")) / "metrics.json"
            record = json.loads(path.read_text())
            path.write_text(json.dumps({**record, "data": {"examples": {"validation": n}}}))
    [mrpc] = compare.build(tmp_path, "full", "subset").rows
    assert mrpc.test is None and mrpc.missing == "not comparable: A scored 40 dev examples, B 20 (--max-eval-samples)"


def test_two_settings_of_one_model_are_two_sides(tmp_path, capsys):
    """A sweep's recipe settings given as flags make its row, whatever each task's own recipe is."""
    for lr, seeds in ((None, (1, 2)), (2e-5, (1, 2))):
        for task, metric in (("rte", "accuracy"), ("wnli", "accuracy")):  # 2e-5 is WNLI's recipe, not RTE's
            for seed in seeds:
                cfg = {"task": task, "model": "m", "seed": seed, "learning_rate": lr or {"rte": 3e-5, "wnli": 2e-5}[task]}
                results.write_run(tmp_path / "runs" / f"{task}-{seed}-{lr}", {
                    "task": task, "model_name": "m", "seed": seed, "date": "2026-01-01", "config": cfg,
                    "overrides": {"learning_rate": lr} if lr else {}, "metrics": {metric: 0.5 + seed / 10}}, {})
    rows = leaderboard.by_row(leaderboard.latest_runs(leaderboard.glue_runs(tmp_path)[0], None, None))
    assert {name: len(runs) for name, runs in rows.items()} == {"m (learning_rate=2e-05)": 4, "m (learning_rate=recipe)": 4}
    assert main(["compare", "m (learning_rate=recipe)", "m (learning_rate=2e-05)", "--results-dir", str(tmp_path)]) == 0


def test_compare_errors(results_dir, capsys):
    assert main(["compare", "base", "nope", "--results-dir", str(results_dir)]) == 2
    assert main(["compare", "base", "base", "--results-dir", str(results_dir)]) == 2
    assert main(["compare", "base", "new", "--results-dir", str(results_dir), "--task", "qqp"]) == 2
    err = capsys.readouterr().err
    assert "no runs of 'nope'" in err and "rows there: 'base', 'new'" in err
    assert "two different model names" in err
    assert "neither base nor new has scored runs of QQP" in err
