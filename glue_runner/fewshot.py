"""Few examples a class (--few-shot): SetFit's recipe on glue-runner's loop; a tuned encoder and a linear head.

Tunstall et al. (2022, "Efficient Few-Shot Learning Without Prompts") first fine-tune the encoder contrastively
on pairs of training texts, pulling the cosine similarity of their embeddings to 1 for two texts of one class
and to 0 for texts of two classes (mean squared error), then fit a logistic regression on the tuned
embeddings: 20 rounds of pairs make hundreds of training signals out of a few dozen labels. With 8 examples a
class it beat fine-tuning by 16 points on average over their data sets; by 64 a class the gap closes.

Here a text's embedding is, as in SetFit, the mean of the encoder's last-layer token vectors, and the
regression becomes a linear head on that mean, saved beside the model as
mean_pooled_head.safetensors: glue-run scores with it, and `glue-run predict` and `--model <saved folder>`
read it. transformers.pipeline knows no such head and would use the untrained classifier, which the model card
says. On SST-2 with 8 examples a class this scored 0.69 where writing the regression into the classifier that
reads BERT's pooled [CLS] scored 0.57 (benchmarks/README.md, Few-shot). The pairs train through the loop
(train.py), so they checkpoint, resume exactly and report progress as fine-tuning does.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .config import RunConfig
from .display import each, warning
from .model import LoadedModel, MeanHead, mean_pooled
from .run import DevScorer, Tracker
from .tasks import TaskSpec
from .train import Runtime, TrainStats, collate, predict, train

if TYPE_CHECKING:
    import torch

# SetFit's settings (setfit 1.x's TrainingArguments, the paper's 20 rounds of pairs): its body's rate for every
# encoder, 16 pairs a step, one pass over the pairs
ROUNDS = 20
LEARNING_RATE = 2e-5
BATCH_SIZE = 16
WARMUP_RATIO = 0.1


def make_pairs(labels: np.ndarray, multi_label: bool, seed: int) -> dict[str, list]:
    """ROUNDS rounds in which every training example is paired with one of its class and one of another
    (multi-label: sharing a label, sharing none); a class of one example has no partner of its own."""
    labels = np.asarray(labels)
    same = (labels @ labels.T > 0) if multi_label else labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    other = ~same
    np.fill_diagonal(other, False)
    if multi_label:
        other &= ~(labels @ labels.T > 0)
    rng = np.random.default_rng(seed)
    a, b, similarity = [], [], []
    for _ in range(ROUNDS):
        for i in range(len(labels)):
            for partners, value in ((np.flatnonzero(same[i]), 1.0), (np.flatnonzero(other[i]), 0.0)):
                if len(partners):
                    a.append(i)
                    b.append(int(rng.choice(partners)))
                    similarity.append(value)
    return {"a": a, "b": b, "similarity": similarity}


def pair_model(model: torch.nn.Module) -> torch.nn.Module:
    """The classification model as the loop trains it on pairs: each text's embedding (model.mean_pooled) for
    both texts, and their cosine similarity's squared error against 1 or 0 as the loss."""
    import torch
    import torch.nn.functional as F

    class PairModel(torch.nn.Module):
        def __init__(self, model: torch.nn.Module):
            super().__init__()
            self.model = model

        def forward(self, a: dict, b: dict, similarity: torch.Tensor):
            ea, eb = mean_pooled(self.model, a).float(), mean_pooled(self.model, b).float()
            loss = F.mse_loss(F.cosine_similarity(ea, eb), similarity.float())
            return type("Output", (), {"loss": loss})

    return PairModel(model)


def pair_collate(texts):
    """The loop's collate for pairs: both texts of each pair as a batch of the training split's tokens."""
    import torch

    def make(pairs, indices: np.ndarray, pad_id: int, max_len: int, buckets: bool, multiple: int = 8) -> dict:
        rows = pairs[indices.tolist()]
        return {"a": collate(texts, np.asarray(rows["a"]), pad_id, max_len, buckets, multiple),
                "b": collate(texts, np.asarray(rows["b"]), pad_id, max_len, buckets, multiple),
                "similarity": torch.tensor(rows["similarity"])}
    return make


