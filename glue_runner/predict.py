"""glue-run predict: a fine-tuned model's predictions for new text, from a file to a file.

    glue-run predict --model results/runs/<model>/<task>-seed42 --input new.csv [--output preds.csv]

The model says how it reads (config.json's glue_runner, which --save-model writes: the task, the text
columns, the tokens kept). The file is read by readers.py, with training's checks, a chunk at a time;
each chunk is tokenized as training tokenizes (data.encode) and predicted in the evaluation's
length-sorted batches (train.predict), then written out, so memory stays flat however long the file.
Every input row gives one output row, in order, with the input's own columns, the predicted label
and each label's probability; the output is written beside its name and renamed into place.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from . import data
from .config import RunConfig
from .errors import GlueRunnerError
from .files import not_a_file
from .model import LoadedModel, check_inputs, is_classifier, load_config, load_model, run_folder_model
from .readers import column_names, file_kind, file_stem, quoting_of, rows_of, shown, text_of
from .results import check_writable
from .run import precision
from .tasks import PROBLEM_TYPES, TaskSpec, registry
from .train import predict, setup_runtime

# rows read, tokenized and predicted at a time: batches are sorted by length within a chunk
CHUNK_ROWS = 8192


@dataclass
class Counts:
    read: int = 0  # rows with every column
    empty: int = 0  # of those, rows with an empty text: written without a prediction
    short: int = 0  # rows short of columns: skipped, as training skips them
    written: int = 0


def default_output(source: Path) -> Path:
    """new.csv -> new.predictions.csv beside it (new.csv.gz -> new.predictions.csv.gz)."""
    compressed = ".gz" if source.suffix == ".gz" else ""
    return source.with_name(f"{file_stem(source)}.predictions{file_kind(source)}{compressed}")


def check_files(source: Path, target: Path, overwrite: bool) -> None:
    """The input is a file of a known kind, and the output a new file of one (or --overwrite), in a folder
    that can be written: said before anything loads."""
    if not source.is_file():
        raise GlueRunnerError(f"{source} {not_a_file(source)} (given as --input)")
    file_kind(source)
    file_kind(target)
    if target.exists() and target.resolve() == source.resolve():
        raise GlueRunnerError(f"--output {target} is the input file; give another --output")
    if target.is_dir():
        raise GlueRunnerError(f"--output {target} is a folder; give the file to write, e.g. "
                              f"{target / default_output(source).name}")
    if target.exists() and not overwrite:
        raise GlueRunnerError(f"{target} exists; pass --overwrite to replace it, or another --output")
    check_writable(target.parent, "--output's folder")


def model_folder(model: str, say) -> str:
    """--model as given, or the model/ folder of a run's folder (results/runs/<model>/<task>-seed<seed>)."""
    folder = Path(model).expanduser()
    saved = run_folder_model(folder) if folder.is_dir() else None
    if saved:
        say(f"{model} is a run's folder: predicting with the model it saved, {saved}", highlight=False, soft_wrap=True)
        return str(saved)
    return model


def model_task(config, header: list[str], text_columns: tuple[str, ...] | None, cfg: RunConfig,
               source: Path) -> tuple[TaskSpec, RunConfig]:
    """The model's task as a file of `header` is read with it, and the settings it reads with: its labels and
    problem type (config.json), and the text columns, their quoting and the tokens kept as its run read
    them (config.json's glue_runner). A GLUE task's model also reads GLUE's TSV files and the Hub's
    column names; --text-columns names others. A file without the model's text columns is refused."""
    record = getattr(config, "glue_runner", None) or {}
    problem = next((ours for ours, theirs in PROBLEM_TYPES.items() if theirs == config.problem_type),
                   "regression" if config.num_labels == 1 else "single_label")
    names = () if problem == "regression" else tuple(config.id2label[i] for i in range(config.num_labels))
    known = [(tuple(record["text_columns"]), record["quoting"])] if record else []
    glue = registry().get(record.get("task"))
    if glue:
        known += [(tuple(glue.test_columns[f] for f in glue.text_fields), "none"), (glue.text_fields, "csv")]
    known = [(columns, quoting) for columns, quoting in known if all(isinstance(c, str) for c in columns)]
    width = len(record["text_columns"]) if record else None
    what = f"'{cfg.model}' reads {'sentence pairs' if width == 2 else 'one text'} (its task {record['task']})" \
        if record else f"'{cfg.model}' was not saved by glue-run --save-model, so it does not say which columns hold text"
    if text_columns:
        if width and len(text_columns) != width:
            raise GlueRunnerError(f"--text-columns names {len(text_columns)} column(s), but {what}; name {width}")
        if len(text_columns) > 2:
            raise GlueRunnerError(f"--text-columns names {len(text_columns)} columns; a model reads one text or a pair")
        known = [(text_columns, dict(known).get(text_columns, "csv"))]
    elif not known:
        candidates = [c for c in header if c not in data.NOT_TEXT]
        if record or len(candidates) != 1:
            raise GlueRunnerError(f"{source}: {what}; name the text column(s) of {shown(header)} with --text-columns")
        known = [((candidates[0],), "csv")]
    found = next(((columns, quoting) for columns, quoting in known if set(columns) <= set(header)), None)
    if found is None:
        columns = known[0][0]
        raise GlueRunnerError(
            f"{source} has no column(s) {shown([c for c in columns if c not in header])}: {what}, from column(s) "
            f"{shown(list(columns))}; the file has {shown(header)}. Name the text column(s) with --text-columns")
    columns, quoting = found
    if file_kind(source) != ".tsv":  # raw text without quoting is GLUE's TSV layout; a CSV has its quotes
        quoting = "csv"
    fields = ("sentence",) if len(columns) == 1 else ("sentence1", "sentence2")
    task = TaskSpec(name=record.get("task") or Path(cfg.model).name, text_fields=fields, metrics=(), splits={},
                    columns=dict(zip(fields, columns)), test_columns=dict(zip(fields, columns)), problem_type=problem,
                    label_names=names, label_delimiter=record.get("label_delimiter"), quoting=quoting,
                    source=cfg.model)
    # a model from elsewhere reads as far as it can (BERT: 512 tokens), as the tokenizer's own truncation does
    limit = record.get("max_seq_length") or min(getattr(config, "max_position_embeddings", 512), 512)
    return task, replace(cfg, max_seq_length=limit, truncation=record.get("truncation", "head"),
                         threshold=getattr(config, "multi_label_threshold", None) or cfg.threshold)


