"""One run: a task, a model and a seed, from data to results/; and a sweep of runs.

    task -> data -> model -> train (scoring the dev set each epoch) -> metrics -> results
"""

from __future__ import annotations

import datetime
import json
import math
import pickle
import platform
import signal
import sys
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from . import data, layers, model_card, probe, results, trackers
from .data import TaskSpec, get_task, task_for
from .errors import GlueRunnerError, Interrupted
from .metrics import KINDS as KNOWN_METRICS
from .metrics import choose_threshold, compute_metrics, confusion, confusion_figure, per_label_scores
from .train import Report, Runtime, StopRequest, TrainStats, predict, seed_everything, setup_runtime, train

if TYPE_CHECKING:  # cli.py makes the config; nothing here needs cli at import time
    from .cli import RunConfig
    from .sweeps import Grid


# ---- the model -------------------------------------------------------------

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
        """Multi-label: each label's probability, in the task's order."""
        return 1 / (1 + np.exp(-self.task_logits(logits).astype(np.float64)))

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


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).expanduser().exists()


def _is_classifier(config) -> bool:
    return any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))


def _generic_labels(config) -> bool:
    return all(name == f"LABEL_{i}" for i, name in config.id2label.items())


def load_model(task: TaskSpec, cfg: RunConfig, say=lambda *a, **k: None) -> LoadedModel:
    """The tokenizer and a classification model that fits the task. Everything that can be
    checked on the configuration and the tokenizer is checked before the weights load."""
    config, tokenizer = load_tokenizer(task, cfg)
    layers.check_before_loading(cfg, config)

    to_model = tuple(range(task.num_labels))
    kwargs = {"num_labels": task.num_labels}
    if _is_classifier(config) and not cfg.ignore_mismatched_sizes:
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
    kwargs["problem_type"] = data.PROBLEM_TYPES[task.problem_type]
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            cfg.model, dtype=torch.float32,  # float32 master weights, whatever the checkpoint stores
            ignore_mismatched_sizes=cfg.ignore_mismatched_sizes, **kwargs, **hub_options(cfg))
    except (OSError, ValueError, RuntimeError) as e:
        raise GlueRunnerError(f"could not load model '{cfg.model}' for {task.name}: {str(e).splitlines()[0]}"
                              f"{load_hint(e, cfg)}") from None
    except pickle.UnpicklingError:
        # transformers reads .bin weights with torch.load(weights_only=True): this file holds more than tensors
        raise GlueRunnerError(
            f"'{cfg.model}' has pickled weights (pytorch_model.bin) holding objects other than tensors, which "
            "could run code, so they were not loaded; use a model with model.safetensors") from None
    saved = getattr(model.config, "multi_label_threshold", None)
    if task.multi_label and saved not in (None, cfg.threshold) and not cfg.tune_threshold:
        say(f"[cyan]{cfg.model} was saved with the multi-label threshold {saved}; this run uses {cfg.threshold} "
            f"(pass --threshold {saved} to score it as it was)[/]", soft_wrap=True)
    return LoadedModel(model, tokenizer, Labels(task, to_model, cfg.threshold))


def load_tokenizer(task: TaskSpec, cfg: RunConfig) -> tuple:
    """The model's configuration and fast tokenizer, checked against the task before any weights load."""
    if _looks_like_path(cfg.model) and not Path(cfg.model).expanduser().is_dir():
        what = f"{cfg.model} is a file, not a model folder" if Path(cfg.model).expanduser().exists() else \
            f"model folder {cfg.model} does not exist"
        raise GlueRunnerError(f"{what}; pass a folder made by save_pretrained or a Hub name")
    try:
        config = AutoConfig.from_pretrained(cfg.model, **hub_options(cfg))
        tokenizer = AutoTokenizer.from_pretrained(cfg.model, **hub_options(cfg))
    except (OSError, ValueError) as e:
        raise GlueRunnerError(f"could not load model '{cfg.model}': {str(e).splitlines()[0]}{load_hint(e, cfg)}") from None
    if not tokenizer.is_fast:
        raise GlueRunnerError(f"'{cfg.model}' has no fast tokenizer (tokenizer.json); glue-runner needs one for batched tokenization")
    check_length(task, cfg, tokenizer, getattr(config, "max_position_embeddings", None))
    return config, tokenizer


def hub_options(cfg: RunConfig) -> dict:
    return {"trust_remote_code": cfg.trust_remote_code, "cache_dir": cfg.cache_dir}


