"""One run: a task, a model and a seed, from data to results/.

    task -> data -> model -> fit (scoring the dev set each epoch) -> metrics -> results/

The run calls what lies beyond its core through the few named hooks of Extras (how it fits,
what tracks it, what runs before it, what goes beside the saved model, what is rebuilt after
its files are written); session.py fills them in from the run's settings.
"""

from __future__ import annotations

import datetime
import math
import platform
import signal
import sys
from contextlib import nullcontext
from dataclasses import dataclass, replace
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

import numpy as np
from rich.console import Console

from . import data, defaults, results
from .config import RunConfig
from .display import ProgressBar, baseline_warning, each, metrics_table, per_label_table, smoke_line, warning
from .errors import GlueRunnerError, Interrupted
from .model import MEAN_HEAD, LoadedModel, check_inputs, load_model, save_model
from .scoring import Baseline, Evaluation, baseline, confusion_files, prediction_files, score, smoke_verdict
from .tasks import TaskSpec, get_task
from .train import (AllLayers, Runtime, StepReport, StopRequest, TrainStats, predict, seed_everything, setup_runtime,
                    train)

if TYPE_CHECKING:  # torch is imported where it is used: the checks before a run answer in a second
    import torch


# ---- the hooks -------------------------------------------------------------

class Tracker:
    """What every tracker takes, in a `with` block around the whole run: each optimizer step's
    StepReport and each epoch's record of the fine-tuning (log_step, log_epoch) and, through
    adaptation(), of --adapt-lm's loop; then the run's record (final). This one drops them:
    --report-to none, and every rank but 0; trackers.py's write them."""

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def log_step(self, report: StepReport) -> None:
        pass

    def log_epoch(self, record: dict) -> dict:
        """Returns the record, so it can sit between on_epoch_end and the scorer."""
        return record

    def adaptation(self, resume_from: Path | None):
        """What takes --adapt-lm's loop's log_step and log_epoch, counted from its own checkpoint's step."""
        return Tracker()

    def final(self, record: dict, files: list[str]) -> None:
        """The run's record (metrics.json's) and the names of the files written beside it, once all are written."""


def no_tracker(cfg: RunConfig, output_dir: Path, rt: Runtime, resume_from: Path | None) -> Tracker:
    return Tracker()


class Fit(Protocol):
    """How a run fits the model to the task: FineTune below, or probe.py's Probe."""

    def check(self, config) -> None:
        """Said on the model's configuration, before its weights load."""

    def describe(self, model: torch.nn.Module, task: TaskSpec, cfg: RunConfig) -> str:
        """What trains, for the run's first line."""

    def fit(self, loaded: LoadedModel, scorer: DevScorer, tracker: Tracker, bar: ProgressBar, output_dir: Path,
            resume_from: Path | None) -> TrainStats | None:
        """Fits, scoring the dev set after each epoch; returns what the record says of the training."""


class FineTune:
    """How a run fits by default: the loop (train.py) trains the model, on the schedule's parameters."""

    def __init__(self, schedule: AllLayers):
        self.schedule = schedule

    def check(self, config) -> None:
        self.schedule.check(config)

    def describe(self, model: torch.nn.Module, task: TaskSpec, cfg: RunConfig) -> str:
        if not task.train_split:
            return ""
        return (f" · trains {self.schedule.trained_parameters(model, cfg.num_train_epochs):,} of "
                f"{sum(p.numel() for p in model.parameters()):,} parameters")

    def fit(self, loaded: LoadedModel, scorer: DevScorer, tracker: Tracker, bar: ProgressBar, output_dir: Path,
            resume_from: Path | None) -> TrainStats | None:
        """None for a task without training data (AX)."""
        task, cfg = scorer.task, scorer.cfg
        if not task.train_split:
            return None
        if loaded.head and (cfg.num_train_epochs or cfg.max_steps):
            raise GlueRunnerError(
                f"{cfg.model} was trained with --few-shot: its outputs come from {MEAN_HEAD}, a head on the mean "
                "of its token vectors that fine-tuning does not train (it trains the classifier it was loaded "
                "with). Pass --few-shot to train it further as it was, --num-train-epochs 0 to score it as it is, "
                "or glue-run predict to predict with it")

        def on_epoch_end(epoch: int, last: bool) -> dict | None:
            record = scorer.after_epoch(epoch, last)
            return tracker.log_epoch(record) if record else None

        return train(loaded.model, loaded.labels.for_training(scorer.tokenized["train"]), cfg, scorer.rt,
                     pad_id=scorer.pad_id, on_epoch_end=on_epoch_end,
                     report=each(bar.update, tracker.log_step), output_dir=output_dir, resume_from=resume_from,
                     log=warning(scorer.say), schedule=self.schedule, identity=scorer.identity)


