"""GLUE benchmark metrics as a local `evaluate` module.

Definitions follow the GLUE paper (Wang et al., ICLR 2019, Table 1) and mirror
Hugging Face evaluate's official ``glue`` metric (metrics/glue/glue.py), with
the same config names and result keys, so scores are comparable with
``evaluate.load("glue", ...)`` and transformers' run_glue.py:

* cola, ax                -> matthews_correlation (sklearn.metrics.matthews_corrcoef;
                             for AX the three-class R3 the GLUE leaderboard reports)
* sst2, mnli, mnli_matched, mnli_mismatched, qnli, rte, wnli -> accuracy
* mrpc, qqp               -> f1 (positive class 1) and accuracy
* stsb                    -> pearson and spearmanr (scipy.stats)

It lives in the package (not on the Hub) so it loads offline:
``evaluate.load("<path to this folder>", config_name)``. Differences from the
official module: ``ax`` is accepted (scored as the leaderboard does, Matthews correlation), stsb features are
float64 rather than float32, every value is a plain Python float, and undefined
correlations (constant or fewer than two inputs) come back as NaN instead of
raising or warning, for the caller to report.
"""

import warnings

import datasets
import evaluate
import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef

_CITATION = """\
@inproceedings{wang2019glue,
  title={{GLUE}: A Multi-Task Benchmark and Analysis Platform for Natural Language Understanding},
  author={Wang, Alex and Singh, Amanpreet and Michael, Julian and Hill, Felix and Levy, Omer and Bowman, Samuel R.},
  note={In the Proceedings of ICLR.},
  year={2019}
}
"""

_DESCRIPTION = """\
GLUE, the General Language Understanding Evaluation benchmark
(https://gluebenchmark.com/): the metric(s) the benchmark reports for each task.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted labels (ints), or scores (floats) for stsb.
    references: gold labels (ints), or gold scores (floats) for stsb.
Returns: depending on the config, one or two of
    "matthews_correlation" (cola), "accuracy", "f1" (mrpc, qqp),
    "pearson" and "spearmanr" (stsb); plain floats, NaN where undefined.
Examples:
    >>> metric = evaluate.load("path/to/glue_metric", "mrpc")
    >>> metric.compute(predictions=[0, 1], references=[0, 1])
    {'f1': 1.0, 'accuracy': 1.0}
"""

_ACCURACY_CONFIGS = ("sst2", "mnli", "mnli_matched", "mnli_mismatched", "qnli", "rte", "wnli")
_F1_CONFIGS = ("mrpc", "qqp")
CONFIG_NAMES = ("cola", "ax", *_ACCURACY_CONFIGS, *_F1_CONFIGS, "stsb")


def _accuracy(preds, labels) -> float:
    # NaN rather than numpy's "mean of empty slice" warning when nothing was scored.
    return float((preds == labels).mean()) if len(preds) else float("nan")


def _correlation(fn, preds, labels) -> float:
    # scipy warns and returns NaN for constant input, and pearsonr raises for
    # fewer than two points; both mean "undefined", which we report as NaN.
    if len(preds) < 2:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(preds, labels)[0])


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class GlueMetric(evaluate.Metric):
    def _info(self):
        if self.config_name not in CONFIG_NAMES:
            raise KeyError(
                f"Unknown GLUE metric config {self.config_name!r}; "
                f"choose one of {', '.join(CONFIG_NAMES)}"
            )
        dtype = "float64" if self.config_name == "stsb" else "int64"
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value(dtype), "references": datasets.Value(dtype)}
            ),
            reference_urls=["https://gluebenchmark.com/", "https://huggingface.co/spaces/evaluate-metric/glue"],
            # No format="numpy": datasets' numpy formatter casts floats to
            # float32, which would cost stsb precision; _compute converts.
        )

    def _compute(self, predictions, references):
        name = self.config_name
        dtype = np.float64 if name == "stsb" else np.int64
        preds, labels = np.asarray(predictions, dtype=dtype), np.asarray(references, dtype=dtype)
        if name in ("cola", "ax"):
            # sklearn returns 0.0 (with a warning) when only one class occurs.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return {"matthews_correlation": float(matthews_corrcoef(labels, preds))}
        if name == "stsb":
            return {
                "pearson": _correlation(pearsonr, preds, labels),
                "spearmanr": _correlation(spearmanr, preds, labels),
            }
        if name in _F1_CONFIGS:
            # zero_division=0.0 is sklearn's default value, made explicit to
            # silence the warning when no positives are predicted or present.
            f1 = f1_score(labels, preds, pos_label=1, average="binary", zero_division=0.0)
            return {"f1": float(f1), "accuracy": _accuracy(preds, labels)}
        return {"accuracy": _accuracy(preds, labels)}