def output_columns(task: TaskSpec) -> tuple[list[str], list[str]]:
    """What predict adds to each row, and which of those are numbers: the prediction (a label's name, the labels
    above the threshold joined as the training file joined them, or a score) and each label's probability."""
    if task.regression:
        return ["prediction"], ["prediction"]
    probabilities = [f"prob_{name}" for name in task.label_names]
    return ["prediction", *probabilities], probabilities


def predict_file(model: str, source: Path, target: Path, text_columns: tuple[str, ...] | None, cfg: RunConfig,
                 console: Console) -> Counts:
    """Every row of `source` with the model's prediction, written to `target`."""
    say = console.print
    cfg = replace(cfg, model=model_folder(model, say))
    header = column_names(source, cfg.encoding)
    if not header:
        raise GlueRunnerError(f"{source} is empty; it should hold the texts to predict, with a header")
    if len(set(header)) < len(header):
        twice = [name for name in dict.fromkeys(header) if header.count(name) > 1]
        raise GlueRunnerError(f"{source}: the header names {shown(twice)} twice; rename one, so each output column "
                              "says what it holds")
    with console.status(f"loading {cfg.model}"):
        config, _ = load_config(cfg)
        if not is_classifier(config):
            raise GlueRunnerError(
                f"'{cfg.model}' has no classification head (it is a {', '.join(config.architectures or ['bare'])} "
                "model): predict needs a fine-tuned classifier, such as the model/ folder of a glue-run "
                "--save-model run (or that run's folder)")
        task, cfg = model_task(config, header, text_columns, cfg, source)
        added, numbers = output_columns(task)
        clash = [c for c in added if c in header]
        if clash:
            raise GlueRunnerError(f"{source} already has column(s) {shown(clash)}, which predict writes (is it an "
                                  "output of glue-run predict?); predict the original file, or rename them")
        loaded = load_model(task, cfg)
        rt = setup_runtime(cfg)
    say(f"[bold]{task.name}[/] · {cfg.model} · {rt.device} · {precision(rt)} · text from "
        f"{shown([task.columns[f] for f in task.text_fields])} · {', '.join(task.label_names) or 'a score'}"
        + (f" (threshold {cfg.threshold:g})" if task.multi_label else "")
        + f" · at most {cfg.max_seq_length} tokens" + (f", {cfg.truncation}" if cfg.truncation != "head" else ""),
        soft_wrap=True)
    counts, started = Counts(), time.perf_counter()
    rows = rows_of(source, task, "input", {name: name for name in header}, quoting_of(task), cfg.encoding)
    with rows_progress(console, source) as advance, output(target, header + added, numbers, source) as write:
        for chunk in iter(lambda: list(itertools.islice(rows, CHUNK_ROWS)), []):
            whole = [(line, row) for line, row in chunk if row is not None]
            counts.short += len(chunk) - len(whole)
            outputs = predicted(loaded, task, cfg, rt, whole, source)
            counts.read += len(whole)
            counts.empty += sum(out is None for out in outputs)
            write([[row[name] for name in header] + (out or [None] * len(added))
                   for (_, row), out in zip(whole, outputs)])
            counts.written += len(whole)
            advance(len(chunk))
    seconds = time.perf_counter() - started
    say(f"read {counts.read:,} row(s) from {source}" +
        (f"; {counts.empty:,} with an empty text, written without a prediction" if counts.empty else "") +
        (f"; skipped {counts.short:,} malformed row(s) short of columns" if counts.short else "") +
        f"; wrote {counts.written:,} to {target} ({counts.read / seconds:,.0f} rows/s)", highlight=False,
        soft_wrap=True)
    return counts


