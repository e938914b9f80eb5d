"""The model: a classification model and its fast tokenizer, loaded and checked against the task.

Everything that can be checked on the configuration and the tokenizer (the head's size and
labels, the sequence length, a fast tokenizer) is checked before the weights load. Labels
translates between the task's label order and the model's outputs.
"""

from __future__ import annotations

import copy
import json
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .config import RunConfig, is_task_file
from .data import OFFLINE_DATA, TRY_OFFLINE, own_files
from .errors import GlueRunnerError
from .results import write_model
from .tasks import PROBLEM_TYPES, TaskSpec

if TYPE_CHECKING:  # torch and transformers are imported where they are used: the checks before a run answer in a second
    import torch


@dataclass(frozen=True)
class Labels:
    """The task's labels against the model's outputs: the one place their order is translated
    and outputs become predictions.

    to_model[i] is the model's output index for the task's label i. A checkpoint already
    fine-tuned on the task keeps its own order, so we translate instead of re-learning (an
    MNLI checkpoint read in the wrong order scores ~7%). A multi-label task's outputs are
    independent probabilities (sigmoid); each label above the threshold is predicted.
    """
    task: TaskSpec
    to_model: tuple[int, ...]
    threshold: float = 0.5

    @property
    def names(self) -> tuple[str, ...]:
        return self.task.label_names

    @property
    def regression(self) -> bool:
        return self.task.regression

    @property
    def multi_label(self) -> bool:
        return self.task.multi_label

    @property
    def reordered(self) -> bool:
        return self.to_model != tuple(range(len(self.to_model)))

    def for_training(self, dataset):
        """The dataset with its labels as the model's output indices (or 0/1 columns)."""
        if not self.reordered:
            return dataset
        if self.multi_label:
            columns = np.argsort(self.to_model)  # the model's output j is the task's label columns[j]
            return dataset.map(lambda b: {"label": np.asarray(b["label"])[:, columns].tolist()}, batched=True)
        to_model = np.asarray(self.to_model)
        return dataset.map(lambda b: {"label": to_model[b["label"]].tolist()}, batched=True)

    def task_logits(self, logits: np.ndarray) -> np.ndarray:
        """The model's logits with their columns in the task's label order."""
        return logits if self.regression else logits[:, list(self.to_model)]

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Each label's probability, in the task's order: a sigmoid each (multi-label), else a softmax over them."""
        from scipy.special import expit, softmax

        logits = self.task_logits(logits).astype(np.float64)
        return expit(logits) if self.multi_label else softmax(logits, axis=1)

    def predictions(self, logits: np.ndarray) -> np.ndarray:
        """A score, a label index (in the task's order), or a row of 0/1 (multi-label) per example."""
        if self.regression:
            return logits[:, 0]
        if self.multi_label:
            return (self.probabilities(logits) > self.threshold).astype(np.int64)
        return self.task_logits(logits).argmax(axis=1)

    def text(self, value) -> str:
        # a score at full precision (repr round-trips), so the metrics can be recomputed from the file exactly
        if self.regression:
            return repr(float(value))
        if self.multi_label:  # as the labels came: joined as in the training file ("|" when by column)
            return (self.task.label_delimiter or "|").join(name for name, on in zip(self.names, value) if on)
        return self.names[int(value)]


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: object
    labels: Labels
    head: MeanHead | None = None  # --few-shot's: the outputs come from it, not from the model's own head

    def logits(self, model: torch.nn.Module, batch: dict) -> torch.Tensor:
        """The outputs for a batch (train.predict's `read`): the few-shot head's where there is one."""
        return self.head.logits(model, batch) if self.head else model(**batch).logits


@dataclass(frozen=True)
class MeanHead:
    """A linear head on the mean of the encoder's last-layer token vectors (--few-shot's, fewshot.py): logits =
    weight @ mean + bias, in the task's label order. Saved beside the model as MEAN_HEAD, which glue-run and
    glue-run predict read; transformers' own classes know no such head (the model card says so)."""
    weight: np.ndarray  # (outputs, hidden)
    bias: np.ndarray

    def logits(self, model: torch.nn.Module, batch: dict) -> torch.Tensor:
        import torch

        pooled = mean_pooled(model, batch)
        weight, bias = (torch.as_tensor(a, device=pooled.device).float() for a in (self.weight, self.bias))
        with torch.autocast(pooled.device.type, enabled=False):  # in float32, as float32_head says why
            return torch.nn.functional.linear(pooled.float(), weight, bias)

    def files(self) -> dict[str, bytes]:
        from safetensors.numpy import save

        return {MEAN_HEAD: save({"weight": self.weight.astype(np.float32), "bias": self.bias.astype(np.float32)})}

    @classmethod
    def saved_in(cls, folder: Path) -> MeanHead | None:
        if not (Path(folder) / MEAN_HEAD).is_file():
            return None
        from safetensors.numpy import load_file

        found = load_file(str(Path(folder) / MEAN_HEAD))
        return cls(found["weight"], found["bias"])


MEAN_HEAD = "mean_pooled_head.safetensors"


def last_hidden(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    """The encoder's last-layer vector for every token, the classification head left out."""
    return model.base_model(**{k: v for k, v in batch.items() if k != "labels"}).last_hidden_state


def mean_pooled(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    """The mean of the encoder's last-layer vectors over each example's real tokens (sentence-transformers' and
    SetFit's embedding)."""
    return token_mean(last_hidden(model, batch), batch["attention_mask"])


def token_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).expanduser().exists()


def is_classifier(config) -> bool:
    return any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))


