"""The GLUE scores, and those for your own labelled data, as an `evaluate` metric module.

compute_metrics scores through the evaluate metric script beside this file,
glue_metric.py, loaded by path (evaluate.load(<path>, kind)), so scoring never needs the
Hugging Face Hub (evaluate.load("glue") does); that script computes with METRICS below.
scikit-learn, scipy, evaluate and matplotlib are imported where they are used: the task
registry reads KINDS in the checks made before a run starts, which take a fraction of a second.

GLUE definitions follow the GLUE paper (Wang et al., ICLR 2019, Table 1) and mirror
Hugging Face evaluate's official ``glue`` metric (metrics/glue/glue.py), with its result
keys, so scores are comparable with evaluate.load("glue", ...) and transformers'
run_glue.py. Each task names its metrics in tasks/*.yaml:

* matthews_correlation    sklearn.metrics.matthews_corrcoef (CoLA; AX, three-class R3)
* accuracy                share of exact matches
* f1                      F1 of class 1 (MRPC, QQP)
* pearson, spearmanr      scipy.stats (STS-B)
* f1_macro                sklearn's macro F1: the mean of each label's F1 (own multi-class
                          or multi-label data)
* f1_micro                sklearn's micro F1: F1 of every (example, label) decision pooled
                          (multi-label)
* subset_accuracy         share of examples whose whole label set is right (multi-label)

The config is the kind of input: "classification" (int64 labels), "regression" (float64
scores, not float32, which would cost STS-B precision) or "multi_label" (one row of 0/1
per example, one column per label). compute_metrics picks it from the metric names and,
for f1_macro, which both label kinds have, from the shape of the predictions.

Beside those single numbers:

* per_label_scores        precision, recall, F1 and support of each label, by name
* confusion               single-label counts of (true label, predicted label)
* confusion_figure        that matrix drawn, with label names
* choose_threshold        the multi-label threshold with the best dev-set micro F1

Differences from the official module: every value is a plain Python float, and undefined
scores (no examples; constant or fewer than two inputs for a correlation) come back as
NaN instead of raising or warning, for the caller to report.
"""

import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np


def _accuracy(preds, labels) -> float:
    return float((preds == labels).mean())


def _subset_accuracy(preds, labels) -> float:
    # An example counts only if every one of its labels is right (sklearn's
    # accuracy_score on indicator rows); the mean over all cells would reward
    # predicting nothing, as most cells are 0.
    return float((preds == labels).all(axis=1).mean())


def _f1(average: str):
    # "binary" is F1 of class 1 (sklearn's default pos_label). zero_division=0.0 is
    # sklearn's default value, made explicit to silence its warning; it scores a label
    # neither present nor predicted 0. Single-label "macro" never meets one (it averages
    # the labels that occur); multi-label "macro" averages every column, so a label a
    # small dev set lacks pulls f1_macro down, as sklearn's own default does.
    def compute(preds, labels) -> float:
        from sklearn.metrics import f1_score

        return float(f1_score(labels, preds, average=average, zero_division=0.0))
    return compute


def _matthews(preds, labels) -> float:
    from sklearn.metrics import matthews_corrcoef

    # sklearn returns 0.0 (with a warning) when only one class occurs.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(matthews_corrcoef(labels, preds))


def _correlation(name: str):
    def compute(preds, labels) -> float:
        import scipy.stats

        fn = getattr(scipy.stats, name)
        # scipy warns and returns NaN for constant input, and pearsonr raises for
        # fewer than two points; both mean "undefined", which we report as NaN.
        if len(preds) < 2:
            return float("nan")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(fn(preds, labels)[0])
    return compute


# config (kind of input) -> metric name -> fn(predictions, references)
METRICS = {
    "classification": {"matthews_correlation": _matthews, "accuracy": _accuracy, "f1": _f1("binary"),
                       "f1_macro": _f1("macro")},
    "regression": {"pearson": _correlation("pearsonr"), "spearmanr": _correlation("spearmanr")},
    "multi_label": {"f1_micro": _f1("micro"), "f1_macro": _f1("macro"), "subset_accuracy": _subset_accuracy},
}
# metric name -> the configs that have it (f1_macro: classification and multi_label)
KINDS = {name: [kind for kind, names in METRICS.items() if name in names] for fns in METRICS.values() for name in fns}


@lru_cache(maxsize=None)
def _load(kind: str):
    import evaluate

    # Loading copies and imports the script, so do it once per config.
    # keep_in_memory: no Arrow cache files or lock files on disk per compute.
    return evaluate.load(str(Path(__file__).with_name("glue_metric.py")), kind, keep_in_memory=True)