def predicted(loaded: LoadedModel, task: TaskSpec, cfg: RunConfig, rt, rows: list, source: Path) -> list[list | None]:
    """Each row's output columns (output_columns'), None for a row with an empty text."""
    import datasets

    texts = [[text_of(row[task.columns[f]], task.columns[f], source, line) for f in task.text_fields]
             for line, row in rows]
    present = [i for i, example in enumerate(texts) if None not in example]
    outputs: list[list | None] = [None] * len(rows)
    if not present:
        return outputs
    encoded = data.encode(loaded.tokenizer, [[texts[i][k] for i in present] for k in range(len(task.text_fields))],
                          cfg.max_seq_length, cfg.truncation)
    dataset = check_inputs(loaded, task, {"input": datasets.Dataset.from_dict(encoded)})["input"]
    logits = predict(loaded.model, dataset, cfg, rt, pad_id=loaded.tokenizer.pad_token_id or 0, read=loaded.logits)
    labels = loaded.labels
    if labels.regression:
        for i, score in zip(present, logits[:, 0]):
            outputs[i] = [float(score)]
        return outputs
    # six decimals: a probability's noise under bfloat16 is larger; the prediction itself is exact
    probabilities = labels.probabilities(logits).round(6).tolist()
    for i, value, row in zip(present, labels.predictions(logits), probabilities):
        outputs[i] = [labels.text(value), *row]
    return outputs


@contextmanager
def rows_progress(console: Console, source: Path) -> Iterator[Callable[[int], None]]:
    """A bar of the rows predicted (of all, where the file says how many: Parquet), with the rate."""
    total = None
    if file_kind(source) == ".parquet":
        import pyarrow.parquet

        total = pyarrow.parquet.ParquetFile(source).metadata.num_rows
    with Progress(TextColumn("predicting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[rate]}"), console=console, transient=True) as progress:
        task_id, started = progress.add_task("rows", total=total, rate=""), time.perf_counter()

        def advance(rows: int) -> None:
            progress.advance(task_id, rows)
            done = progress.tasks[0].completed
            progress.update(task_id, rate=f"{done / (time.perf_counter() - started):,.0f} rows/s")
        yield advance


@contextmanager
def output(path: Path, columns: list[str], numbers: list[str], source: Path) -> Iterator[Callable[[list[list]], None]]:
    """write(rows) into `path` in its format (by its name), each row a list in `columns`' order (`numbers`: those
    that hold numbers): to a temporary file beside it, renamed into place when the block ends without error and
    removed otherwise, so a stopped or failed prediction leaves no half file, and an older output as it was."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if file_kind(path) == ".parquet":
            with _parquet_output(tmp, columns, numbers, source) as write:
                yield write
        else:
            with _text_output(tmp, columns, file_kind(path), compressed=path.suffix == ".gz") as write:
                yield write
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def _text_output(path: Path, columns: list[str], kind: str, compressed: bool):
    import gzip

    with (gzip.open(path, "wt", encoding="utf-8", newline="") if compressed else
          open(path, "w", encoding="utf-8", newline="")) as f:
        if kind in (".json", ".jsonl"):
            def write(rows):
                f.writelines(json.dumps(dict(zip(columns, row)), ensure_ascii=False, default=str) + "\n" for row in rows)
        else:
            writer = csv.writer(f, delimiter="\t" if kind == ".tsv" else ",", lineterminator="\n")
            writer.writerow(columns)

            def write(rows):
                writer.writerows([_text(value) or "" for value in row] for row in rows)
        yield write


def _text(value) -> str | None:
    """A value read from JSON or Parquet as text: lists and objects as JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str) if isinstance(value, (list, dict)) else str(value)


@contextmanager
def _parquet_output(path: Path, columns: list[str], numbers: list[str], source: Path):
    """A Parquet input's columns keep their types; other inputs' columns, and the predicted labels, are text."""
    import pyarrow
    import pyarrow.parquet

    kept = pyarrow.parquet.read_schema(source) if file_kind(source) == ".parquet" else pyarrow.schema([])
    schema = pyarrow.schema([(name, pyarrow.float64() if name in numbers else
                              kept.field(name).type if name in kept.names else pyarrow.string()) for name in columns])
    with pyarrow.parquet.ParquetWriter(path, schema) as writer:
        def write(rows):
            values = zip(*rows)
            arrays = [pyarrow.array(column if name in numbers or name in kept.names else [_text(v) for v in column],
                                    type=schema.field(name).type) for name, column in zip(columns, values)]
            writer.write_table(pyarrow.Table.from_arrays(arrays, schema=schema))
        yield write
