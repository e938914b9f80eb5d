"""glue-runner's metrics as an `evaluate` metric script: metrics.compute_metrics loads it by path.

    >>> metric = evaluate.load("path/to/glue_runner/glue_metric.py", "classification")

evaluate imports its own copy of this file, so every import here is absolute. The scores
themselves are metrics.py's (its docstring lists them); this file declares the inputs.
"""

import datasets
import evaluate
import numpy as np

from glue_runner.metrics import METRICS

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
(https://gluebenchmark.com/): the metric(s) the benchmark reports for each task; and
macro/micro F1 and subset accuracy for multi-class and multi-label classification.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted labels (ints); scores (floats) with the "regression" config;
        one row of 0/1 per example with the "multi_label" config.
    references: gold labels, scores or 0/1 rows, like the predictions.
    metrics: the names of the metrics to compute (matthews_correlation, accuracy, f1,
        f1_macro, pearson, spearmanr; multi_label: f1_micro, f1_macro, subset_accuracy).
Returns: {name: value} for each metric asked for; plain floats, NaN where undefined.
Examples:
    >>> metric = evaluate.load("path/to/glue_runner/glue_metric.py", "classification")
    >>> metric.compute(predictions=[0, 1], references=[0, 1], metrics=["f1", "accuracy"])
    {'f1': 1.0, 'accuracy': 1.0}
    >>> metric = evaluate.load("path/to/glue_runner/glue_metric.py", "multi_label")
    >>> metric.compute(predictions=[[1, 0], [1, 1]], references=[[1, 0], [0, 1]], metrics=["subset_accuracy"])
    {'subset_accuracy': 0.5}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class GlueMetric(evaluate.Metric):
    def _info(self):
        if self.config_name not in METRICS:
            raise KeyError(f"Unknown GLUE metric config {self.config_name!r}; choose one of {', '.join(METRICS)}")
        value = datasets.Value("float64" if self.config_name == "regression" else "int64")
        if self.config_name == "multi_label":
            value = datasets.Sequence(value)
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": value, "references": value}),
            reference_urls=["https://gluebenchmark.com/", "https://huggingface.co/spaces/evaluate-metric/glue"],
            # No format="numpy": datasets' numpy formatter casts floats to
            # float32, which would cost stsb precision; _compute converts.
        )

    def _compute(self, predictions, references, metrics=()):
        known = METRICS[self.config_name]
        unknown = [m for m in metrics if m not in known]
        if unknown:
            raise KeyError(f"unknown {self.config_name} metric(s) {', '.join(unknown)}; choose from {', '.join(known)}")
        # Nothing scored: every metric is undefined (sklearn would raise, numpy warn).
        if len(predictions) == 0:
            return {name: float("nan") for name in metrics}
        dtype = np.float64 if self.config_name == "regression" else np.int64
        preds, labels = np.asarray(predictions, dtype=dtype), np.asarray(references, dtype=dtype)
        if preds.shape != labels.shape:  # evaluate checks the rows; multi-label rows must match too
            raise ValueError(f"predictions are {preds.shape} but references {labels.shape}")
        return {name: known[name](preds, labels) for name in metrics}