def _generic_labels(config) -> bool:
    return all(name == f"LABEL_{i}" for i, name in config.id2label.items())


def load_model(task: TaskSpec, cfg: RunConfig, say=lambda *a, **k: None, check=lambda config: None) -> LoadedModel:
    """The tokenizer and a classification model that fits the task. Everything that can be
    checked on the configuration and the tokenizer is checked before the weights load (`check`: what
    the run's way of fitting asks of the configuration)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    config, tokenizer = load_tokenizer(task, cfg)
    check(config)
    if tokenizer.pad_token is None:  # GPT-2's and other decoders': batches need one to pad with
        if tokenizer.eos_token is None:
            raise GlueRunnerError(f"'{cfg.model}''s tokenizer has neither a padding token nor an end-of-text token to "
                                  "pad with, so batches of texts of several lengths cannot be made; give it a "
                                  "pad_token (tokenizer.pad_token = ...; save_pretrained)")
        tokenizer.pad_token = tokenizer.eos_token
        say(f"[cyan]{cfg.model} has no padding token: padding with its end-of-text token {tokenizer.eos_token!r}, "
            "as is usual for decoders such as GPT-2 (its classifier reads the last token before the padding)[/]",
            soft_wrap=True)

    to_model = tuple(range(task.num_labels))
    kwargs = {"num_labels": task.num_labels}
    if is_classifier(config) and not cfg.ignore_mismatched_sizes:
        if config.num_labels != task.num_labels:
            raise GlueRunnerError(
                f"'{cfg.model}' has a classification head with {config.num_labels} output(s) but {task.name} needs "
                f"{task.num_labels}; pass --ignore-mismatched-sizes to replace the head with a fresh one")
        # by name, whatever the case: GLUE's checkpoints name MNLI's labels ENTAILMENT, entailment, ...
        theirs = {name.lower(): int(i) for i, name in config.id2label.items()}
        if task.regression:
            reused = config.problem_type != "regression"
        else:
            reused = _generic_labels(config) or set(theirs) != {name.lower() for name in task.label_names}
            if not reused:
                to_model = tuple(theirs[name.lower()] for name in task.label_names)
        if to_model != tuple(range(task.num_labels)):
            say(f"[cyan]{cfg.model} is already fine-tuned on these labels; using its label order[/]")
        if reused:
            say(f"[cyan]{cfg.model}'s {config.num_labels}-output head ({', '.join(config.id2label.values())}) is "
                f"trained further as {task.name}'s head ({', '.join(task.label_names) or 'a score'}); a saved model "
                f"gets {task.name}'s label names[/]")
    else:
        if task.predict_with:
            raise GlueRunnerError(
                f"{task.name} is predicted with a model fine-tuned on {task.predict_with}; "
                f"pass --model <the output folder of a --task {task.predict_with} --save-model run>, "
                f"or use --task {task.predict_with},{task.name}")
        if not task.regression:
            kwargs["id2label"] = dict(enumerate(task.label_names))
            kwargs["label2id"] = {n: i for i, n in enumerate(task.label_names)}
    # the loss: MSE, BCE per label, or cross-entropy; said even for the default, so a checkpoint made
    # for another kind of task (a multi-label head trained further on classes) does not keep its own
    kwargs["problem_type"] = PROBLEM_TYPES[task.problem_type]
    if getattr(config, "pad_token_id", None) is None:
        kwargs["pad_token_id"] = tokenizer.pad_token_id  # a decoder's classifier finds each text's end by it
    from safetensors import SafetensorError

    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            cfg.model, dtype=torch.float32,  # float32 master weights, whatever the checkpoint stores
            ignore_mismatched_sizes=cfg.ignore_mismatched_sizes, **kwargs, **hub_options(cfg))
    except (OSError, ValueError, RuntimeError) as e:
        if "ignore_mismatched_sizes" in str(e):  # transformers' own words point at a report it does not show
            raise GlueRunnerError(
                f"the weights of '{cfg.model}' do not have the sizes its config.json gives (config.json was edited "
                "after saving, or belongs to other weights); put back the config.json saved with these weights, or "
                "download or copy the model again") from None
        if cut_short_bin(cfg.model):
            raise GlueRunnerError(f"could not load model '{cfg.model}': its weights file (pytorch_model.bin) is "
                                  "damaged or cut short (an interrupted download or copy); download or copy it "
                                  "again") from None
        raise GlueRunnerError(f"could not load model '{cfg.model}' for {task.name}: {reason(e, cfg)}") from None
    except SafetensorError as e:  # a weights file cut short: an interrupted download or copy
        raise GlueRunnerError(f"could not load model '{cfg.model}': its weights file (model.safetensors) is damaged "
                              f"or cut short ({e}); download or copy it again") from None
    except pickle.UnpicklingError:
        # transformers reads .bin weights with torch.load(weights_only=True): this file holds more than tensors
        raise GlueRunnerError(
            f"'{cfg.model}' has pickled weights (pytorch_model.bin) holding objects other than tensors, which "
            "could run code, so they were not loaded; use a model with model.safetensors") from None
    saved = getattr(model.config, "multi_label_threshold", None)
    if task.multi_label and saved not in (None, cfg.threshold) and not cfg.tune_threshold:
        say(f"[cyan]{cfg.model} was saved with the multi-label threshold {saved}; this run uses {cfg.threshold} "
            f"(pass --threshold {saved} to score it as it was)[/]", soft_wrap=True)
    float32_head(model)
    head = MeanHead.saved_in(Path(cfg.model).expanduser())  # a --few-shot model's: its outputs in the task's order
    order = tuple(range(task.num_labels)) if head else to_model
    return LoadedModel(model, tokenizer, Labels(task, order, cfg.threshold), head)


def float32_head(model: torch.nn.Module) -> None:
    """The classifier's last layer computes in float32 under autocast. Its outputs are the scores and
    probabilities the run writes and scores, and in bfloat16 (8 bits of mantissa) close outputs round to
    one value: a regression head whose predictions differ in the third digit predicts a constant, whose
    correlation is undefined. A forward hook recomputes the layer (a matrix-vector product a row) from its
    input, so the weights and their names stay as the checkpoint has them."""
    layer = output_layer(model)
    if layer is not None:
        layer.register_forward_hook(_float32_output)


def output_layer(model: torch.nn.Module) -> torch.nn.Linear | None:
    """The classification model's output layer: the last linear layer of its head (outside the base model) with
    an output per label (BERT's classifier, RoBERTa's and ELECTRA's out_proj, GPT-2's score)."""
    import torch

    layers = [module for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)
              and module.out_features == model.config.num_labels and not name.startswith(model.base_model_prefix)]
    return layers[-1] if layers else None


def _float32_output(layer, args, output):
    import torch

    with torch.autocast(output.device.type, enabled=False):
        return torch.nn.functional.linear(args[0].float(), layer.weight.float(),
                                          None if layer.bias is None else layer.bias.float())


def load_tokenizer(task: TaskSpec, cfg: RunConfig) -> tuple:
    """The model's configuration and fast tokenizer, checked against the task before any weights load."""
    config, tokenizer = load_config(cfg)
    check_length(task, cfg, tokenizer, getattr(config, "max_position_embeddings", None))
    return config, tokenizer