@dataclass(frozen=True)
class Extras:
    """What a run calls beyond its core. fit: how it fits (a Fit). tracker(cfg, output_dir, rt,
    resume_from): the Tracker, made before anything loads. before(cfg, task, output_dir, rt, console,
    say): a stage run before loading the model (adapt.py's --adapt-lm), returning its record, whose
    "folder" is the model to fine-tune from. card(record, task): --save-model's README.md. written(results_dir):
    called once a run's files are written (tables.py's runs.md)."""
    fit: Fit
    tracker: Callable[..., Tracker]
    card: Callable[[dict, TaskSpec], str]
    written: Callable[[Path], object]
    before: Callable[..., dict] | None = None
    few_shot: Fit | None = None  # fewshot.py's, where --few-shot or the defaults choose it (Chosen.few_shot)


# ---- one run ---------------------------------------------------------------

@dataclass
class Outcome:
    record: dict
    output_dir: Path


def run(cfg: RunConfig, console: Console, extras: Extras,
        model: LoadedModel | None = None) -> tuple[Outcome, LoadedModel | None]:
    """One run, unless a run of the same identity is already done (said, and skipped, unless
    --overwrite). `model` is a model already in memory (AX: the MNLI model of the same sweep).
    The run's folder is held for the whole run: another glue-run given it stops at once. A run
    already done is found so without holding its folder (its metrics.json is renamed into place
    whole), so glue-runs that skip it at the same moment do not take each other for a run in progress."""
    task, given = data.task_for(cfg), cfg
    cfg = settled(cfg, task)
    rt = setup_runtime(cfg)
    # soft_wrap: a line longer than the terminal is left for it to fold, so paths stay whole for copying
    say = partial(console.print, soft_wrap=True) if rt.is_main else (lambda *a, **k: None)
    folder = results.run_folder(cfg, task.name)
    plan = results.plan(cfg, task.name)
    if not plan.done or cfg.overwrite:
        with results.run_lock(folder) if rt.is_main else nullcontext():
            plan = results.plan(cfg, task.name)  # again, holding the folder: another glue-run may have just finished it
            if not plan.done or cfg.overwrite:
                if plan.superseded:
                    earlier, changes = plan.superseded
                    say(f"[cyan]{task.name} seed {cfg.seed}: {earlier} holds this run made from other inputs "
                        f"({'; '.join(changes)}): a new run, in {folder}; the earlier one is kept[/]", soft_wrap=True)
                # loading and training each honour a stop in their own way; one heard between them, or after
                # training, is the next stage's, or lets the run finish writing its results
                with StopRequest(warning(say), "at the next step with a checkpoint saved, or once this run's "
                                               "results are written if its training is over") as stop:
                    outcome = execute(cfg, task, folder, rt, console, say, extras, model, given)
                # this rank's own request, not agreed: launchers signal every rank, and a collective here would
                # leave the others waiting for a rank 0 that failed to write the results
                if stop.signum:
                    raise Interrupted(stop.signum, f"stopped by {signal.Signals(stop.signum).name} once {task.name} "
                                                   f"seed {cfg.seed} was written to {outcome[0].output_dir}; the "
                                                   "same command goes on with any run not finished"
                                      if rt.is_main else "")
                return outcome
    say(f"{task.name} seed {cfg.seed}: already done in {folder} "
        f"({', '.join(f'{k} {v:.4f}' for k, v in plan.done['metrics'].items() if v is not None)}); "
        "--overwrite redoes it", highlight=False, soft_wrap=True)
    return Outcome(plan.done, folder), None