def load_hint(error: Exception, cfg: RunConfig) -> str:
    """The next step after a failed load: trusting remote code, or working without internet."""
    text = str(error)
    if "custom code" in text and not cfg.trust_remote_code:
        return "; pass --trust-remote-code only if you trust that code"
    if "connect" in text or "offline" in text.lower():
        hint = "; without internet, pass --model with a local model folder (one that save_pretrained made)"
        local_data = cfg.data_dir or data.own_files(cfg) or data.is_task_file(cfg.task)
        return hint if local_data else hint + ", and " + data.OFFLINE_DATA.removeprefix("without internet, ")
    return ""


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


def save_model(loaded: LoadedModel, folder: Path, card: str) -> None:
    """The model and tokenizer, with the task's label names (a reused head's old names would mislead)
    and its model card (README.md), written beside the folder and renamed into place."""
    labels = loaded.labels
    if not labels.regression:
        loaded.model.config.id2label = {m: name for m, name in zip(labels.to_model, labels.names)}
        loaded.model.config.label2id = {name: m for m, name in loaded.model.config.id2label.items()}
    if labels.multi_label:  # the threshold its scores were made with (perhaps chosen on the dev set)
        loaded.model.config.multi_label_threshold = labels.threshold
    results.write_model(folder, loaded.model, loaded.tokenizer, {"README.md": card})


# ---- a sweep ---------------------------------------------------------------

@dataclass
class Outcome:
    record: dict
    output_dir: Path


def run_all(configs: list[RunConfig], console: Console, grid: Grid | None = None) -> list[Outcome]:
    """Run each config in turn. Each model is freed when its run ends, but for an MNLI
    model that a later AX run of the same seed and settings predicts with, kept until then.
    grid: the sweeps.Grid the configs span, if any."""
    check_metrics([task_for(cfg) for cfg in configs])
    outcomes, kept = [], {}
    for i, cfg in enumerate(configs):
        task = task_for(cfg)
        outcome, loaded = run(cfg, console, model=kept.pop(model_key(cfg, task.predict_with), None))
        key = model_key(cfg, task.name)
        if loaded and any(task_for(c).predict_with == task.name and model_key(c, task.name) == key
                          for c in configs[i + 1:]):
            kept[key] = loaded
        del loaded
        outcomes.append(outcome)
    if len(configs) > 1 or grid:
        after_several_runs(configs, outcomes, console, grid)  # the leaderboard names the unreadable run files
    else:
        warn_unreadable(configs[0].results_dir, console)
    return outcomes


def model_key(cfg: RunConfig, task: str | None) -> str:
    """Which run's model `cfg` means when its task is `task`: the run of that task with cfg's seed and
    every other setting (a grid point's too)."""
    return json.dumps(replace(cfg, task=task, output_dir=None).to_json(), sort_keys=True)


def check_metrics(tasks: list[TaskSpec]) -> None:
    for task in tasks:
        unknown = [m for m in task.metrics if m not in KNOWN_METRICS]
        if unknown:
            raise GlueRunnerError(f"task definition {task.source}: unknown metric(s) {', '.join(unknown)}; "
                                  f"choose from {', '.join(KNOWN_METRICS)}")


def after_several_runs(configs: list[RunConfig], outcomes: list[Outcome], console: Console,
                       grid: Grid | None = None) -> None:
    """The leaderboard of the results folder; with a grid, its report (each task's selected point);
    with --do-predict on several tasks, the submission (of the selected points, with a grid)."""
    from . import leaderboard, submission, sweeps

    first = configs[0]
    runs, name = list(zip(configs, outcomes)), outcomes[0].record["model_name"]
    if grid:
        report = sweeps.record(grid, configs, outcomes)  # written first: the grid's record outlasts any later failure
        runs, name = report.chosen_runs(), report.name
    # your own data or tasks have no GLUE submission or column
    glue = [(c, o) for c, o in runs if "own data" not in results.run_notes(o.record)]
    if first.do_predict and len({c.task for c, _ in glue}) > 1:
        # One submission per invocation, from the first seed's runs: a fixed rule, not the best dev seed.
        firsts = [(c, o) for c, o in glue if c.seed == first.seed]
        submission.from_runs({c.task: o.output_dir for c, o in firsts}, first, f"{name}-seed{first.seed}",
                             console.print)
    if glue:
        leaderboard.show(console, first.results_dir)
    else:
        warn_unreadable(first.results_dir, console)
    if grid:
        sweeps.show(report, console)


