"""Scoring: the dev split(s) with the task's metrics, and the prediction files a run writes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from .files import delimited_text, png
from .metrics import choose_threshold, compute_metrics, confusion, confusion_figure, per_label_scores
from .model import Labels
from .tasks import TaskSpec


@dataclass
class Evaluation:
    """One scoring of the dev split(s)."""
    metrics: dict  # flat name -> value: metrics.json's "metrics", the tables' columns
    predictions: dict  # split -> (predictions, references)
    details: dict = field(default_factory=dict)  # your own tasks: per-label scores, confusion matrices, threshold


def score(task: TaskSpec, labels: Labels, splits: dict, logits: Callable[[str], np.ndarray], tune_threshold: bool,
          say) -> tuple[Evaluation, Labels]:
    """The dev split(s) scored with the task's metrics, from each split's logits; and the labels to
    predict with from now on: for a multi-label task with --tune-threshold, with the threshold that
    has the best micro-F1 on the first dev split (recorded, as it makes the dev scores optimistic),
    which also decides the test predictions."""
    evaluation = Evaluation({}, {})
    for split in task.eval_splits:
        if split not in splits:
            continue
        outputs = logits(split)
        references = np.asarray(splits[split].dataset["label"])
        if labels.multi_label:
            references = references.astype(np.int64)
            if "threshold" not in evaluation.details:  # chosen on the first dev split, used for every split
                if tune_threshold:
                    labels = replace(labels, threshold=choose_threshold(labels.probabilities(outputs), references))
                evaluation.details["threshold"] = {"value": labels.threshold,
                                                   "chosen_on": split if tune_threshold else None}
        values = labels.predictions(outputs)
        suffix = task.splits[split].metric_suffix
        scores = compute_metrics(task.metrics, values, references)
        evaluation.metrics.update({k + suffix: finite_or_none(v, k + suffix, say) for k, v in scores.items()})
        evaluation.predictions[split] = (values, references)
        if task.own and not labels.regression:
            evaluation.details.setdefault("per_label", {})[split] = per_label_scores(values, references,
                                                                                      list(labels.names))
            if not labels.multi_label:
                evaluation.details.setdefault("confusion", {})[split] = confusion(values, references,
                                                                                   len(labels.names))
    return evaluation, labels


def prediction_files(labels: Labels, splits: dict, dev: dict, test: dict) -> dict[str, str]:
    """File name -> TSV text: dev predictions beside their labels, test predictions alone."""
    files = {}
    for split, (values, references) in dev.items():
        files[f"predictions_{split}.tsv"] = delimited_text(
            ["index", "prediction", "label"],
            [[int(i), labels.text(v), labels.text(r)] for i, v, r in zip(splits[split].dataset["idx"], values, references)])
    for split, values in test.items():
        files[f"predictions_{split}.tsv"] = delimited_text(
            ["index", "prediction"], [[int(i), labels.text(v)] for i, v in zip(splits[split].dataset["idx"], values)])
    return files


def confusion_files(labels: Labels, matrices: dict) -> dict[str, str | bytes]:
    """Each dev split's confusion matrix as a table (rows: true labels, columns: predicted) and a picture."""
    files = {}
    for split, matrix in matrices.items():
        files[f"confusion_{split}.csv"] = delimited_text(
            ["true \\ predicted", *labels.names], [[name, *row] for name, row in zip(labels.names, matrix)], ",")
        files[f"confusion_{split}.png"] = png(confusion_figure(matrix, list(labels.names),
                                                                        f"confusion matrix, {split}"))
    return files


def finite_or_none(value: float, name: str, say) -> float | None:
    if value is None or math.isfinite(value):
        return value
    say(f"[yellow]{name} is undefined on this data (e.g. constant predictions); recorded as missing[/]")
    return None
