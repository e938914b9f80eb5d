"""Load the tokenizer and a sequence-classification model that fits the task."""

import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from .config import RunConfig
from .errors import GlueRunnerError
from .tasks import TaskSpec


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: object
    # model_label[i]: the model's output index for the task's label i. A checkpoint
    # already fine-tuned on the task keeps its own order, so we translate instead of
    # re-learning (an MNLI checkpoint read in the wrong order scores ~7%).
    model_label: list[int]


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).expanduser().exists()


def _is_classifier(config) -> bool:
    return any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))


def _generic_labels(config) -> bool:
    return all(name == f"LABEL_{i}" for i, name in config.id2label.items())


def load_model(task: TaskSpec, cfg: RunConfig) -> LoadedModel:
    if _looks_like_path(cfg.model) and not Path(cfg.model).expanduser().is_dir():
        raise GlueRunnerError(f"model folder {cfg.model} does not exist; pass a folder made by save_pretrained or a Hub name")
    common = {"trust_remote_code": cfg.trust_remote_code, "cache_dir": cfg.cache_dir}
    try:
        config = AutoConfig.from_pretrained(cfg.model, **common)
        tokenizer = AutoTokenizer.from_pretrained(cfg.model, **common)
    except (OSError, ValueError) as e:
        hint = ("; pass --trust-remote-code only if you trust that code"
                if "custom code" in str(e) and not cfg.trust_remote_code else "")
        raise GlueRunnerError(f"could not load model '{cfg.model}': {str(e).splitlines()[0]}{hint}") from None
    if not tokenizer.is_fast:
        raise GlueRunnerError(f"'{cfg.model}' has no fast tokenizer (tokenizer.json); glue-runner needs one for batched tokenization")

    model_label = list(range(task.num_labels))
    kwargs = {"num_labels": task.num_labels}
    if _is_classifier(config) and not cfg.ignore_mismatched_sizes:
        if config.num_labels != task.num_labels:
            raise GlueRunnerError(
                f"'{cfg.model}' has a classification head with {config.num_labels} output(s) but {task.name} needs "
                f"{task.num_labels}; pass --ignore-mismatched-sizes to replace the head with a fresh one")
        if not task.regression and not _generic_labels(config):
            theirs = {name.lower(): int(i) for i, name in config.id2label.items()}
            if set(theirs) == set(task.label_names):
                model_label = [theirs[name] for name in task.label_names]
        # a fine-tuned head keeps its own id2label: do not overwrite it
    else:
        if task.predict_with:
            raise GlueRunnerError(
                f"{task.name} is predicted with a model fine-tuned on {task.predict_with}; "
                f"pass --model <the output folder of a --task {task.predict_with} --save-model run>, "
                f"or use --task {task.predict_with},{task.name}")
        if not task.regression:
            kwargs["id2label"] = dict(enumerate(task.label_names))
            kwargs["label2id"] = {n: i for i, n in enumerate(task.label_names)}
    if task.regression:
        kwargs["problem_type"] = "regression"
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            cfg.model, dtype=torch.float32,  # float32 master weights, whatever the checkpoint stores
            ignore_mismatched_sizes=cfg.ignore_mismatched_sizes, **kwargs, **common)
    except (OSError, ValueError, RuntimeError) as e:
        raise GlueRunnerError(f"could not load model '{cfg.model}' for {task.name}: {str(e).splitlines()[0]}") from None
    except pickle.UnpicklingError:
        # transformers reads .bin weights with torch.load(weights_only=True): this file holds more than tensors
        raise GlueRunnerError(
            f"'{cfg.model}' has pickled weights (pytorch_model.bin) holding objects other than tensors, which "
            "could run code, so they were not loaded; use a model with model.safetensors") from None
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit and cfg.max_seq_length > limit:
        raise GlueRunnerError(f"--max-seq-length {cfg.max_seq_length} is longer than '{cfg.model}' can read "
                              f"({limit} positions); pass --max-seq-length {limit} or less")
    return LoadedModel(model, tokenizer, model_label)