def settled(cfg: RunConfig, task: TaskSpec) -> RunConfig:
    """The settings a run of `task` runs with: the recipe's where no flag set them (with --smoke, the task's
    smoke budget of steps, unless a flag says how long to train); a test-only task (AX) exists to be predicted."""
    recipe = task.recipe
    if cfg.smoke and cfg.max_steps is None and cfg.num_train_epochs is None:
        recipe = {**recipe, "max_steps": task.smoke.steps}
    cfg = cfg.resolved(recipe)
    return cfg if task.train_split else replace(cfg, do_predict=True)


def finished(cfg: RunConfig) -> Outcome | None:
    """The run's outcome if a run of its identity is done (by this glue-run or another), else None."""
    task = data.task_for(cfg)
    plan = results.plan(settled(cfg, task), task.name)
    return Outcome(plan.done, plan.folder) if plan.done else None


def execute(cfg: RunConfig, task: TaskSpec, output_dir: Path, rt: Runtime, console: Console, say, extras: Extras,
            model: LoadedModel | None, given: RunConfig) -> tuple[Outcome, LoadedModel]:
    """data -> model -> fit (scoring the dev set each epoch) -> metrics -> results/, inside the run's tracker:
    made before loading (a missing package fails now), it holds one tracker run for the whole run, its
    adaptation, its fine-tuning and its results."""
    resume_from = start_or_resume(cfg, task, output_dir, rt, say)
    with extras.tracker(cfg, output_dir, rt, resume_from) as tracker:
        # AX is predicted with its MNLI run's model, adapted there
        adaptation = extras.before(cfg, task, output_dir, rt, console, say, tracker) \
            if extras.before and task.train_split else None
        loaded, splits, tokenized = load(cfg, task, console, say, rt, extras, model, adaptation, given)
        pad_id = loaded.tokenizer.pad_token_id or 0
        overrides = given.overrides()
        chosen = fitted(cfg, task, overrides, loaded, tokenized, rt)
        trained = replace(cfg, learning_rate=chosen.learning_rate, num_train_epochs=chosen.num_train_epochs) \
            if chosen else cfg
        fit = extras.few_shot if chosen and chosen.few_shot else extras.fit
        say(headline(cfg, task, rt, tokenized) + fit.describe(loaded.model, task, trained))
        for why in (*data.reading_notes(task, cfg), *(chosen.why if chosen else ())):
            say(f"[cyan]{why}[/]", highlight=False, soft_wrap=True)
        with ProgressBar(console, rt) as bar:
            # the loop trains with the chosen values; its checkpoints hold the run's identity, the settings as given
            scorer = DevScorer(loaded, task, splits, tokenized, trained, rt, pad_id, say, bar, results.identity(cfg))
            stats = fit.fit(loaded, scorer, tracker, bar, output_dir, resume_from)
            evaluation = scorer.latest or scorer.evaluate()  # nothing trained (AX, zero epochs): score now
            test_predictions = {split: scorer.predict(split) for split in task.test_splits} if cfg.do_predict else {}
        files = prediction_files(loaded.labels, splits, evaluation.predictions, test_predictions)
        files |= confusion_files(loaded.labels, evaluation.details.get("confusion", {}))
        trivial = baseline(task, loaded.labels, splits[task.train_split].dataset["label"] if task.train_split else None,
                           scorer.tokenized_splits())
        record = make_record(cfg, task, rt, splits, tokenized, evaluation, stats, trivial, scorer.every) | \
            {"overrides": overrides}
        if chosen:
            record["chosen"] = chosen.record()  # what trained, where the config has what was given
        if adaptation:
            record["adaptation"] = {k: v for k, v in adaptation.items() if k != "identity"}  # the run's own is there
        if cfg.smoke and trivial and stats:
            record["smoke"] = smoke_verdict(task, trivial, evaluation.metrics, stats.steps)
        if rt.is_main:
            write_results(cfg, task, output_dir, loaded, record, files, extras)
            tracker.final(record, list(files))
            say(metrics_table(task, results.model_name(cfg), evaluation.metrics, evaluation.details.get("threshold"),
                              trivial))
            for split, scores in evaluation.details.get("per_label", {}).items():
                say(per_label_table(f"{task.name} {split}, per label", scores))
            say(f"wrote {output_dir}", highlight=False, soft_wrap=True)  # whole, never wrapped mid-word
            if "smoke" in record:  # its own verdict, by its own margin
                say(smoke_line(task, record["smoke"]), highlight=False, soft_wrap=True)
            elif trivial and stats and stats.samples and trivial.not_beaten(evaluation.metrics):  # trained, in vain
                say(baseline_warning(task, trained, trivial, evaluation.metrics), soft_wrap=True)
    return Outcome(record, output_dir), loaded


