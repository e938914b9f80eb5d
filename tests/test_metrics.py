"""Tests for glue_runner.metrics, a local evaluate module, with each task's metrics from tasks/*.yaml
and the metrics for own multi-class and multi-label data.

Every metric is checked against sklearn/scipy on random inputs and against
numbers worked out by hand, so a broken definition or result key fails here.
"""

import io
import math
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score, matthews_corrcoef,
                             precision_recall_fscore_support)

from glue_runner import metrics
from glue_runner.tasks import get_task
from glue_runner.metrics import (THRESHOLDS, choose_threshold, compute_metrics, confusion, confusion_figure,
                                 per_label_scores)

ACCURACY_CONFIGS = ["sst2", "mnli", "qnli", "rte", "wnli"]
ALL_CONFIGS = ["cola", "ax", *ACCURACY_CONFIGS, "mrpc", "qqp", "stsb"]
EXPECTED_KEYS = {
    "cola": {"matthews_correlation"},
    "ax": {"matthews_correlation"},
    **{name: {"accuracy"} for name in ACCURACY_CONFIGS},
    "mrpc": {"f1", "accuracy", "combined_score"},
    "qqp": {"f1", "accuracy", "combined_score"},
    "stsb": {"pearson", "spearmanr", "combined_score"},
}
SIZES = [2, 7, 50, 1000]
FAST = settings(max_examples=25, deadline=None)


def task_scores(task: str, predictions, references) -> dict:
    """The task's metrics (its `metrics:` in tasks/), as a run computes them."""
    return compute_metrics(get_task(task).metrics, predictions, references)


def _labels(rng, n, k):
    return rng.integers(0, k, size=n)


# --- result shape ----------------------------------------------------------


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_keys_and_plain_floats(name):
    if name == "stsb":
        preds, refs = [0.0, 1.5, 2.0, 4.9], [0.2, 1.0, 2.5, 5.0]
    else:
        preds, refs = [0, 1, 1, 0], [0, 1, 0, 0]
    result = task_scores(name, preds, refs)
    assert set(result) == EXPECTED_KEYS[name]
    assert all(type(v) is float for v in result.values()), result


def test_module_loaded_once_per_config():
    assert metrics._load("classification") is metrics._load("classification")
    assert metrics._load("classification") is not metrics._load("regression")


def test_unknown_metric_or_config_raises_keyerror_listing_valid_names():
    with pytest.raises(KeyError) as excinfo:
        compute_metrics(("accuracy", "bleu"), [0], [0])
    message = str(excinfo.value)
    assert "bleu" in message
    for name in ("matthews_correlation", "accuracy", "f1", "pearson", "spearmanr"):
        assert name in message
    with pytest.raises(KeyError, match="'sst-2'.*classification, regression"):
        metrics._load("sst-2")


@pytest.mark.parametrize("names", [("accuracy", "pearson"), ("accuracy", "f1_micro"), ("f1_macro", "spearmanr")])
def test_kinds_of_input_do_not_mix(names):
    with pytest.raises(KeyError, match="need different kinds of input"):
        compute_metrics(names, [0, 1], [0, 1])


# --- hand-computed cases ---------------------------------------------------

# Confusion matrix with positive class 1: TP=3, FN=1, FP=2, TN=4.
HAND_REFS = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
HAND_PREDS = [1, 1, 1, 0, 1, 1, 0, 0, 0, 0]


def test_matthews_by_hand():
    tp, fn, fp, tn = 3, 1, 2, 4
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert mcc == pytest.approx(10 / math.sqrt(600))
    result = task_scores("cola", HAND_PREDS, HAND_REFS)
    assert result["matthews_correlation"] == pytest.approx(mcc, abs=1e-12)