def fit_head(task: TaskSpec, x: np.ndarray, y: np.ndarray):
    """SetFit's head: scikit-learn's logistic regression (one per label for multi-label) on the embeddings as
    they are. Standardizing them first, as --probe does, scored lower on each of four few-shot sets
    (benchmarks/README.md, Few-shot)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    head = LogisticRegression(max_iter=2000)
    return (OneVsRestClassifier(head) if task.multi_label else head).fit(x, y)  # a label never seen: never on


def mean_head(task: TaskSpec, fitted, width: int) -> MeanHead:
    """The fitted head as a MeanHead in the task's label order: logits whose softmax (sigmoid per label) gives
    the regression's probabilities. A class the training data lacked gets a bias that never wins."""
    weight, bias = np.zeros((task.num_labels, width)), np.full(task.num_labels, -30.0)
    if task.multi_label:
        rows = {label: (np.ravel(e.coef_), float(e.intercept_[0])) for label, e in enumerate(fitted.estimators_)
                if hasattr(e, "coef_")}  # a label never seen is a constant: never predicted
    elif len(fitted.classes_) == 2:  # one log-odds: the two classes' logits 0 and it
        rows = {int(fitted.classes_[0]): (np.zeros(width), 0.0),
                int(fitted.classes_[1]): (fitted.coef_[0], float(fitted.intercept_[0]))}
    else:
        rows = {int(c): (fitted.coef_[k], float(fitted.intercept_[k])) for k, c in enumerate(fitted.classes_)}
    for label, (w, b) in rows.items():
        weight[label], bias[label] = w, b
    return MeanHead(weight, bias)


class FewShot:
    """run.py's Fit for --few-shot (and the defaults, where a class has few examples): contrastive pairs through
    the loop, then the regression as a head on the mean-pooled embedding (model.MeanHead)."""

    def check(self, config) -> None:
        pass

    def describe(self, model: torch.nn.Module, task: TaskSpec, cfg: RunConfig) -> str:
        return (f" · few-shot (SetFit's recipe): {ROUNDS} rounds of pairs, then a logistic-regression head; trains "
                f"{sum(p.numel() for p in model.parameters()):,} parameters")

    def fit(self, loaded: LoadedModel, scorer: DevScorer, tracker: Tracker, bar, output_dir: Path,
            resume_from: Path | None) -> TrainStats:
        import datasets

        task, cfg, rt = scorer.task, scorer.cfg, scorer.rt
        train_split = scorer.tokenized[task.train_split]
        labels = np.asarray(scorer.splits[task.train_split].dataset["label"])
        pairs = datasets.Dataset.from_dict(make_pairs(labels, task.multi_label, cfg.seed))
        lengths = np.asarray(train_split["length"])
        pairs = pairs.add_column("length", np.maximum(lengths[pairs["a"]], lengths[pairs["b"]]).tolist())
        pair_cfg = replace(cfg, learning_rate=LEARNING_RATE, batch_size=BATCH_SIZE, num_train_epochs=1.0,
                           max_steps=0, warmup_ratio=WARMUP_RATIO, gradient_accumulation_steps=1, class_weights=False,
                           layer_lr_decay=None)
        stats = train(pair_model(loaded.model), pairs, pair_cfg, rt, pad_id=scorer.pad_id,
                      report=each(bar.update, tracker.log_step), output_dir=output_dir, resume_from=resume_from,
                      log=warning(scorer.say), collate_fn=pair_collate(train_split), identity=scorer.identity)
        x = predict(loaded.model, train_split, cfg, rt, pad_id=scorer.pad_id, read=mean_pooled,
                    on_batch=bar.scoring("training embeddings"))
        loaded.head = mean_head(task, fit_head(task, x, labels), x.shape[1])
        loaded.labels = replace(loaded.labels, to_model=tuple(range(task.num_labels)))  # the head's order
        return replace(stats, history=[tracker.log_epoch(scorer.after_epoch(0, last=True))])