def load(cfg: RunConfig, task: TaskSpec, console: Console, say, rt: Runtime, extras: Extras, model: LoadedModel | None,
         adaptation: dict | None, given: RunConfig) -> tuple[LoadedModel, dict, dict]:
    """The model (the one given, AX's saved MNLI model, the adapted one, or cfg.model), the data and its tokens;
    given: the settings as the flags gave them, from which AX's MNLI run is found."""
    seed_everything(cfg.seed)
    stage = console.status if rt.is_main else (lambda *a, **k: nullcontext())
    # Ctrl-C while loading is heard and honoured once loading is done: a KeyboardInterrupt raised inside
    # the libraries can be swallowed by their own bare `except:` (datasets' fingerprinting has some)
    with StopRequest(warning(say), "once loading is done; nothing is written") as stop:
        with stage(f"loading {cfg.model}"):
            loaded = model or source_model(task, given, say, extras.fit.check) or \
                load_model(task, replace(cfg, model=adaptation["folder"]) if adaptation else cfg, say, extras.fit.check)
        with stage(f"reading {task.name} data"):
            splits = data.load_splits(task, cfg, log=say, with_test=cfg.do_predict)
        if cfg.do_predict:
            data.check_test_data(task, cfg)
        with stage(f"tokenizing {task.name}"):
            tokenized = check_inputs(loaded, task, data.tokenize(splits, task, loaded.tokenizer, cfg.max_seq_length,
                                                                 cfg.cache_dir, cfg.truncation))
    if stop.requested(rt, True):  # every rank stops, or none: a rank that went on would wait for the others
        raise Interrupted(stop.signum, f"stopped by {signal.Signals(stop.signum).name} while loading; nothing was "
                                       "written, and the same command starts the run again" if rt.is_main else "")
    return loaded, splits, tokenized


def fitted(cfg: RunConfig, task: TaskSpec, overrides: dict, loaded: LoadedModel, tokenized: dict,
           rt: Runtime) -> defaults.Chosen | None:
    """The learning rate and epochs the loop trains with (defaults.py); None when nothing trains by gradient
    (AX, --probe's head, zero epochs)."""
    if not task.train_split or cfg.probe or not cfg.num_train_epochs:  # --num-train-epochs 0: nothing trains
        return None
    examples = len(tokenized[task.train_split])
    per_class = None if task.regression else \
        examples / task.num_labels if not task.multi_label else \
        float(np.sum(tokenized[task.train_split]["label"])) / task.num_labels  # a label's positives
    return defaults.choose(cfg, task, overrides, sum(p.numel() for p in loaded.model.parameters()), examples,
                           rt.world_size, per_class)


def headline(cfg: RunConfig, task: TaskSpec, rt: Runtime, tokenized: dict) -> str:
    """The run's first line: what trains on what, where (the fit's own words follow it)."""
    return (f"[bold]{task.name}[/] · {results.model_name(cfg)} · seed {cfg.seed} · {rt.device}"
            f"{' x' + str(rt.world_size) if rt.distributed else ''} · {precision(rt)} · "
            + ", ".join(f"{n} {len(d)}" for n, d in tokenized.items()))