def load_config(cfg: RunConfig) -> tuple:
    """The model's configuration and fast tokenizer, each checked to be whole."""
    from transformers import AutoConfig, AutoTokenizer

    if not cfg.model.strip():  # an unset shell variable: transformers would answer about repo ids
        raise GlueRunnerError("--model is empty; give a model folder (one save_pretrained made) or a Hub name, "
                              "e.g. bert-base-uncased")
    folder = Path(cfg.model).expanduser() if _looks_like_path(cfg.model) else None
    if folder and not folder.is_dir():
        what = f"{cfg.model} is a file, not a model folder" if folder.exists() else \
            f"model folder {cfg.model} does not exist"
        raise GlueRunnerError(f"{what}; pass a folder made by save_pretrained or a Hub name")
    saved = folder and run_folder_model(folder)
    if saved:
        raise GlueRunnerError(f"{cfg.model} is a run's folder, not a model folder; the model that run saved is "
                              f"{saved}: pass --model {saved}")
    if folder and not (folder / "config.json").is_file():
        # without it transformers asks for a model_type in the very file that is missing, or guesses the
        # family from the folder's name and builds a model of default sizes the weights do not fit
        raise GlueRunnerError(f"could not load model '{cfg.model}': the folder has no config.json, so it is not a "
                              "whole model folder; download or copy the model again (save_pretrained writes "
                              "config.json beside the weights)")
    try:
        config = AutoConfig.from_pretrained(cfg.model, **hub_options(cfg))
        tokenizer = AutoTokenizer.from_pretrained(cfg.model, **hub_options(cfg))
    except Exception as e:  # noqa: BLE001 - re-raised below unless a damaged file explains it
        # a damaged JSON file surfaces as a JSONDecodeError, a KeyError or a TypeError from deep inside the
        # libraries, naming neither the file nor the fix: look for one, and else keep what was raised
        damage = folder and damaged_file(folder)
        if damage:
            raise GlueRunnerError(f"could not load model '{cfg.model}': {damage}; download or copy the model "
                                  "again") from None
        if not isinstance(e, (OSError, ValueError)):
            raise
        raise GlueRunnerError(f"could not load model '{cfg.model}': {reason(e, cfg)}") from None
    if not tokenizer.is_fast:
        raise GlueRunnerError(f"'{cfg.model}' has no fast tokenizer (tokenizer.json); glue-runner needs one for batched tokenization")
    specials = set(tokenizer.all_special_tokens)
    if not set(tokenizer.get_vocab()) - specials:
        # transformers builds a tokenizer of the family's class from no files at all: every word would be [UNK]
        raise GlueRunnerError(
            f"'{cfg.model}' has no tokenizer files (tokenizer.json, or a vocabulary such as vocab.txt): the tokenizer "
            f"made without them knows only its {len(specials)} special tokens, so every word would be unknown; copy "
            "the tokenizer's files into the folder (tokenizer.save_pretrained), or download the model again")
    return config, tokenizer