def warn_unreadable(results_dir: Path, console: Console) -> None:
    for problem in results.load_runs(results_dir)[1]:
        console.print(f"[yellow]warning: {problem.warning()}[/]", highlight=False, soft_wrap=True)


# ---- one run ---------------------------------------------------------------

def run(cfg: RunConfig, console: Console, model: LoadedModel | None = None) -> tuple[Outcome, LoadedModel | None]:
    """One run, unless a run of the same identity is already done (said, and skipped, unless
    --overwrite). `model` is a model already in memory (AX: the MNLI model of the same sweep).
    The run's folder is held for the whole run: another glue-run given it stops at once. A run
    already done is found so without holding its folder (its metrics.json is renamed into place
    whole), so glue-runs that skip it at the same moment do not take each other for a run in progress."""
    task, overrides = task_for(cfg), cfg.overrides()
    cfg = cfg.resolved(task.recipe)
    if not task.train_split:
        cfg = replace(cfg, do_predict=True)  # a test-only task (AX) exists to be predicted
    rt = setup_runtime(cfg)
    # soft_wrap: a line longer than the terminal is left for it to fold, so paths stay whole for copying
    say = partial(console.print, soft_wrap=True) if rt.is_main else (lambda *a, **k: None)
    folder = results.run_folder(cfg, task.name)
    plan = results.plan(cfg, task.name)
    if not plan.done or cfg.overwrite:
        with results.run_lock(folder) if rt.is_main else nullcontext():
            plan = results.plan(cfg, task.name)  # again, holding the folder: another glue-run may have just finished it
            if not plan.done or cfg.overwrite:
                return execute(cfg, task, folder, rt, console, say, model, overrides)
    say(f"{task.name} seed {cfg.seed}: already done in {folder} "
        f"({', '.join(f'{k} {v:.4f}' for k, v in plan.done['metrics'].items() if v is not None)}); "
        "--overwrite redoes it", highlight=False, soft_wrap=True)
    return Outcome(plan.done, folder), None


def execute(cfg: RunConfig, task: TaskSpec, output_dir: Path, rt: Runtime, console: Console, say,
            model: LoadedModel | None, overrides: dict) -> tuple[Outcome, LoadedModel]:
    """data -> model -> train (scoring the dev set each epoch) -> metrics -> results/."""
    resume_from = start_or_resume(cfg, task, output_dir, rt, say)
    tracker = trackers.start(cfg, output_dir, rt, resume_from)  # before loading: a missing package fails now
    adaptation = None
    if cfg.adapt_lm and task.train_split:  # AX is predicted with its MNLI run's model, adapted there
        from .adapt import adapt_first  # adapt.py builds on this module

        adaptation = adapt_first(cfg, task, output_dir, rt, console, say)
    seed_everything(cfg.seed)
    stage = console.status if rt.is_main else (lambda *a, **k: nullcontext())
    # Ctrl-C while loading is heard and honoured once loading is done: a KeyboardInterrupt raised inside
    # the libraries can be swallowed by their own bare `except:` (datasets' fingerprinting has some)
    with StopRequest(warning(say), "once loading is done; nothing is written") as stop:
        with stage(f"loading {cfg.model}"):
            loaded = model or source_model(task, cfg, say) or \
                load_model(task, replace(cfg, model=adaptation["folder"]) if adaptation else cfg, say)
        with stage(f"reading {task.name} data"):
            splits = data.load_splits(task, cfg, log=say, with_test=cfg.do_predict)
        if cfg.do_predict:
            data.check_test_data(task, cfg)
        with stage(f"tokenizing {task.name}"):
            tokenized = data.tokenize(splits, task, loaded.tokenizer, cfg.max_seq_length, cfg.cache_dir)
    if stop.signum:
        raise Interrupted(stop.signum, f"stopped by {signal.Signals(stop.signum).name} while loading; nothing was "
                                       "written, and the same command starts the run again")
    pad_id = loaded.tokenizer.pad_token_id or 0
    say(headline(cfg, task, rt, tokenized, loaded.model))

    stats = None
    with ProgressBar(console, rt) as bar, tracker:
        scorer = DevScorer(loaded, task, splits, tokenized, cfg, rt, pad_id, say, bar)
        if cfg.probe:
            loaded.labels = replace(loaded.labels, to_model=tuple(range(task.num_labels)))  # the head's own order
            scorer.outputs, stats = probe.run(loaded.model, task, splits, tokenized, cfg, rt, pad_id,
                                              data.cache_folder(cfg.cache_dir), bar)
        elif task.train_split:
            stats = train(loaded.model, loaded.labels.for_training(tokenized["train"]), cfg, rt, pad_id=pad_id,
                          on_epoch_end=lambda epoch: tracker.log_epoch(scorer.after_epoch(epoch)),
                          report=each(bar.update, tracker.log_step), output_dir=output_dir,
                          resume_from=resume_from, log=warning(say))
        evaluation = scorer.latest or scorer.evaluate()  # nothing trained (AX, zero epochs): score now
        test_predictions = {split: scorer.predict(split) for split in task.test_splits} if cfg.do_predict else {}
    files = prediction_files(loaded.labels, splits, evaluation.predictions, test_predictions)
    files |= confusion_files(loaded.labels, evaluation.details.get("confusion", {}))
    record = make_record(cfg, task, rt, splits, tokenized, evaluation, stats) | {"overrides": overrides}
    if adaptation:
        record["adaptation"] = {k: v for k, v in adaptation.items() if k != "identity"}  # the run's own is there
    if rt.is_main:
        write_results(cfg, task, output_dir, loaded, record, files)
        say(metrics_table(task, results.model_name(cfg), evaluation.metrics, evaluation.details.get("threshold")))
        for split, scores in evaluation.details.get("per_label", {}).items():
            say(per_label_table(f"{task.name} {split}, per label", scores))
        say(f"wrote {output_dir}", highlight=False, soft_wrap=True)  # whole, never wrapped mid-word
    return Outcome(record, output_dir), loaded