def compute_metrics(names: tuple[str, ...], predictions, references) -> dict[str, float]:
    """The metrics `names` (a task's `metrics:`) of the predictions against the references.

    Labels, scores, or (multi-label) one row of 0/1 per example. Raises KeyError naming
    the known metrics when a name is unknown.
    """
    unknown = [n for n in names if n not in KINDS]
    if unknown:
        raise KeyError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    kinds = [k for k in METRICS if all(k in KINDS[n] for n in names)]
    if not kinds:
        raise KeyError(f"metrics {', '.join(names)} need different kinds of input "
                       f"({', '.join(sorted({k for n in names for k in KINDS[n]}))}); a task has one kind")
    # f1_macro alone fits single- and multi-label input: a row of 0/1 per example is the latter.
    kind = "multi_label" if "multi_label" in kinds and np.ndim(predictions) == 2 else kinds[0]
    result = _load(kind).compute(predictions=predictions, references=references, metrics=list(names))
    result = {k: float(v) for k, v in result.items()}
    # Tasks with two metrics (mrpc/qqp: f1, accuracy; stsb: pearson, spearmanr)
    # also get their mean, as transformers' run_glue.py reports it. Not multi-label
    # data: there micro F1, macro F1 and subset accuracy answer different questions
    # and papers report them apart (GoEmotions: macro F1); their mean is no one's score.
    if len(result) > 1 and kind != "multi_label":
        result["combined_score"] = sum(result.values()) / len(result)
    return result


def per_label_scores(predictions, references, label_names: list[str]) -> dict[str, dict[str, float]]:
    """{label name: {precision, recall, f1, support}}, support being the label's true examples.

    Labels (one per example) or, multi-label, one row of 0/1 per example. A label neither
    present nor predicted (and every label when there are no examples) scores 0, as in
    f1_macro, with support 0 telling why. Kept out of compute_metrics, whose scores are
    single floats: the runner writes these beside them and prints them as a table.
    """
    from sklearn.metrics import precision_recall_fscore_support

    if len(references) == 0:  # sklearn raises on no examples
        scores = np.zeros((4, len(label_names)))
    else:
        scores = precision_recall_fscore_support(references, predictions, labels=range(len(label_names)),
                                                 average=None, zero_division=0.0)
    return {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(label_names, *scores)}


def confusion(predictions, references, num_labels: int) -> list[list[int]]:
    """Counts of each (true label, predicted label): rows are true labels, columns
    predicted, num_labels x num_labels even when a class never occurs."""
    pairs = np.stack([np.asarray(references, dtype=np.int64), np.asarray(predictions, dtype=np.int64)])
    # A label outside the matrix would be counted in another cell, not rejected.
    if ((pairs < 0) | (pairs >= num_labels)).any():
        raise ValueError(f"labels must be 0..{num_labels - 1}")
    counts = np.bincount(pairs[0] * num_labels + pairs[1], minlength=num_labels * num_labels)
    return counts.reshape(num_labels, num_labels).tolist()


def confusion_figure(matrix: list[list[int]], label_names: list[str], title: str = "confusion matrix"):
    """A matplotlib Figure of confusion()'s matrix: true labels down, predicted across, the
    count in each cell; readable from 2 to about 30 labels. The caller saves and closes it."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, none opened
    import matplotlib.pyplot as plt

    counts = np.asarray(matrix)
    n = len(label_names)
    # Shade by share of the true label's examples, so a rare label's mistakes show as
    # plainly as a common one's; the text gives the counts.
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    # Inches: 0.4 per cell holds a five-digit count at 8 points; at least 5 so the title fits.
    side = max(5.0, 2.5 + 0.4 * n)
    fig, ax = plt.subplots(figsize=(side, side), layout="constrained")
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (true, pred), count in np.ndenumerate(counts):
        if count:  # empty cells stay blank: with many labels most are 0
            ax.text(pred, true, str(count), ha="center", va="center", fontsize=8,
                    color="white" if shares[true, pred] > 0.5 else "black")
    ax.set_xticks(range(n), label_names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), label_names)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    ax.set_title(f"{title}\nshade: share of the true label's examples", fontsize=10)
    return fig


# Multi-label: a sigmoid output above the threshold is a positive. 0.5 unless chosen on
# the dev set (the GoEmotions paper fixed 0.3).
DEFAULT_THRESHOLD = 0.5
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05, 0.10, ..., 0.95


def choose_threshold(probabilities, references, candidates=THRESHOLDS) -> float:
    """The candidate threshold whose predictions (probability > threshold) have the best
    micro F1 against the 0/1 references (both one row per example, one column per label);
    ties go to the candidate nearest DEFAULT_THRESHOLD.

    Micro F1, not macro: one threshold serves every label, so it is fitted to all
    decisions pooled. Under macro F1 a label with a handful of dev examples moves the
    score as much as one with thousands, and those few examples would pick it.
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    truth = np.asarray(references).astype(bool)
    thresholds = np.asarray(candidates, dtype=np.float64)
    # Sorted once, the positives' and negatives' probabilities give, for every
    # candidate at once, how many of each lie above it: true and false positives.
    positives, negatives = np.sort(probs[truth]), np.sort(probs[~truth])
    tp = len(positives) - np.searchsorted(positives, thresholds, side="right")
    fp = len(negatives) - np.searchsorted(negatives, thresholds, side="right")
    # F1 = 2TP / (2TP + FP + FN), and TP + FN is every positive; 0 with nothing to find or predict.
    denominator = tp + fp + len(positives)
    f1 = np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)
    best = thresholds[f1 == f1.max()]
    return float(best[np.argmin(np.abs(best - DEFAULT_THRESHOLD))])