def run_folder_model(folder: Path) -> Path | None:
    """The model a run's folder (results/runs/<model>/<task>-seed<seed>: a metrics.json, no config.json) saved,
    in its model/ subfolder; None for any other folder. A run that saved none is one line saying how to get it."""
    if (folder / "config.json").is_file() or not (folder / "metrics.json").is_file():
        return None
    if not (folder / "model" / "config.json").is_file():
        raise GlueRunnerError(f"{folder} is a run's folder, and that run saved no model (it ran without --save-model); "
                              "run its command again with --save-model --overwrite to keep the fine-tuned model in "
                              f"{folder / 'model'}")
    return folder / "model"


# A model folder's JSON files, with the keys each must hold to be what its name says (tokenizer.json: what
# the tokenizers library writes and transformers reads first)
MODEL_JSON = {"config.json": (), "tokenizer_config.json": (), "special_tokens_map.json": (),
              "tokenizer.json": ("model", "added_tokens")}


def damaged_file(folder: Path) -> str | None:
    """What is wrong with one of a model folder's JSON files (asked once loading it failed), or None."""
    for name, keys in MODEL_JSON.items():
        path = folder / name
        if not path.is_file():
            continue
        try:
            content = json.loads(path.read_bytes())
        except (ValueError, RecursionError) as e:  # not JSON, not UTF-8 text, nested beyond reading
            why = f"{e.msg}, line {e.lineno}" if isinstance(e, json.JSONDecodeError) else \
                "not UTF-8 text" if isinstance(e, UnicodeDecodeError) else "nested too deeply"
            return f"{path} is not valid JSON ({why}): it is damaged or cut short"
        if not isinstance(content, dict):
            return f"{path} holds a JSON {type(content).__name__}, not the object a {name} holds"
        missing = [key for key in keys if key not in content]
        if missing:
            return (f"{path} has no {', '.join(repr(k) for k in missing)}: it is not a {name} (another file saved "
                    "as it?)")
    return None