def headline(cfg: RunConfig, task: TaskSpec, rt: Runtime, tokenized: dict, model: torch.nn.Module) -> str:
    """The run's first line: what trains on what, where."""
    if cfg.probe:
        trains = " · probe: a linear head on the frozen encoder's features"
    elif task.train_split:
        trains = (f" · trains {layers.trained_parameters(model, cfg):,} of "
                  f"{sum(p.numel() for p in model.parameters()):,} parameters")
    else:
        trains = ""
    return (f"[bold]{task.name}[/] · {results.model_name(cfg)} · seed {cfg.seed} · {rt.device}"
            f"{' x' + str(rt.world_size) if rt.distributed else ''}"
            f"{' · ' + str(rt.amp_dtype).removeprefix('torch.') if rt.amp_dtype else ''} · "
            + ", ".join(f"{n} {len(d)}" for n, d in tokenized.items()) + trains)


def write_results(cfg: RunConfig, task: TaskSpec, output_dir: Path, loaded: LoadedModel, record: dict,
                  files: dict) -> None:
    """The saved model (--save-model), the run's files and the tables; then the checkpoints go."""
    if cfg.save_model:
        save_model(loaded, output_dir / "model", model_card.text(record, task))
    results.write_run(output_dir, record, files)
    results.update_tables(Path(cfg.results_dir))
    # metrics.json now holds the result (and --save-model the weights): the checkpoints,
    # up to three copies of the model each, are only for an unfinished run
    results.remove_checkpoints(output_dir)


def source_model(task: TaskSpec, cfg: RunConfig, say) -> LoadedModel | None:
    """AX's model when none is in memory: the one its MNLI run of the same settings saved (--save-model)."""
    if not task.predict_with:
        return None
    source = replace(cfg, task=task.predict_with, output_dir=None).resolved(get_task(task.predict_with).recipe)
    folder = results.run_folder(source, task.predict_with) / "model"
    if not folder.is_dir():
        return None
    say(f"[cyan]{task.name}: predicting with the {task.predict_with} model saved in {folder}[/]", soft_wrap=True)
    return load_model(task, replace(cfg, model=str(folder)), say)


@dataclass
class Evaluation:
    """One scoring of the dev split(s)."""
    metrics: dict  # flat name -> value: metrics.json's "metrics", the tables' columns
    predictions: dict  # split -> (predictions, references)
    details: dict = field(default_factory=dict)  # your own tasks: per-label scores, confusion matrices, threshold