def write_results(cfg: RunConfig, task: TaskSpec, output_dir: Path, loaded: LoadedModel, record: dict,
                  files: dict, extras: Extras) -> None:
    """The saved model (--save-model), the run's files and the tables; then the checkpoints go."""
    if cfg.save_model:
        save_model(loaded, output_dir / "model", extras.card(record, task), data.reading(task, cfg))
    results.write_run(output_dir, record, files)
    extras.written(Path(cfg.results_dir))
    # metrics.json now holds the result (and --save-model the weights): the checkpoints,
    # up to three copies of the model each, are only for an unfinished run
    results.remove_checkpoints(output_dir)


def source_model(task: TaskSpec, cfg: RunConfig, say, check) -> LoadedModel | None:
    """AX's model when none is in memory: the one its MNLI run of the same settings (cfg: as given) saved
    (--save-model)."""
    if not task.predict_with:
        return None
    source = settled(replace(cfg, task=task.predict_with, output_dir=None), get_task(task.predict_with))
    folder = results.run_folder(source, task.predict_with) / "model"
    if not folder.is_dir():
        return None
    say(f"[cyan]{task.name}: predicting with the {task.predict_with} model saved in {folder}[/]", soft_wrap=True)
    return load_model(task, replace(cfg, model=str(folder)), say, check)


@dataclass
class DevScorer:
    """The run's dev scores: each split's logits (the model's, or those of a head the fit put in its
    place), scored after each epoch; the latest scores are the run's."""
    loaded: LoadedModel
    task: TaskSpec
    splits: dict
    tokenized: dict
    cfg: RunConfig
    rt: Runtime
    pad_id: int
    say: object
    bar: ProgressBar
    identity: dict | None = None  # the run's, which its checkpoints record (cfg holds the values it trains with)
    latest: Evaluation | None = None
    outputs: Callable[[str], np.ndarray] | None = None  # a probe's head; else the model's own logits

    def logits(self, split: str) -> np.ndarray:
        if self.outputs:
            return self.outputs(split)
        return predict(self.loaded.model, self.tokenized[split], self.cfg, self.rt, pad_id=self.pad_id,
                       read=self.loaded.logits,
                       on_batch=self.bar.scoring(split))

    def predict(self, split: str) -> np.ndarray:
        return self.loaded.labels.predictions(self.logits(split))

    def evaluate(self) -> Evaluation:
        # a threshold chosen on the dev set also decides the test predictions
        evaluation, self.loaded.labels = score(self.task, self.loaded.labels, self.tokenized_splits(), self.logits,
                                               self.cfg.tune_threshold, self.say)
        return evaluation

    def tokenized_splits(self) -> dict:
        """The raw splits that were tokenized (the ones scored)."""
        return {name: split for name, split in self.splits.items() if name in self.tokenized}

    @property
    def every(self) -> int | None:
        """Evaluate every this many epochs (and after the last): once the training since the last evaluation has
        seen EVAL_RATIO times the dev examples. Scoring an example costs about a third of training on it, so
        evaluation takes at most a seventh of the time: on GLUE's training sets every epoch, on a few dozen
        examples with a dev set of hundreds only at the end (16 examples for 20 epochs were once 20 evaluations
        of 500). A function of the sizes alone, so a resumed run evaluates where an uninterrupted one did.
        None, after the last epoch only: a --smoke run, which exists for its verdict (its scores along the way,
        and the checkpoints saved with them, were a third of a smoke run's time)."""
        if self.cfg.smoke:
            return None
        dev = sum(len(self.tokenized[s]) for s in self.task.eval_splits if s in self.tokenized)
        train = len(self.tokenized[self.task.train_split]) if self.task.train_split else 0
        return max(1, math.ceil(EVAL_RATIO * dev / train)) if train else 1

    def after_epoch(self, epoch: int, last: bool) -> dict | None:
        if not last and (self.every is None or (epoch + 1) % self.every):
            return None
        self.latest = self.evaluate()
        metrics = self.latest.metrics
        self.say(f"epoch {epoch + 1}: " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if v is not None))
        return {"epoch": epoch + 1, **metrics}  # kept in checkpoints, so a resumed run has every evaluated epoch