def cut_short_bin(model: str) -> bool:
    """Whether the model is a local folder whose pytorch_model.bin is a zip (as torch.save writes it) cut short:
    torch's error says only 'Invalid argument' or 'failed finding central directory'."""
    path = Path(model).expanduser() / "pytorch_model.bin"
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"PK" and not zipfile.is_zipfile(path)
    except OSError:
        return False


def hub_options(cfg: RunConfig) -> dict:
    return {"trust_remote_code": cfg.trust_remote_code, "cache_dir": cfg.cache_dir}


def reason(error: Exception, cfg: RunConfig) -> str:
    """The library's first line, and the next step when there is one (its full stop gives way to it)."""
    first, hint = str(error).splitlines()[0], load_hint(error, cfg)
    return first.rstrip(".") + hint if hint else first


def load_hint(error: Exception, cfg: RunConfig) -> str:
    """The next step after a failed load: trusting remote code, mending or fetching again a folder whose
    config.json or weights are wrong or missing, upgrading transformers, or working without internet."""
    text = str(error)
    if "custom code" in text and not cfg.trust_remote_code:
        return "; pass --trust-remote-code only if you trust that code"
    if "Should have a `model_type` key" in text:
        return ("; add the model's family to config.json as save_pretrained writes it (e.g. \"model_type\": \"bert\"), "
                "or download or copy the model again")
    if "does not recognize this architecture" in text:
        import transformers

        return (f"; check \"model_type\" in its config.json, or, for a family newer than this transformers "
                f"({transformers.__version__}), upgrade it: pip install -U transformers")
    if "no file named" in text and _looks_like_path(cfg.model):  # a local folder without its weights
        return "; download or copy the model again (save_pretrained writes model.safetensors beside config.json)"
    if "connect" in text or "offline" in text.lower():
        hint = "; without internet, pass --model with a local model folder (one that save_pretrained made)"
        local_data = cfg.data_dir or cfg.smoke or own_files(cfg) or is_task_file(cfg.task)
        if not local_data:
            hint += ", and " + OFFLINE_DATA.removeprefix("without internet, ")
        return f"{hint}; {TRY_OFFLINE}"
    return ""


