"""One run: a task, a model and a seed, from data to results/.

    task definition -> data -> model -> train (evaluating each epoch) -> metrics -> results
"""

import datetime
import math
import platform
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from . import checkpoint, data, results
from .config import RunConfig
from .errors import GlueRunnerError
from .metrics import compute_metrics
from .model import LoadedModel, load_model
from .tasks import TaskSpec, get_task
from .train import Runtime, predict, seed_everything, setup_runtime, train


@dataclass
class Outcome:
    record: dict
    output_dir: Path
    loaded: LoadedModel


def model_name(cfg: RunConfig) -> str:
    if cfg.model_name:
        return cfg.model_name
    return Path(cfg.model).name if Path(cfg.model).expanduser().exists() else cfg.model


def default_output_dir(cfg: RunConfig, task: TaskSpec) -> Path:
    return Path(cfg.results_dir) / "runs" / results.safe_name(model_name(cfg)) / f"{task.name}-seed{cfg.seed}"


def run(cfg: RunConfig, console: Console, loaded: LoadedModel | None = None) -> Outcome:
    task = get_task(cfg.task)
    cfg = cfg.resolved(task.recipe)
    rt = setup_runtime(cfg)
    say = console.print if rt.is_main else (lambda *a, **k: None)
    output_dir = Path(cfg.output_dir) if cfg.output_dir else default_output_dir(cfg, task)
    if cfg.do_predict is False and task.train_split is None:
        cfg.do_predict = True  # a test-only task (AX) exists to be predicted

    resume_from = start_or_resume(cfg, task, output_dir, rt, say)
    seed_everything(cfg.seed)
    loaded = loaded or load_model(task, cfg)
    splits = data.load_splits(task, cfg, log=say, with_test=cfg.do_predict)
    if task.train_split and "train" not in splits:
        raise GlueRunnerError(f"no training data for {task.name}")
    missing = [s for s in task.test_splits if s not in splits]
    if cfg.do_predict and missing:  # said before training, not after hours of it
        raise GlueRunnerError(f"--do-predict: no test data for {task.name} ({', '.join(missing)}); "
                              "add the GLUE test files to --data-dir or pass --test-file")
    tokenized = data.tokenize(splits, task, loaded.tokenizer, cfg.max_seq_length, cfg.cache_dir)
    if not task.regression and loaded.model_label != list(range(task.num_labels)):
        say(f"[cyan]{cfg.model} is already fine-tuned on these labels; using its label order[/]")
        to_model = np.asarray(loaded.model_label)
        for name in tokenized:
            if "label" in tokenized[name].column_names:
                tokenized[name] = tokenized[name].map(lambda b: {"label": to_model[b["label"]].tolist()}, batched=True)
    pad_id = loaded.tokenizer.pad_token_id or 0
    say(f"[bold]{task.name}[/] · {model_name(cfg)} · seed {cfg.seed} · {rt.device}"
        f"{' x' + str(rt.world_size) if rt.distributed else ''}"
        f"{' · ' + str(rt.amp_dtype).removeprefix('torch.') if rt.amp_dtype else ''} · "
        + ", ".join(f"{n} {len(d)}" for n, d in tokenized.items()))

    def predicted(split: str) -> np.ndarray:
        return task_predictions(predict(loaded.model, tokenized[split], cfg, rt, pad_id=pad_id), task, loaded)[1]

    def evaluate_all() -> tuple[dict, dict]:
        metrics, predictions = {}, {}
        for split in task.eval_splits:
            if split not in tokenized:
                continue
            values = predicted(split)
            references = np.asarray(splits[split].dataset["label"])
            suffix = task.metric_suffix.get(split, "")
            scores = compute_metrics(task.metric, values, references)
            metrics.update({k + suffix: finite_or_none(v, k + suffix, say) for k, v in scores.items()})
            predictions[split] = (values, references)
        return metrics, predictions

    stats, latest = None, {}

    def on_epoch_end(epoch: int) -> dict:
        latest["metrics"], latest["predictions"] = evaluate_all()
        say(f"epoch {epoch + 1}: " + "  ".join(f"{k} {v:.4f}" for k, v in latest["metrics"].items() if v is not None))
        return {"epoch": epoch + 1, **latest["metrics"]}  # kept in checkpoints, so a resumed run has every epoch

    if task.train_split:
        with make_progress(console, rt) as progress:
            stats = train(loaded.model, tokenized["train"], cfg, rt, pad_id=pad_id,
                          on_epoch_end=on_epoch_end, progress=progress, output_dir=output_dir,
                          resume_from=resume_from, log=say)
    if not latest:  # nothing trained (AX), or zero epochs
        latest["metrics"], latest["predictions"] = evaluate_all()
    metrics, dev_predictions = latest["metrics"], latest["predictions"]

    test_predictions = {split: predicted(split) for split in task.test_splits} if cfg.do_predict else {}
    files = prediction_files(task, splits, dev_predictions, test_predictions)
    record = make_record(cfg, task, rt, splits, tokenized, metrics, stats)
    if rt.is_main:
        if cfg.save_model:
            save_model(loaded, output_dir / "model")
        results.write_run(output_dir, record, files)
        results.update_tables(Path(cfg.results_dir))
        # metrics.json now holds the result (and --save-model the weights): the checkpoints,
        # up to three copies of the model each, are only for an unfinished run
        checkpoint.remove_all(output_dir)
        say(metrics_table(task, model_name(cfg), metrics, output_dir))
    return Outcome(record, output_dir, loaded)