EVAL_RATIO = 2


# ---- what a run writes -----------------------------------------------------

def start_or_resume(cfg: RunConfig, task: TaskSpec, output_dir: Path, rt: Runtime, say) -> Path | None:
    """The checkpoint to continue from: the newest in output_dir made with the same settings."""
    if not task.train_split:
        return None
    if cfg.overwrite:
        cfg = replace(cfg, resume=False)  # redoing a run on purpose starts it over
    stale = results.stale_checkpoints(output_dir, cfg)
    if stale:
        if cfg.resume:
            raise GlueRunnerError(f"--resume: the checkpoints in {output_dir} were made from other inputs "
                                  f"({'; '.join(stale)}); drop --resume to start over from these")
        say(f"[cyan]the checkpoints in {output_dir} were made from other inputs ({'; '.join(stale)}): deleting "
            "them, the run starts over[/]", soft_wrap=True)
        if rt.is_main:
            results.remove_checkpoints(output_dir)
        return None
    found = results.choose_checkpoint(output_dir, cfg)
    if found:
        say(f"[cyan]resuming from {found} (step {results.step_of(found)}); --no-resume starts over[/]", soft_wrap=True)
    elif cfg.resume is False and results.list_checkpoints(output_dir) and rt.is_main:
        say(f"[cyan]deleting the checkpoints in {output_dir} to start over[/]", soft_wrap=True)
        results.remove_checkpoints(output_dir)
    return found


def make_record(cfg: RunConfig, task: TaskSpec, rt: Runtime, splits: dict, tokenized: dict, evaluation: Evaluation,
                stats: TrainStats | None, trivial: Baseline | None, evaluated_every: int | None) -> dict:
    """What metrics.json holds: the scores and everything needed to reproduce and compare them."""
    metrics = evaluation.metrics
    return {
        "task": task.name,
        "model": cfg.model,
        "model_name": results.model_name(cfg),
        "seed": cfg.seed,
        "identity": results.identity(cfg),  # its settings, and its inputs' fingerprints
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "metrics": metrics,
        # what predicting the most frequent training label scores, and whether every dev split beat it
        **({"baseline": {"predictor": trivial.predictor, "metrics": trivial.metrics,
                         "beaten": not trivial.not_beaten(metrics)}} if trivial else {}),
        "epochs": stats.history if stats else [],
        "train": ({"steps": stats.steps, "samples": stats.samples, "seconds": round(stats.seconds, 3),
                   "evaluated_every_epochs": evaluated_every,
                   "samples_per_second": round(stats.samples_per_second, 2), "final_loss": stats.final_loss,
                   "trained_parameters": stats.trained_parameters}
                  if stats else {}),
        "data": {"source": {n: s.source for n, s in splits.items()},
                 "examples": {n: len(d) for n, d in tokenized.items()},
                 "available": {n: s.available for n, s in splits.items()},  # before --max-*-samples
                 "skipped_rows": {n: s.skipped for n, s in splits.items() if s.skipped},
                 "empty_texts": {n: len(s.empty) for n, s in splits.items() if s.empty},
                 "dev_is_training_data": data.dev_is_training_data(task, cfg)},
        "device": device_description(rt),
        "precision": precision(rt),
        "config": cfg.to_json(),
        "versions": library_versions(),
        **({"details": evaluation.details} if evaluation.details else {}),
    }


def precision(rt: Runtime) -> str:
    """What the run computed in: float32, or autocast to bfloat16 or float16 (float32 master weights)."""
    return str(rt.amp_dtype).removeprefix("torch.") if rt.amp_dtype else "float32"


def device_description(rt: Runtime) -> str:
    import torch

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