@pytest.mark.parametrize("name", ["mrpc", "qqp"])
def test_f1_accuracy_and_combined_by_hand(name):
    tp, fn, fp = 3, 1, 2
    f1 = 2 * tp / (2 * tp + fp + fn)  # 6/9
    accuracy = 7 / 10
    result = task_scores(name, HAND_PREDS, HAND_REFS)
    assert result["f1"] == pytest.approx(2 / 3, abs=1e-12) == f1
    assert result["accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert result["combined_score"] == pytest.approx((f1 + accuracy) / 2, abs=1e-12)


def test_f1_positive_class_is_one():
    # Swapping the classes gives F1 of class 0: TP=4, FN=2, FP=1 -> 8/11.
    flipped_preds = [1 - p for p in HAND_PREDS]
    flipped_refs = [1 - r for r in HAND_REFS]
    assert task_scores("mrpc", flipped_preds, flipped_refs)["f1"] == pytest.approx(8 / 11)


@pytest.mark.parametrize("name", ACCURACY_CONFIGS)
def test_accuracy_by_hand_three_classes(name):
    result = task_scores(name, [0, 1, 2, 2, 1, 0, 2, 2], [0, 1, 2, 0, 0, 0, 2, 1])
    assert result == {"accuracy": 5 / 8}


def test_stsb_by_hand_with_float_inputs():
    # x=[1,2,3], y=[1,2,4]: sum(dx*dy)=3, sum(dx^2)=2, sum(dy^2)=42/9 -> r=9/sqrt(84).
    # The 1e-12 tolerance also catches a float32 round trip (off by ~3e-9).
    result = task_scores("stsb", [1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    assert result["pearson"] == pytest.approx(9 / math.sqrt(84), abs=1e-12)
    assert result["spearmanr"] == pytest.approx(1.0)
    assert result["combined_score"] == pytest.approx((9 / math.sqrt(84) + 1.0) / 2, abs=1e-12)


def test_stsb_keeps_fractional_scores():
    # Monotone but non-linear and decreasing: spearman is exactly -1, pearson is not.
    preds = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2]
    refs = [5.0, 4.75, 4.5, 4.25, 4.0, 3.75]
    result = task_scores("stsb", preds, refs)
    assert result["spearmanr"] == pytest.approx(-1.0)
    assert -1.0 < result["pearson"] < -0.8
    assert result["pearson"] == pytest.approx(pearsonr(preds, refs)[0], abs=1e-12)


def test_perfect_predictions():
    assert task_scores("cola", [0, 1, 1], [0, 1, 1]) == {"matthews_correlation": 1.0}
    assert task_scores("qqp", [0, 1], [0, 1]) == {"f1": 1.0, "accuracy": 1.0, "combined_score": 1.0}
    result = task_scores("stsb", [0.0, 2.5, 5.0], [0.0, 2.5, 5.0])
    assert result["pearson"] == pytest.approx(1.0) and result["spearmanr"] == pytest.approx(1.0)


# --- degenerate inputs -----------------------------------------------------


def test_stsb_constant_predictions_give_nan_not_error():
    result = task_scores("stsb", [3.0, 3.0, 3.0, 3.0], [0.0, 1.0, 2.0, 5.0])
    assert math.isnan(result["pearson"]) and math.isnan(result["spearmanr"])
    assert math.isnan(result["combined_score"])


def test_stsb_single_example_gives_nan_not_error():
    result = task_scores("stsb", [1.0], [2.0])
    assert math.isnan(result["pearson"]) and math.isnan(result["spearmanr"])


def test_matthews_single_class_is_zero_like_sklearn():
    assert task_scores("cola", [1, 1, 1], [1, 1, 1]) == {"matthews_correlation": 0.0}
    assert task_scores("cola", [0, 0, 0, 0], [0, 1, 0, 1]) == {"matthews_correlation": 0.0}


def test_f1_without_positives_is_zero():
    assert task_scores("mrpc", [0, 0, 0], [0, 0, 0])["f1"] == 0.0


# --- agreement with sklearn / scipy on random inputs -----------------------


@pytest.mark.parametrize("n", SIZES)
def test_random_seeded_against_reference_implementations(n):
    rng = np.random.default_rng(n)
    y, p = _labels(rng, n, 2), _labels(rng, n, 2)
    assert task_scores("cola", p, y)["matthews_correlation"] == pytest.approx(
        matthews_corrcoef(y, p), abs=1e-12
    )
    result = task_scores("mrpc", p, y)
    assert result["f1"] == pytest.approx(f1_score(y, p, zero_division=0.0), abs=1e-12)
    assert result["accuracy"] == pytest.approx(np.mean(p == y), abs=1e-12)

    y3, p3 = _labels(rng, n, 3), _labels(rng, n, 3)
    assert task_scores("mnli", p3, y3)["accuracy"] == pytest.approx(np.mean(p3 == y3), abs=1e-12)

    ys, ps = rng.uniform(0, 5, n), rng.uniform(0, 5, n)
    result = task_scores("stsb", ps, ys)
    assert result["pearson"] == pytest.approx(pearsonr(ps, ys)[0], abs=1e-9)
    assert result["spearmanr"] == pytest.approx(spearmanr(ps, ys)[0], abs=1e-9)


label_pairs = st.integers(2, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
    )
)


@FAST
@given(label_pairs)
# The reference sklearn call itself warns when only one class occurs.
@pytest.mark.filterwarnings("ignore:A single label was found:UserWarning")
def test_classification_matches_sklearn(pair):
    preds, refs = pair
    mcc = task_scores("cola", preds, refs)["matthews_correlation"]
    assert mcc == pytest.approx(matthews_corrcoef(refs, preds), abs=1e-12)
    result = task_scores("qqp", preds, refs)
    assert result["f1"] == pytest.approx(f1_score(refs, preds, zero_division=0.0), abs=1e-12)
    assert result["accuracy"] == pytest.approx(np.mean(np.equal(preds, refs)), abs=1e-12)
    assert result["combined_score"] == pytest.approx((result["f1"] + result["accuracy"]) / 2, abs=1e-15)


score = st.floats(0.0, 5.0, allow_nan=False)
score_pairs = st.integers(3, 40).flatmap(
    lambda n: st.tuples(
        st.lists(score, min_size=n, max_size=n, unique=True),
        st.lists(score, min_size=n, max_size=n, unique=True),
    )
)


@FAST
@given(score_pairs)
def test_stsb_matches_scipy(pair):
    preds, refs = pair
    result = task_scores("stsb", preds, refs)
    assert result["pearson"] == pytest.approx(pearsonr(preds, refs)[0], abs=1e-9, nan_ok=True)
    assert result["spearmanr"] == pytest.approx(spearmanr(preds, refs)[0], abs=1e-9, nan_ok=True)
    assert result["combined_score"] == pytest.approx(
        (result["pearson"] + result["spearmanr"]) / 2, abs=1e-15, nan_ok=True
    )


# --- own data: multi-class -------------------------------------------------


def test_multi_class_f1_macro_and_accuracy_by_hand():
    # Class 0: TP=2 FP=0 FN=2 -> 2/3; class 1: TP=1 FP=1 FN=1 -> 1/2; class 2: TP=2 FP=2 FN=0 -> 2/3.
    result = compute_metrics(("accuracy", "f1_macro"), [0, 1, 2, 2, 1, 0, 2, 2], [0, 1, 2, 0, 0, 0, 2, 1])
    f1_macro = (2 / 3 + 1 / 2 + 2 / 3) / 3
    assert result == pytest.approx({"accuracy": 5 / 8, "f1_macro": f1_macro,
                                    "combined_score": (5 / 8 + f1_macro) / 2}, abs=1e-12)


def test_multi_class_f1_macro_averages_only_the_classes_that_occur():
    # As sklearn: a class in neither list (class 2 of three) is not averaged in as 0.
    assert compute_metrics(("f1_macro",), [0, 1, 1], [0, 1, 0]) == {"f1_macro": pytest.approx(2 / 3)}


multi_class_pairs = st.tuples(st.integers(1, 60), st.integers(2, 6)).flatmap(
    lambda nk: st.tuples(
        st.lists(st.integers(0, nk[1] - 1), min_size=nk[0], max_size=nk[0]),
        st.lists(st.integers(0, nk[1] - 1), min_size=nk[0], max_size=nk[0]),
    )
)


@FAST
@given(multi_class_pairs)
def test_multi_class_f1_macro_matches_sklearn(pair):
    preds, refs = pair
    result = compute_metrics(("f1_macro",), preds, refs)
    assert result["f1_macro"] == pytest.approx(f1_score(refs, preds, average="macro", zero_division=0.0), abs=1e-12)


# --- own data: multi-label -------------------------------------------------

MULTI_LABEL = ("f1_micro", "f1_macro", "subset_accuracy")
LABEL_NAMES = ["a", "b", "c"]
# Label a: TP=2 FP=1 FN=0; b: TP=1 FP=0 FN=1; c: never present, never predicted.
ML_REFS = [[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]]
ML_PREDS = [[1, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0]]


def _multi_label(rng, n, k):
    return (rng.random((n, k)) < 0.3).astype(np.int64)


def test_multi_label_by_hand_without_combined_score():
    result = compute_metrics(MULTI_LABEL, ML_PREDS, ML_REFS)
    assert result == pytest.approx({
        "f1_micro": 2 * 3 / (2 * 3 + 1 + 1),        # TP=3 FP=1 FN=1 over all labels
        "f1_macro": (4 / 5 + 2 / 3 + 0.0) / 3,      # c counts as 0 (zero_division)
        "subset_accuracy": 2 / 4,                   # examples 0 and 2 have exactly the right set
    }, abs=1e-12)


def test_per_label_scores_by_hand():
    scores = per_label_scores(ML_PREDS, ML_REFS, LABEL_NAMES)
    assert list(scores) == LABEL_NAMES
    assert scores["a"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 4 / 5, "support": 2}, abs=1e-12)
    assert scores["b"] == pytest.approx({"precision": 1.0, "recall": 1 / 2, "f1": 2 / 3, "support": 2}, abs=1e-12)
    assert scores["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_per_label_scores_of_single_label_classes_include_unseen_ones():
    scores = per_label_scores([0, 1, 1], [0, 1, 0], ["x", "y", "z"])
    assert scores["x"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert scores["z"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert all(type(v) is float for s in scores.values() for k, v in s.items() if k != "support")
    assert all(type(s["support"]) is int for s in scores.values())


def test_f1_macro_alone_follows_the_shape_of_the_input():
    # Rows of 0/1 are multi-label (c averaged in as 0); flat labels are classes.
    assert compute_metrics(("f1_macro",), np.array(ML_PREDS), np.array(ML_REFS))["f1_macro"] == pytest.approx(22 / 45)
    assert compute_metrics(("f1_macro",), [0, 1, 1], [0, 1, 0])["f1_macro"] == pytest.approx(2 / 3)


def test_no_examples_give_nan_scores_and_zero_counts():
    for names, empty in [(MULTI_LABEL, np.zeros((0, 3))), (MULTI_LABEL, []), (("accuracy", "f1_macro", "f1"), [])]:
        assert all(math.isnan(v) for v in compute_metrics(names, empty, empty).values())
    nothing = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert per_label_scores(np.zeros((0, 3)), np.zeros((0, 3)), LABEL_NAMES) == dict.fromkeys(LABEL_NAMES, nothing)
    assert confusion([], [], 2) == [[0, 0], [0, 0]]


def test_multi_label_rows_of_different_widths_raise():
    with pytest.raises(ValueError, match=r"\(2, 3\) but references \(2, 2\)"):
        compute_metrics(("subset_accuracy",), [[1, 0, 0], [0, 1, 0]], [[1, 0], [0, 1]])


multi_label_pairs = st.tuples(st.integers(1, 30), st.integers(2, 6)).flatmap(
    lambda nk: st.tuples(
        *[st.lists(st.lists(st.integers(0, 1), min_size=nk[1], max_size=nk[1]), min_size=nk[0], max_size=nk[0])] * 2
    )
)


def _assert_multi_label_matches_sklearn(preds, refs):
    result = compute_metrics(MULTI_LABEL, preds, refs)
    assert result["f1_micro"] == pytest.approx(f1_score(refs, preds, average="micro", zero_division=0.0), abs=1e-12)
    assert result["f1_macro"] == pytest.approx(f1_score(refs, preds, average="macro", zero_division=0.0), abs=1e-12)
    assert result["subset_accuracy"] == pytest.approx(accuracy_score(refs, preds), abs=1e-12)
    names = [f"label{i}" for i in range(np.shape(refs)[1])]
    scores = per_label_scores(preds, refs, names)
    expected = precision_recall_fscore_support(refs, preds, average=None, zero_division=0.0)
    for i, name in enumerate(names):
        got = scores[name]
        assert [got["precision"], got["recall"], got["f1"]] == pytest.approx([e[i] for e in expected[:3]], abs=1e-12)
        assert got["support"] == expected[3][i]


@FAST
@given(multi_label_pairs)
def test_multi_label_matches_sklearn(pair):
    _assert_multi_label_matches_sklearn(*pair)


@pytest.mark.parametrize("n", SIZES)
def test_multi_label_random_seeded_against_sklearn(n):
    rng = np.random.default_rng(n)
    _assert_multi_label_matches_sklearn(_multi_label(rng, n, 28), _multi_label(rng, n, 28))


# --- confusion matrix ------------------------------------------------------


def test_confusion_by_hand_keeps_a_class_that_never_occurs():
    # Rows are true labels, columns predictions; class 3 is never true nor predicted.
    assert confusion([0, 2, 2, 1, 0], [0, 2, 1, 1, 2], 4) == [
        [1, 0, 0, 0],
        [0, 1, 1, 0],
        [1, 0, 1, 0],
        [0, 0, 0, 0],
    ]


@FAST
@given(multi_class_pairs)
def test_confusion_matches_sklearn(pair):
    preds, refs = pair
    got = confusion(preds, refs, 6)
    assert got == confusion_matrix(refs, preds, labels=range(6)).tolist()
    assert all(type(c) is int for row in got for c in row)


@pytest.mark.parametrize("preds, refs", [([0, 3], [0, 1]), ([0, 1], [-1, 1]), ([0, 1], [0])])
def test_confusion_rejects_labels_outside_the_matrix_and_unequal_lengths(preds, refs):
    with pytest.raises(ValueError):
        confusion(preds, refs, 3)


def test_confusion_figure_names_both_axes_and_writes_the_counts():
    import matplotlib.pyplot as plt

    matrix = confusion([0, 2, 2, 1, 0], [0, 2, 1, 1, 2], 4)
    names = ["world", "sports", "business", "sci/tech"]
    fig = confusion_figure(matrix, names)
    try:
        ax = fig.axes[0]
        assert [t.get_text() for t in ax.get_xticklabels()] == names
        assert [t.get_text() for t in ax.get_yticklabels()] == names
        assert ax.get_xlabel() == "predicted label" and ax.get_ylabel() == "true label"
        # Each nonzero count sits in its cell: x is the predicted label, y the true one.
        cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
        assert cells == {(i, j): str(c) for i, row in enumerate(matrix) for j, c in enumerate(row) if c}
    finally:
        plt.close(fig)


@pytest.mark.parametrize("n", [2, 30])
def test_confusion_figure_layout_is_readable(n):
    import matplotlib.pyplot as plt

    names = [f"disappointment{i}" for i in range(n)]  # GoEmotions' longest name, and more
    matrix = [[10_000 + i + j for j in range(n)] for i in range(n)]  # five digits in every cell
    fig = confusion_figure(matrix, names, title="a run's dev set")
    try:
        fig.savefig(io.BytesIO(), format="png")  # lays the figure out
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        page = fig.bbox
        texts = [ax.title, *ax.get_xticklabels(), *ax.get_yticklabels(), ax.xaxis.label, ax.yaxis.label]
        for text in texts:
            box = text.get_window_extent(renderer)
            assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1, text
        cell = ax.transData.transform((1, 0))[0] - ax.transData.transform((0, 0))[0]
        assert max(t.get_window_extent(renderer).width for t in ax.texts) < cell
        rows = sorted((t.get_window_extent(renderer) for t in ax.get_yticklabels()), key=lambda b: b.y0)
        assert all(low.y1 <= high.y0 for low, high in zip(rows, rows[1:]))
    finally:
        plt.close(fig)


# --- threshold for multi-label ---------------------------------------------


def test_threshold_grid():
    assert THRESHOLDS == pytest.approx([0.05 * i for i in range(1, 20)]) and len(THRESHOLDS) == 19


def test_choose_threshold_finds_the_only_perfect_threshold():
    # Positives at 0.62, 0.7, 0.9 and negatives at most 0.58: only 0.6 separates them.
    probabilities = [[0.62, 0.1, 0.9], [0.2, 0.7, 0.58]]
    references = [[1, 0, 1], [0, 1, 0]]
    assert choose_threshold(probabilities, references) == 0.6
    assert f1_score(references, np.array(probabilities) > 0.6, average="micro") == 1.0


def test_choose_threshold_ties_go_toward_the_default():
    # Positives at 0.9, a negative exactly at 0.6: 0.6 (strictly above is positive) .. 0.85 all score 1.
    assert choose_threshold([[0.9, 0.6]], [[1, 0]]) == 0.6
    # Every threshold scores 1, or every one 0: the default, 0.5.
    assert choose_threshold([[0.99, 0.99]], [[1, 1]]) == 0.5
    assert choose_threshold([[0.3, 0.7]], [[0, 0]]) == 0.5
    assert choose_threshold(np.zeros((0, 3)), np.zeros((0, 3))) == 0.5


@pytest.mark.parametrize("seed", range(5))
def test_choose_threshold_maximises_sklearn_micro_f1(seed):
    rng = np.random.default_rng(seed)
    references = _multi_label(rng, 200, 6)
    # Probabilities on a 0.05 grid, so some equal a candidate exactly, and loosely tied to the truth.
    probabilities = np.clip(rng.integers(0, 21, references.shape) / 20 + 0.3 * references - 0.15, 0, 1)
    scores = [f1_score(references, probabilities > t, average="micro", zero_division=0.0) for t in THRESHOLDS]
    tied = [t for t, score in zip(THRESHOLDS, scores) if score >= max(scores) - 1e-12]
    assert choose_threshold(probabilities, references) == min(tied, key=lambda t: abs(t - 0.5))


def _python_lines(fn, *args) -> int:
    """How many lines of Python, in any module, fn(*args) runs."""
    lines = 0

    def trace(frame, event, arg):
        nonlocal lines
        lines += event == "line"
        return trace

    previous = sys.gettrace()
    sys.settrace(trace)
    try:
        fn(*args)
    finally:
        sys.settrace(previous)
    return lines


def test_choose_threshold_has_no_python_loop_over_examples():
    # A loop over examples runs more lines of Python for more examples; numpy's loops do not.
    small, large = ((np.random.default_rng(n).random((n, 28)), _multi_label(np.random.default_rng(n), n, 28))
                    for n in (10, 10_000))
    assert _python_lines(choose_threshold, *small) == _python_lines(choose_threshold, *large)


def test_choose_threshold_is_fast_at_goemotions_dev_size():
    rng = np.random.default_rng(0)
    probabilities, references = rng.random((5426, 28)), _multi_label(rng, 5426, 28)
    start = time.perf_counter()
    choose_threshold(probabilities, references)
    assert time.perf_counter() - start < 0.5  # about 3 ms on one core


# --- real data: GoEmotions dev set (skipped when ../shared/goemotions is absent) ---


def test_goemotions_dev_always_neutral_matches_sklearn(shared_goemotions):
    names = (shared_goemotions / "labels.txt").read_text(encoding="utf-8").split("\n")
    with open(shared_goemotions / "dev.tsv", encoding="utf-8") as f:
        label_ids = [line.rstrip("\n").split("\t")[1] for line in f]  # text, label ids, comment id
    references = np.zeros((len(label_ids), len(names)), dtype=np.int64)
    for row, ids in enumerate(label_ids):
        references[row, [int(i) for i in ids.split(",")]] = 1
    assert references.shape == (5426, 28) and names[27] == "neutral"
    predictions = np.zeros_like(references)
    predictions[:, 27] = 1  # always `neutral`

    result = compute_metrics(MULTI_LABEL, predictions, references)
    assert result["f1_micro"] == pytest.approx(f1_score(references, predictions, average="micro"), abs=1e-12)
    assert result["f1_macro"] == pytest.approx(f1_score(references, predictions, average="macro",
                                                        zero_division=0.0), abs=1e-12)
    assert result["subset_accuracy"] == pytest.approx(accuracy_score(references, predictions), abs=1e-12)

    # Neutral is predicted for everyone: recall 1, precision its share; every other label scores 0.
    scores = per_label_scores(predictions, references, names)
    support = int(references[:, 27].sum())
    assert scores["neutral"]["support"] == support and scores["neutral"]["recall"] == 1.0
    assert scores["neutral"]["precision"] == pytest.approx(support / 5426)
    assert result["f1_macro"] == pytest.approx(scores["neutral"]["f1"] / 28)
    assert sum(s["support"] for s in scores.values()) == references.sum()
    assert all(s["f1"] == 0.0 for name, s in scores.items() if name != "neutral")


# --- offline loading -------------------------------------------------------


def test_loads_offline_without_network(tmp_path):
    # huggingface_hub and evaluate read HF_HUB_OFFLINE at import time, so the
    # check runs in a fresh interpreter where the variable is set before import
    # and any attempt to open a network connection raises.
    script = textwrap.dedent(
        """
        import socket

        def refuse(*args, **kwargs):
            raise AssertionError(f"network access attempted: {args}")

        socket.socket.connect = refuse
        socket.create_connection = refuse

        from glue_runner.metrics import compute_metrics

        assert compute_metrics(("f1", "accuracy"), [0, 1, 1], [0, 1, 0])["f1"] == 2 / 3
        assert compute_metrics(("subset_accuracy",), [[1, 0], [1, 1]], [[1, 0], [0, 1]]) == {"subset_accuracy": 0.5}
        import sys
        assert "matplotlib" not in sys.modules  # only confusion_figure imports it
        print("ok")
        """
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        # A private modules cache proves loading does not rely on an earlier copy.
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "HF_HOME": str(tmp_path / "hf"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