@dataclass
class DevScorer:
    """Scores the dev split(s) with the task's metrics; keeps the latest scores for the record."""
    loaded: LoadedModel
    task: TaskSpec
    splits: dict
    tokenized: dict
    cfg: RunConfig
    rt: Runtime
    pad_id: int
    say: object
    bar: ProgressBar
    latest: Evaluation | None = None
    outputs: Callable[[str], np.ndarray] | None = None  # a probe's head; else the model's own logits

    def logits(self, split: str) -> np.ndarray:
        if self.outputs:
            return self.outputs(split)
        return predict(self.loaded.model, self.tokenized[split], self.cfg, self.rt, pad_id=self.pad_id,
                       on_batch=self.bar.scoring(split))

    def predict(self, split: str) -> np.ndarray:
        return self.loaded.labels.predictions(self.logits(split))

    def evaluate(self) -> Evaluation:
        evaluation, labels = Evaluation({}, {}), self.loaded.labels
        for split in self.task.eval_splits:
            if split not in self.tokenized:
                continue
            logits = self.logits(split)
            references = np.asarray(self.splits[split].dataset["label"])
            if labels.multi_label:
                references = references.astype(np.int64)
                if "threshold" not in evaluation.details:  # chosen on the first dev split, used for every split
                    labels = self.threshold(logits, references, split, evaluation.details)
            values = labels.predictions(logits)
            suffix = self.task.splits[split].metric_suffix
            scores = compute_metrics(self.task.metrics, values, references)
            evaluation.metrics.update({k + suffix: finite_or_none(v, k + suffix, self.say) for k, v in scores.items()})
            evaluation.predictions[split] = (values, references)
            if self.task.own and not labels.regression:
                evaluation.details.setdefault("per_label", {})[split] = per_label_scores(values, references,
                                                                                          list(labels.names))
                if not labels.multi_label:
                    evaluation.details.setdefault("confusion", {})[split] = confusion(values, references,
                                                                                       len(labels.names))
        self.loaded.labels = labels  # a threshold chosen on the dev set also decides the test predictions
        return evaluation

    def threshold(self, logits: np.ndarray, references: np.ndarray, split: str, details: dict) -> Labels:
        """Multi-label: the labels with --threshold, or with --tune-threshold the one with the best
        micro-F1 on this dev split (recorded, as it makes the dev scores optimistic)."""
        labels = self.loaded.labels
        if self.cfg.tune_threshold:
            labels = replace(labels, threshold=choose_threshold(labels.probabilities(logits), references))
        details["threshold"] = {"value": labels.threshold, "chosen_on": split if self.cfg.tune_threshold else None}
        return labels

    def after_epoch(self, epoch: int) -> dict:
        self.latest = self.evaluate()
        metrics = self.latest.metrics
        self.say(f"epoch {epoch + 1}: " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if v is not None))
        return {"epoch": epoch + 1, **metrics}  # kept in checkpoints, so a resumed run has every epoch


class ProgressBar:
    """The run's progress as rich bars: one per epoch (every step: loss, learning rate, samples/s)
    and one per pass of scoring, removed when it is done."""

    def __init__(self, console: Console, rt: Runtime):
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=console,
                                 disable=not rt.is_main)
        self.epoch, self.task_id = None, None

    def __enter__(self) -> ProgressBar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def update(self, report: Report) -> None:
        if report.epoch != self.epoch:
            self.epoch = report.epoch
            self.task_id = self.progress.add_task(f"epoch {report.epoch + 1}/{report.epochs}",
                                                  total=report.steps_in_epoch, info="")
        info = {}
        if report.loss is not None:
            info["info"] = (f"loss {report.loss:.4f}  lr {report.learning_rate:.2e}  "
                            f"{report.samples_per_second:.0f} samples/s")
        self.progress.update(self.task_id, completed=report.step_in_epoch, **info)

    def scoring(self, split: str):
        """on_batch for predict(): a bar for this pass over `split`."""
        task_id = self.progress.add_task(f"scoring {split}", total=None, info="")

        def on_batch(done: int, total: int) -> None:
            self.progress.update(task_id, completed=done, total=total)
            if done == total:
                self.progress.remove_task(task_id)
        return on_batch


def warning(say):
    """say() for the loop's plain-text warnings: in yellow, their own brackets shown as text."""
    return lambda text: say(f"[yellow]{escape(text)}[/]")


def each(*callbacks):
    """One callback that calls several in turn: the loop reports to one."""
    def call(*args) -> None:
        for callback in callbacks:
            callback(*args)
    return call


# ---- what a run writes -----------------------------------------------------

def start_or_resume(cfg: RunConfig, task: TaskSpec, output_dir: Path, rt: Runtime, say) -> Path | None:
    """The checkpoint to continue from: the newest in output_dir made with the same settings."""
    if not task.train_split:
        return None
    if cfg.overwrite:
        cfg = replace(cfg, resume=False)  # redoing a run on purpose starts it over
    found = results.choose_checkpoint(output_dir, cfg)
    if found:
        say(f"[cyan]resuming from {found} (step {results.step_of(found)}); --no-resume starts over[/]", soft_wrap=True)
    elif cfg.resume is False and results.list_checkpoints(output_dir) and rt.is_main:
        say(f"[cyan]deleting the checkpoints in {output_dir} to start over[/]", soft_wrap=True)
        results.remove_checkpoints(output_dir)
    return found