def check_inputs(loaded: LoadedModel, task: TaskSpec, tokenized: dict) -> dict:
    """The tokenized splits with only the inputs the model takes: no token types for a model whose forward
    takes none (DistilBERT's), and a token type the model has no embedding for (a tokenizer that makes
    two types for a model pretrained with one) refused before training, not as an IndexError inside it."""
    import inspect

    types = getattr(loaded.model.config, "type_vocab_size", None)
    # type_vocab_size 0: no token-type embedding at all, and the types its tokenizer still makes are ignored
    # (DeBERTa-v3's), so they are no reason to refuse it
    if "token_type_ids" not in inspect.signature(loaded.model.forward).parameters or types == 0:
        return {name: d.remove_columns([c for c in d.column_names if c == "token_type_ids"])
                for name, d in tokenized.items()}
    # the types depend only on how many texts an example has: one example tells them all
    highest = max(loaded.tokenizer(*["a"] * len(task.text_fields)).get("token_type_ids") or [0])
    if types is not None and highest >= types:
        raise GlueRunnerError(f"the tokenizer makes token type {highest} but '{loaded.model.name_or_path}' has "
                              f"{types} (its type_vocab_size); give the model its own tokenizer (one pretrained "
                              "with a single type leaves token_type_ids out of its model_input_names)")
    return tokenized


def check_length(task: TaskSpec, cfg: RunConfig, tokenizer, limit: int | None) -> None:
    """--max-seq-length holds the special tokens and a token of each text, and fits the model's positions."""
    pair = len(task.text_fields) == 2
    needed = tokenizer.num_special_tokens_to_add(pair=pair) + len(task.text_fields)
    if cfg.max_seq_length < needed:
        raise GlueRunnerError(
            f"--max-seq-length {cfg.max_seq_length} cannot hold a {task.name} example: the special tokens take "
            f"{needed - len(task.text_fields)}, and each text needs one more; pass at least {needed} (128 is usual)")
    if limit and cfg.max_seq_length > limit:
        raise GlueRunnerError(f"--max-seq-length {cfg.max_seq_length} is longer than '{cfg.model}' can read "
                              f"({limit} positions); pass --max-seq-length {limit} or less")


def save_model(loaded: LoadedModel, folder: Path, card: str, reading: dict) -> None:
    """The model and tokenizer, with the task's label names (a reused head's old names would mislead), how the
    run read an example (`reading`, data.reading's: config.json's glue_runner, which glue-run predict follows)
    and its model card (README.md), written beside the folder and renamed into place. The saved tokenizer
    reads at most the run's --max-seq-length tokens (model_max_length), from the end for --truncation tail,
    so transformers.pipeline(..., truncation=True) cuts a long text as the run did."""
    labels = loaded.labels
    if not labels.regression:
        loaded.model.config.id2label = {m: name for m, name in zip(labels.to_model, labels.names)}
        loaded.model.config.label2id = {name: m for m, name in loaded.model.config.id2label.items()}
    if labels.multi_label:  # the threshold its scores were made with (perhaps chosen on the dev set)
        loaded.model.config.multi_label_threshold = labels.threshold
    loaded.model.config.glue_runner = reading
    tokenizer = copy.copy(loaded.tokenizer)  # the run's own reads on unchanged (an AX run may still use it)
    tokenizer.model_max_length = reading["max_seq_length"]
    tokenizer.truncation_side = "left" if reading["truncation"] == "tail" else "right"
    # save_pretrained writes the init arguments' keys, each with the tokenizer's current value
    tokenizer.init_kwargs = {**tokenizer.init_kwargs, "truncation_side": tokenizer.truncation_side}
    write_model(folder, loaded.model, tokenizer, {"README.md": card, **(loaded.head.files() if loaded.head else {})})