def prediction_files(task: TaskSpec, splits: dict, dev: dict, test: dict) -> dict[str, str]:
    """File name -> TSV text: dev predictions beside their labels, test predictions alone."""
    files = {}
    for split, (values, references) in dev.items():
        files[f"predictions_{split}.tsv"] = results.delimited_text(
            ["index", "prediction", "label"],
            [[int(i), label_text(v, task), label_text(r, task)]
             for i, v, r in zip(splits[split].dataset["idx"], values, references)])
    for split, values in test.items():
        files[f"predictions_{split}.tsv"] = results.delimited_text(
            ["index", "prediction"], [[int(i), label_text(v, task)] for i, v in zip(splits[split].dataset["idx"], values)])
    return files


def make_record(cfg: RunConfig, task: TaskSpec, rt: Runtime, splits: dict, tokenized: dict, metrics: dict,
                stats) -> dict:
    """What metrics.json holds: the scores and everything needed to reproduce and compare them."""
    return {
        "task": task.name,
        "model": cfg.model,
        "model_name": model_name(cfg),
        "seed": cfg.seed,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "metrics": metrics,
        "epochs": stats.history if stats else [],
        "train": ({"steps": stats.steps, "samples": stats.samples, "seconds": round(stats.seconds, 3),
                   "samples_per_second": round(stats.samples_per_second, 2), "final_loss": stats.final_loss}
                  if stats else {}),
        "data": {"source": {n: s.source for n, s in splits.items()},
                 "examples": {n: len(d) for n, d in tokenized.items()},
                 "skipped_rows": {n: s.skipped for n, s in splits.items() if s.skipped}},
        "device": device_description(rt),
        "config": cfg.to_json(),
        "versions": library_versions(),
    }


def start_or_resume(cfg: RunConfig, task: TaskSpec, output_dir: Path, rt: Runtime, say) -> Path | None:
    """The checkpoint to continue from: the newest in output_dir made with the same settings."""
    if not task.train_split:
        return None
    found = checkpoint.choose(output_dir, cfg)
    if found:
        say(f"[cyan]resuming from {found} (step {checkpoint.step_of(found)}); --no-resume starts over[/]")
    elif cfg.resume is False and checkpoint.list_checkpoints(output_dir) and rt.is_main:
        say(f"[cyan]--no-resume: deleting the checkpoints in {output_dir}[/]")
        checkpoint.remove_all(output_dir)
    return found


def task_predictions(logits: np.ndarray, task: TaskSpec, loaded: LoadedModel) -> tuple[np.ndarray, np.ndarray]:
    """(the logits in the task's label order, the predicted values: a label index or a score)."""
    if task.regression:
        return logits, logits[:, 0]
    ordered = logits[:, loaded.model_label]
    return ordered, ordered.argmax(axis=1)


def label_text(value, task: TaskSpec) -> str:
    return f"{float(value):.3f}" if task.regression else task.label_names[int(value)]


def finite_or_none(value: float, name: str, say) -> float | None:
    if value is None or math.isfinite(value):
        return value
    say(f"[yellow]{name} is undefined on this data (e.g. constant predictions); recorded as missing[/]")
    return None


def save_model(loaded: LoadedModel, folder: Path) -> None:
    loaded.model.save_pretrained(folder)
    loaded.tokenizer.save_pretrained(folder)


def make_progress(console: Console, rt: Runtime) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[info]}"), console=console, disable=not rt.is_main)


def metrics_table(task: TaskSpec, name: str, metrics: dict, output_dir: Path):
    from rich.table import Table

    table = Table(title=f"{task.name} · {name}", caption=str(output_dir))
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, "–" if value is None else f"{value:.4f}")
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