def prediction_files(labels: Labels, splits: dict, dev: dict, test: dict) -> dict[str, str]:
    """File name -> TSV text: dev predictions beside their labels, test predictions alone."""
    files = {}
    for split, (values, references) in dev.items():
        files[f"predictions_{split}.tsv"] = results.delimited_text(
            ["index", "prediction", "label"],
            [[int(i), labels.text(v), labels.text(r)] for i, v, r in zip(splits[split].dataset["idx"], values, references)])
    for split, values in test.items():
        files[f"predictions_{split}.tsv"] = results.delimited_text(
            ["index", "prediction"], [[int(i), labels.text(v)] for i, v in zip(splits[split].dataset["idx"], values)])
    return files


def confusion_files(labels: Labels, matrices: dict) -> dict[str, str | bytes]:
    """Each dev split's confusion matrix as a table (rows: true labels, columns: predicted) and a picture."""
    files = {}
    for split, matrix in matrices.items():
        files[f"confusion_{split}.csv"] = results.delimited_text(
            ["true \\ predicted", *labels.names], [[name, *row] for name, row in zip(labels.names, matrix)], ",")
        files[f"confusion_{split}.png"] = results.png(confusion_figure(matrix, list(labels.names),
                                                                        f"confusion matrix, {split}"))
    return files


def make_record(cfg: RunConfig, task: TaskSpec, rt: Runtime, splits: dict, tokenized: dict, evaluation: Evaluation,
                stats: TrainStats | None) -> dict:
    """What metrics.json holds: the scores and everything needed to reproduce and compare them."""
    metrics = evaluation.metrics
    return {
        "task": task.name,
        "model": cfg.model,
        "model_name": results.model_name(cfg),
        "seed": cfg.seed,
        "identity": cfg.identity(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "metrics": metrics,
        "epochs": stats.history if stats else [],
        "train": ({"steps": stats.steps, "samples": stats.samples, "seconds": round(stats.seconds, 3),
                   "samples_per_second": round(stats.samples_per_second, 2), "final_loss": stats.final_loss,
                   "trained_parameters": stats.trained_parameters}
                  if stats else {}),
        "data": {"source": {n: s.source for n, s in splits.items()},
                 "examples": {n: len(d) for n, d in tokenized.items()},
                 "available": {n: s.available for n, s in splits.items()},  # before --max-*-samples
                 "skipped_rows": {n: s.skipped for n, s in splits.items() if s.skipped}},
        "device": device_description(rt),
        "config": cfg.to_json(),
        "versions": library_versions(),
        **({"details": evaluation.details} if evaluation.details else {}),
    }


def finite_or_none(value: float, name: str, say) -> float | None:
    if value is None or math.isfinite(value):
        return value
    say(f"[yellow]{name} is undefined on this data (e.g. constant predictions); recorded as missing[/]")
    return None


def metrics_table(task: TaskSpec, name: str, metrics: dict, threshold: dict | None = None):
    from rich.table import Table

    caption = None
    if threshold:
        caption = f"multi-label threshold {threshold['value']:g}" + (
            f", chosen on {threshold['chosen_on']} (so these scores are optimistic)" if threshold["chosen_on"] else "")
    table = Table(title=f"{task.name} · {name}", caption=caption)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, "–" if value is None else f"{value:.4f}")
    return table


def per_label_table(title: str, scores: dict):
    from rich.table import Table

    table = Table(title=title)
    for name in ("label", "precision", "recall", "F1", "support"):
        table.add_column(name, justify="left" if name == "label" else "right")
    for label, s in scores.items():
        table.add_row(label, f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['f1']:.3f}", str(int(s["support"])))
    return table


def device_description(rt: Runtime) -> str:
    if rt.device.type == "cuda":
        return f"{torch.cuda.get_device_name(rt.device)} x{max(rt.world_size, torch.cuda.device_count())}"
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads) x{rt.world_size}"


def library_versions() -> dict:
    versions = {"python": sys.version.split()[0]}
    for package in ("glue-runner", "torch", "transformers", "datasets", "evaluate", "scikit-learn", "scipy"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            pass
    return versions
