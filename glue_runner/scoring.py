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


# A score within this of the trivial predictor's (on a 0-1 scale) is no evidence of learning:
# a few dev examples flipping either way move a score that much.
BASELINE_MARGIN = 0.01


@dataclass(frozen=True)
class Baseline:
    """What a predictor that learned nothing but the training labels scores on each dev split: the most
    frequent training label for every example (multi-label: each label's own majority; regression: the
    training mean), under the task's metrics. A constant has no correlation, so its Pearson and Spearman
    are their chance level, 0."""
    predictor: str  # in words: the table's caption, metrics.json
    metrics: dict  # flat name -> value, as Evaluation.metrics
    splits: dict  # split -> the names in `metrics` that score it, combined_score aside

    def main_scores(self, metrics: dict, split: str) -> tuple[float | None, float]:
        """(the run's, the baseline's) main score on `split`: the mean of its metrics, as a GLUE column
        scores them."""
        ours = [metrics.get(name) for name in self.splits[split]]
        return (None if None in ours else float(np.mean(ours)),
                float(np.mean([self.metrics[name] for name in self.splits[split]])))

    def not_beaten(self, metrics: dict, margin: float = BASELINE_MARGIN) -> list[str]:
        """The splits whose main score is not above the baseline's by more than `margin`."""
        splits = []
        for split in self.splits:
            ours, base = self.main_scores(metrics, split)
            if ours is None or ours <= base + margin:  # undefined is no evidence of learning either
                splits.append(split)
        return splits

    def said(self, metrics: dict) -> str:
        """Each dev split's main score beside the baseline's, in words."""
        parts = []
        for split in self.splits:
            ours, base = self.main_scores(metrics, split)
            parts.append(f"{split} {'undefined' if ours is None else f'{ours:.4f}'} against {base:.4f}")
        return "; ".join(parts)


# --smoke's verdict: a model learned when each dev split's main score is above the baseline's by more than
# this. In the tasks' budgets all-MiniLM-L6-v2 leaves it by 0.25 (SST-2) and 0.55 (STS-B); with a tokenizer of
# another vocabulary it still gained 0.10 on SST-2, with random weights or shuffled labels nothing
# (benchmarks/README.md: Smoke budgets)
SMOKE_MARGIN = 0.15


def smoke_verdict(task: TaskSpec, trivial: Baseline, metrics: dict, steps: int) -> dict:
    """What a --smoke run shows, for metrics.json: whether the task is expected to learn in its budget, and
    whether it learned (beat the baseline by more than SMOKE_MARGIN)."""
    return {"steps": steps, "expected": task.smoke.learns, "learned": not trivial.not_beaten(metrics, SMOKE_MARGIN),
            "margin": SMOKE_MARGIN, "scores": trivial.said(metrics),
            **({} if task.smoke.learns else {"why_not": task.smoke.why_not})}


def baseline(task: TaskSpec, labels: Labels, train_labels, splits: dict) -> Baseline | None:
    """The trivial predictor's scores on the dev splits in `splits`, from the training labels (in the
    task's order); None without training labels (AX)."""
    if train_labels is None or not len(train_labels):
        return None
    train_labels = np.asarray(train_labels)
    if labels.regression:
        constant, predictor = float(train_labels.mean()), f"the training mean ({train_labels.mean():.3f}) for every example"
    elif labels.multi_label:
        constant = (train_labels.mean(axis=0) > 0.5).astype(np.int64)
        on = [name for name, bit in zip(labels.names, constant) if bit]
        predictor = f"each label's training majority for every example ({', '.join(on) or 'no label'})"
    else:
        counts = np.bincount(train_labels.astype(np.int64), minlength=len(labels.names))
        constant = int(counts.argmax())
        predictor = (f"the most frequent training label for every example ({labels.names[constant]!r}, "
                     f"{counts[constant] / counts.sum():.0%} of training)")
    result, names = {}, {}
    for split in task.eval_splits:
        if split not in splits:
            continue
        references = np.asarray(splits[split].dataset["label"])
        predictions = np.repeat(np.asarray(constant)[None], len(references), axis=0)
        if labels.multi_label:
            references = references.astype(np.int64)
        suffix = task.splits[split].metric_suffix
        scores = {k + suffix: 0.0 if v is None or not np.isfinite(v) else round(v, 6)
                  for k, v in compute_metrics(task.metrics, predictions, references).items()}
        result.update(scores)
        names[split] = tuple(k for k in scores if k != "combined_score" + suffix)
    return Baseline(predictor, result, names) if result else None


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
