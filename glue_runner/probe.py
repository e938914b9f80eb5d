"""A probe of the frozen encoder (--probe): its features, and a linear head trained on them.

The encoder runs once over each split; its features (the last layer's [CLS] vector beside
its mean over the real tokens) are cached on disk, and only a head is trained on them:
SentEval's and MTEB's way of testing what an encoder knows, and the BERTology tutorial's
comparison with fine-tuning, at a fraction of its cost. The head is scikit-learn's: a
logistic regression (one per label for multi-label, ridge regression for a score) on
standardized features. Its fit is convex and the encoder does not change, so a probe gives
the same result for every seed.
"""

from __future__ import annotations

import hashlib
import io
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from . import fingerprints
from .config import RunConfig
from .data import cache_folder
from .errors import GlueRunnerError
from .files import write_atomic
from .model import LoadedModel, last_hidden, token_mean
from .run import DevScorer, Tracker
from .tasks import TaskSpec
from .train import Runtime, TrainStats, predict

if TYPE_CHECKING:  # torch is imported where it is used: the checks before a run answer in a second
    import torch


def pooled(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    """[CLS] and the mean over real tokens of the encoder's last layer, side by side."""
    import torch

    hidden = last_hidden(model, batch)
    return torch.cat([hidden[:, 0], token_mean(hidden, batch["attention_mask"])], dim=1)


def features(model: torch.nn.Module, dataset, split: str, cfg: RunConfig, rt: Runtime, pad_id: int,
             cache_dir: Path, on_batch=None) -> np.ndarray:
    """The split's features, read from the cache when this encoder has already seen this split."""
    path = cache_dir / f"features-{feature_key(cfg, dataset)}.npy"
    if path.is_file():
        return np.load(path)
    found = predict(model, dataset, cfg, rt, pad_id=pad_id, on_batch=on_batch, read=pooled)
    if rt.is_main:
        file = io.BytesIO()
        np.save(file, found)
        write_atomic(path, file.getvalue())  # another run reading the cache never sees half a file
    return found


def feature_key(cfg: RunConfig, dataset) -> str:
    """The encoder (its name or folder, and its files' content or Hub commit) and the tokenized split
    (datasets' fingerprint covers the text, the tokenizer and the length limit)."""
    weights = fingerprints.model(cfg.model, cfg.cache_dir)
    return hashlib.sha256(f"{cfg.identity()['model']}|{weights}|{dataset._fingerprint}".encode()).hexdigest()[:24]


def train_head(task: TaskSpec, x: np.ndarray, y: np.ndarray):
    """The head: standardized features, then a logistic regression (per label for multi-label)
    or, for a score, a ridge regression; scikit-learn's defaults, tuned on nothing."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if task.regression:
        head = Ridge()
    elif task.multi_label:
        head = OneVsRestClassifier(LogisticRegression(max_iter=2000))  # a label never seen: predicted never
    else:
        if len(np.unique(y)) < 2:
            raise GlueRunnerError(f"--probe: the {task.name} training data has one label only; a classifier needs two")
        head = LogisticRegression(max_iter=2000)
    return make_pipeline(StandardScaler(), head).fit(x, y)


def head_logits(task: TaskSpec, head, x: np.ndarray) -> np.ndarray:
    """The head's outputs as the model's would be: a score, a log-probability per class (its
    arg max is the prediction), or per label the log-odds (whose sigmoid is the probability)."""
    if task.regression:
        return head.predict(x)[:, None]
    p = np.clip(head.predict_proba(x), 1e-7, 1 - 1e-7)
    if task.multi_label:
        return np.log(p) - np.log1p(-p)
    full = np.full((len(x), task.num_labels), np.log(1e-7))
    full[:, head.classes_] = np.log(p)  # a class absent from training is never predicted
    return full


def head_size(head) -> int:
    """The head's weights and biases (one linear model per label for multi-label)."""
    fitted = head[-1]
    models = getattr(fitted, "estimators_", [fitted])
    return sum(np.size(getattr(m, name, 0)) for m in models for name in ("coef_", "intercept_"))


def run(model: torch.nn.Module, task: TaskSpec, splits: dict, tokenized: dict, cfg: RunConfig, rt: Runtime,
        pad_id: int, cache_dir: Path, bar) -> tuple[Callable[[str], np.ndarray], TrainStats]:
    """Features of every split, a head trained on the training split's; returns split -> the head's
    logits (for the dev and test splits), and the time it took as the run's training time."""
    started = time.perf_counter()
    found = {split: features(model, dataset, split, cfg, rt, pad_id, cache_dir, bar.scoring(f"{split} features"))
             for split, dataset in tokenized.items()}
    labels = np.asarray(splits["train"].dataset["label"])
    head = train_head(task, found["train"], labels)
    stats = TrainStats(steps=0, samples=len(labels), seconds=time.perf_counter() - started, final_loss=None,
                       history=[], trained_parameters=head_size(head))
    return (lambda split: head_logits(task, head, found[split])), stats


class Probe:
    """run.py's Fit for --probe: the features and the head above, the head's logits scored in place
    of the model's."""

    def check(self, config) -> None:
        pass

    def describe(self, model: torch.nn.Module, task: TaskSpec, cfg: RunConfig) -> str:
        return " · probe: a linear head on the frozen encoder's features"

    def fit(self, loaded: LoadedModel, scorer: DevScorer, tracker: Tracker, bar, output_dir: Path,
            resume_from: Path | None) -> TrainStats:
        task = scorer.task
        loaded.labels = replace(loaded.labels, to_model=tuple(range(task.num_labels)))  # the head's own order
        scorer.outputs, stats = run(loaded.model, task, scorer.splits, scorer.tokenized, scorer.cfg, scorer.rt,
                                    scorer.pad_id, cache_folder(scorer.cfg.cache_dir), bar)
        return stats
