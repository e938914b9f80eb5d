"""The tasks, and any data source turned into tokenized `datasets` with the same columns.

A task is one YAML file in tasks/ (fields, labels, files, metrics, recipe), over the shared
values in tasks/_defaults.yaml; those files are the only registry of tasks. Three sources,
one result: the Hugging Face Hub (default), a folder in the original GLUE TSV layout
(--data-dir), or the user's own CSV/TSV/JSON-lines files. Each gives splits holding `idx`,
the task's text fields and, where labels exist, `label`; `tokenize` then adds the model
inputs once, with a cache keyed on the data, the tokenizer and the sequence length.

`datasets` is imported where it is used: the task registry and the checks made before a
run starts answer in a fraction of a second, without loading the libraries.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import math
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from .errors import GlueRunnerError

if TYPE_CHECKING:  # cli.py makes the config; nothing here needs cli at import time
    import datasets

    from .cli import RunConfig

csv.field_size_limit(sys.maxsize)  # a single GLUE field can exceed csv's 128 KiB default


# ---- tasks -----------------------------------------------------------------

# Our problem types, as transformers names them in a model's config.
PROBLEM_TYPES = {"single_label": "single_label_classification", "multi_label": "multi_label_classification",
                 "regression": "regression"}
# An own task's metrics when its file names none.
DEFAULT_METRICS = {"single_label": ("accuracy", "f1_macro"), "multi_label": ("f1_micro", "f1_macro", "subset_accuracy"),
                   "regression": ("pearson", "spearmanr")}


@dataclass(frozen=True)
class SplitSpec:
    file: str  # in the task's glue_dir; for your own task file, a path from that file's folder
    column: str | None = None  # its column on the GLUE leaderboard
    metric_suffix: str = ""  # appended to its metric names (MNLI mismatched: accuracy_mm)
    submission: str | None = None  # its file in a GLUE submission zip


@dataclass(frozen=True)
class TaskSpec:
    name: str
    text_fields: tuple[str, ...]  # one field: single sentence; two: a pair
    metrics: tuple[str, ...]  # metrics.py's names, in the leaderboard's order
    splits: dict[str, SplitSpec]  # split name -> where it is and how it is shown
    columns: dict[str, str | int]  # our column -> header name (or position when the files have no header)
    test_columns: dict[str, str | int]
    description: str = ""
    problem_type: str = "single_label"  # single_label, multi_label or regression
    label_names: tuple[str, ...] = ()
    label_delimiter: str | None = None  # multi_label: the labels as a list in one column ("4,27", "sports|politics")
    label_columns: tuple[str, ...] = ()  # multi_label: or one 0/1 column per label, named as the labels
    quoting: str = "csv"  # your own .csv/.tsv files: standard quoting, or "none" for raw text as GLUE ships it
    glue_dir: str = ""  # a GLUE task's folder in --data-dir
    hub: str = ""  # a GLUE task's Hub dataset (its config has the task's name); your own tasks have none
    order: int | None = None  # position among the GLUE tasks
    predict_with: str | None = None  # AX: predictions come from an MNLI model
    recipe: dict = field(default_factory=dict)
    submission_labels: str = "index"  # in a GLUE submission: "index" (position in label_names) or "names"
    # label_names read from the training file's values: a label is only ever its name, never a position
    labels_from_data: bool = False
    source: str = ""  # the file it was read from, for messages

    @property
    def regression(self) -> bool:
        return self.problem_type == "regression"

    @property
    def multi_label(self) -> bool:
        return self.problem_type == "multi_label"

    @property
    def own(self) -> bool:
        """Your own data's task (a task file of yours, or one read from --train-file), not a GLUE task."""
        return not self.hub

    @property
    def num_labels(self) -> int:
        return 1 if self.regression else len(self.label_names)

    @property
    def train_split(self) -> str | None:
        return "train" if "train" in self.splits else None

    @property
    def eval_splits(self) -> list[str]:
        return [s for s in self.splits if s.startswith("validation")]

    @property
    def test_splits(self) -> list[str]:
        return [s for s in self.splits if s.startswith("test")]

    def columns_for(self, split: str) -> dict[str, str | int]:
        return self.test_columns if split.startswith("test") else self.columns


def _read_yaml(text: str, source: str) -> dict:
    # safe_load: a task file is data, never code (a !!python/object tag is refused).
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise GlueRunnerError(f"task definition {source} is not plain YAML data ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise GlueRunnerError(f"task definition {source} is not a mapping of keys to values; compare it with tasks/cola.yaml")
    return raw


def _parse(text: str, source: str, defaults: dict | None = None, folder: Path | None = None) -> TaskSpec:
    """A task file over the shared defaults; `folder`: your own task file's, where its files are."""
    raw = _read_yaml(text, source)
    defaults = defaults or {}
    raw = {**defaults, **raw, "recipe": {**defaults.get("recipe", {}), **raw.get("recipe", {})}}
    problem = raw.setdefault("problem_type", "single_label")
    if problem not in PROBLEM_TYPES:
        raise GlueRunnerError(f"task definition {source}: problem_type '{problem}' is not one of {', '.join(PROBLEM_TYPES)}")
    try:
        raw["text_fields"] = tuple(raw["text_fields"])
        raw["label_columns"] = tuple(raw.get("label_columns", ()))
        raw["label_names"] = tuple(str(n) for n in raw.get("label_names") or raw["label_columns"])
        raw["metrics"] = tuple(raw.get("metrics") or DEFAULT_METRICS[problem])
        raw["splits"] = {name: SplitSpec(**{**split, "file": str(folder / split["file"]) if folder else split["file"]})
                         for name, split in raw["splits"].items()}
        raw.setdefault("test_columns", {k: v for k, v in raw["columns"].items() if k != "label"})
        spec = TaskSpec(**raw, source=source)
    except (TypeError, KeyError, AttributeError) as e:
        raise GlueRunnerError(f"task definition {source} is malformed ({e}); compare it with tasks/cola.yaml") from None
    if spec.multi_label and not (spec.label_delimiter or spec.label_columns):
        raise GlueRunnerError(f"task definition {source}: a multi_label task needs label_delimiter (the labels as a "
                              "list in one column) or label_columns (one 0/1 column per label)")
    return spec


def _defaults() -> dict:
    folder = resources.files("glue_runner.task_files")
    return _read_yaml(folder.joinpath("_defaults.yaml").read_text(encoding="utf-8"), "_defaults.yaml")


@cache
def registry() -> dict[str, TaskSpec]:
    folder, defaults = resources.files("glue_runner.task_files"), _defaults()
    specs, files = {}, {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml") and not entry.name.startswith("_"):
            spec = _parse(entry.read_text(encoding="utf-8"), entry.name, defaults)
            if spec.name in specs:
                raise GlueRunnerError(f"task '{spec.name}' is defined twice, in {files[spec.name]} and {entry.name}; "
                                      "rename one")
            specs[spec.name], files[spec.name] = spec, entry.name
    return specs


def glue_tasks() -> list[TaskSpec]:
    """The GLUE tasks in the leaderboard's order, which is also the order of --task all."""
    return sorted((t for t in registry().values() if t.order is not None), key=lambda t: t.order)


def get_task(name: str) -> TaskSpec:
    tasks = registry()
    key = name.lower().replace("-", "")
    if key not in tasks:
        raise GlueRunnerError(f"unknown task '{name}'; choose one of: {', '.join(t.name for t in glue_tasks())}, "
                              "or give your own task file (.yaml) or --train-file")
    return tasks[key]


def is_task_file(task: str | None) -> bool:
    """--task names your own task file, not a GLUE task."""
    return bool(task) and task.endswith((".yaml", ".yml"))


def task_for(cfg: RunConfig) -> TaskSpec:
    """The run's task: a GLUE task by name, your own task file (--task my_task.yaml), or, with
    --train-file and no --task, a task read from your files. A task of your own without label
    names takes them from its training file."""
    from .cli import OWN_DATA

    if cfg.task and not is_task_file(cfg.task):
        return get_task(cfg.task)
    train = Path(cfg.train_file) if cfg.train_file else None
    stamp = train.stat().st_mtime_ns if train and train.is_file() else None
    return _own_task(cfg.task, tuple((k, getattr(cfg, k)) for k in OWN_DATA), stamp)


@cache
def _own_task(task: str, settings: tuple, train_file_stamp: int | None) -> TaskSpec:
    """Made once per process (the label set reads the training file); the arguments are the
    cache's key: the task, the run's file and label settings, and when the training file changed."""
    from .cli import RunConfig

    cfg = RunConfig(task=task, model="", **dict(settings))
    spec = _task_file(Path(task)) if task else _task_from_files(cfg)
    if spec.label_names or spec.regression:
        return spec
    files = split_files(spec, cfg, with_test=False)
    names = _label_set(files["train"], spec)
    if not task and not cfg.problem_type:
        _check_not_lists(names, files["train"], cfg)
    return replace(spec, label_names=names, labels_from_data=True)


def _check_not_lists(names: tuple[str, ...], path: Path, cfg: RunConfig) -> None:
    """Labels that look like lists ('sports|politics') read as single labels would make every
    combination a class of its own: ask which was meant."""
    for delimiter in ("|", ";", ","):
        lists = [n for n in names if delimiter in n]
        if len(lists) >= 2 and len(lists) >= len(names) / 4:
            raise GlueRunnerError(
                f"{path}: labels such as {_shown(lists, 3)} in column '{cfg.label_column}' look like lists; for "
                f"multi-label data pass --label-delimiter \"{delimiter}\", or --problem-type single_label to train "
                "each combination as a class of its own")


def _task_file(path: Path) -> TaskSpec:
    if not path.expanduser().is_file():
        raise GlueRunnerError(f"task file {path} {not_a_file(path)}; give a GLUE task's name or the path of your "
                              "task file")
    path = path.expanduser().resolve()
    spec = _parse(path.read_text(encoding="utf-8"), str(path), {"recipe": _defaults()["recipe"]}, folder=path.parent)
    if spec.name in registry():
        raise GlueRunnerError(f"task file {path} names its task '{spec.name}', which is a GLUE task's name; "
                              "rename it, so its results are never taken for GLUE's")
    return replace(spec, hub="", order=None)


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
    header = _header(path)
    labels = tuple(cfg.label_columns or ()) or (cfg.label_column,)
    missing = [c for c in (*labels, *(cfg.text_columns or ())) if c not in header]
    if missing:
        headerless = any(c.isdigit() for c in missing)  # a column asked for by position
        raise GlueRunnerError(
            f"{path}: no column {_shown(missing)}; the header has {_shown(header)}. Name the label column with "
            "--label-column (or --label-columns) and the text with --text-columns" +
            ("; a file without a header needs a task file of your own, with its columns by position "
             "(README: Your own data)" if headerless else ""))
    text = list(cfg.text_columns or [c for c in header if c not in (*labels, "idx", "index")])
    if not 1 <= len(text) <= 2:
        raise GlueRunnerError(f"{path}: {len(text)} columns could hold the text ({_shown(text)}); name the text "
                              "column with --text-columns (one, or two for sentence pairs)")
    fields = ("sentence",) if len(text) == 1 else ("sentence1", "sentence2")
    columns = dict(zip(fields, text)) | ({"idx": "idx"} if "idx" in header else {})
    problem = cfg.problem_type or ("multi_label" if cfg.label_delimiter or cfg.label_columns else "single_label")
    if problem == "multi_label" and not (cfg.label_delimiter or cfg.label_columns):
        raise GlueRunnerError("--problem-type multi_label needs --label-delimiter (the labels as a list in one column, "
                              "e.g. ',') or --label-columns (one 0/1 column per label)")
    # named by the file, or by its folder when the file is only "train": news/train.csv is "news"
    name = safe_task_name(path.resolve().parent.name if path.stem.lower() in ("train", "training") else path.stem)
    if name in registry():  # a file called sst2.csv holds your data, not GLUE's: never its task's name
        name += "_own"
    splits = {"train": SplitSpec(str(path)), "validation": SplitSpec(str(cfg.validation_file or "")),
              "test": SplitSpec(str(cfg.test_file or ""))}
    return TaskSpec(name=name, text_fields=fields, metrics=DEFAULT_METRICS[problem], splits=splits,
                    columns=columns | ({} if cfg.label_columns else {"label": cfg.label_column}), test_columns=columns,
                    problem_type=problem, label_names=tuple(cfg.label_columns or ()),
                    label_delimiter=cfg.label_delimiter, label_columns=tuple(cfg.label_columns or ()),
                    recipe=_defaults()["recipe"], source=f"--train-file {path}")


def not_a_file(path: Path) -> str:
    """Why a path that should name a file does not, for a message."""
    path = Path(path).expanduser()
    return "is a folder, not a file" if path.is_dir() else "is not a file" if path.exists() else "does not exist"


def safe_task_name(text: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_") or "own"


def _header(path: Path) -> list[str]:
    """The column names of one of your files: a CSV/TSV's first row, a JSON-lines file's first object's keys."""
    _check_suffix(path)
    with _text_file(path, newline="") as f:
        if path.suffix in (".json", ".jsonl"):
            first = next((line for line in f if line.strip()), "{}")
            try:
                return list(json.loads(first))
            except (ValueError, TypeError):
                raise GlueRunnerError(f"{path}:1: not a JSON object; one object per line") from None
        return next(csv.reader(f, delimiter="\t" if path.suffix == ".tsv" else ","), [])


def _label_set(path: Path, task: TaskSpec) -> tuple[str, ...]:
    """The labels of a training file, sorted (numbers as numbers), so a file's rows in any order
    give the same label order, and so the same model outputs."""
    columns = {"label": task.columns["label"]}
    rows, _ = _read_rows(path, task, "train", columns, _quoting(task))
    found = set()
    for line_num, row in rows:
        text = str(row["label"]).strip()
        if not text and not task.multi_label:  # (a multi-label row may carry no label)
            raise GlueRunnerError(f"{path}:{line_num}: the label (column {_shown([columns['label']])}) is empty; give "
                                  "every training row its label, or remove the row")
        found.update(_split_labels(text, task) if task.multi_label else [text])
    if not found:
        raise GlueRunnerError(f"{path}: no labels in column {_shown([columns['label']])}; check the file")
    if len(found) > 200 and len(found) > len(rows) / 2:
        raise GlueRunnerError(
            f"{path}: column {_shown([columns['label']])} holds {len(found):,} different values in {len(rows):,} rows, "
            "too many to be classes; if they are scores, pass --problem-type regression, and if the column is text, "
            "name the label column with --label-column")
    return tuple(sorted(found, key=lambda n: (0, int(n), "") if n.isascii() and n.isdigit() else (1, 0, n)))


def _split_labels(text: str, task: TaskSpec) -> list[str]:
    return [label.strip() for label in text.split(task.label_delimiter) if label.strip()]


# ---- sources ---------------------------------------------------------------


@dataclass
class RawSplit:
    dataset: datasets.Dataset
    source: str  # file or Hub address, for messages and the cache key
    fingerprint: str
    skipped: int = 0  # rows dropped for being short of columns
    available: int | None = None  # its examples before --max-*-samples took the first N


def load_splits(task: TaskSpec, cfg: RunConfig, log=print, with_test: bool = True) -> dict[str, RawSplit]:
    """with_test=False leaves the test splits unread: a run that does not predict them
    need not parse, check and tokenize them."""
    files = split_files(task, cfg, with_test)
    if files is None:
        splits = _load_hub(task, cfg, [n for n in task.splits if with_test or not n.startswith("test")])
    else:
        splits = {name: _read_split(path, task, name, cfg) for name, path in files.items()}
    for name, split in splits.items():
        if split.skipped:
            log(f"[yellow]{split.source}: skipped {split.skipped} malformed row(s) short of columns[/]")
        if len(split.dataset) == 0:
            raise GlueRunnerError(f"{split.source}: the {name} split has no usable rows; check the file")
    splits = _subsample(splits, cfg)
    if task.multi_label and "train" in splits:
        import numpy as np

        never = [n for n, count in zip(task.label_names, np.sum(splits["train"].dataset["label"], axis=0)) if not count]
        if never:
            log(f"[yellow]{splits['train'].source}: label(s) {_shown(never)} never occur in the training data "
                "(as used), so they will never be predicted[/]")
    return splits


def own_files(cfg: RunConfig) -> bool:
    return bool(cfg.train_file or cfg.validation_file or cfg.test_file)


def split_files(task: TaskSpec, cfg: RunConfig, with_test: bool = True) -> dict[str, Path] | None:
    """The file each split is read from: the files you name (--train-file, ...), your task file's,
    the GLUE folder's; None for the Hub. A file that should be there and is not is an error naming
    it, found before anything is loaded. Test files may be missing (GLUE folders often ship without
    them): they are left out, and --do-predict says so."""
    if own_files(cfg):
        return _own_split_files(task, cfg, with_test)
    if task.own:
        folder = Path()  # your task file's splits are paths already
    elif cfg.data_dir is None:
        return None
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


def check_test_data(task: TaskSpec, cfg: RunConfig) -> None:
    """--do-predict needs every test split: said before training, not after hours of it."""
    files = split_files(task, cfg, with_test=True)
    missing = [s for s in task.test_splits if files is not None and s not in files]
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


def _read_split(path: Path, task: TaskSpec, split: str, cfg: RunConfig) -> RawSplit:
    glue_layout = not task.own and not own_files(cfg)  # GLUE's own TSV files: raw text, no quoting
    columns, quoting = _columns(task, split, cfg), csv.QUOTE_NONE if glue_layout else _quoting(task)
    rows, skipped = _read_rows(path, task, split, columns, quoting)
    # The same file read another way (another label column, labels as a list, a score) gives other
    # labels: the tokenization cache must not serve one reading's labels to another.
    reading = (columns, quoting, task.problem_type, task.label_names, task.label_delimiter, task.label_columns)
    return _to_dataset(rows, path, task, split, skipped, reading)


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


def _quoting(task: TaskSpec) -> int:
    return csv.QUOTE_NONE if task.quoting == "none" else csv.QUOTE_MINIMAL


def _check_suffix(path: Path) -> None:
    if path.suffix not in (".csv", ".tsv", ".json", ".jsonl"):
        raise GlueRunnerError(f"{path}: unsupported file type '{path.suffix}'; use .csv, .tsv, .json or .jsonl")


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


def _load_hub(task: TaskSpec, cfg: RunConfig, names: list[str]) -> dict[str, RawSplit]:
    address = f"{task.hub}/{task.name}"
    try:
        import datasets

        loaded = datasets.load_dataset(task.hub, task.name, cache_dir=cfg.cache_dir)
    except Exception as e:  # offline, no such dataset, ...: the library's own message says which
        raise GlueRunnerError(
            f"could not load {address} from the Hugging Face Hub ({type(e).__name__}: {str(e).splitlines()[0]}); "
            f"{OFFLINE_DATA}") from None
    splits = {}
    for name in names:
        ds = loaded[name]
        keep = ["idx", *task.text_fields] + (["label"] if not name.startswith("test") else [])
        splits[name] = RawSplit(ds.select_columns(keep), f"{address}[{name}]", ds._fingerprint)
    return splits


# ---- reading files: GLUE TSV layout and the user's own --------------------

def _read_rows(path: Path, task: TaskSpec, split: str, columns: dict, quoting: int) -> tuple[list, int]:
    """(line number, {our column: the file's value}) per row, and how many rows were short of columns."""
    _check_suffix(path)
    if path.suffix in (".json", ".jsonl"):
        return _read_jsonl(path, columns), 0
    return _read_table(path, task, split, columns, delimiter="," if path.suffix == ".csv" else "\t", quoting=quoting,
                       header=all(isinstance(c, str) for c in columns.values()))


# More lines than this in one quoted field is an unclosed quote, not a long text with line breaks
QUOTED_LINES = 100


def _read_table(path: Path, task: TaskSpec, split: str, columns: dict, *, delimiter, quoting,
                header) -> tuple[list, int]:
    """Read a delimited file; `columns` maps our column to a header name or, without a header, an index."""
    rows, skipped = [], 0
    try:
        with _text_file(path, newline="") as f:
            reader = csv.reader(f, delimiter=delimiter, quoting=quoting)
            if header:
                names = next(reader, None)
                if names is None:
                    raise GlueRunnerError(f"{path} is empty; it should hold the {task.name} {split} split")
                missing = [c for c in columns.values() if c not in names]
                if missing:
                    raise GlueRunnerError(
                        f"{path}:1: missing column(s) {_shown(missing)}; the header has "
                        f"{_shown(names)}. Rename the columns, or for your own files pass "
                        "--text-columns/--label-column")
                positions = {ours: names.index(theirs) for ours, theirs in columns.items()}
                width = len(names)
            else:
                positions = dict(columns)
                width = max(positions.values()) + 1
            previous = reader.line_num
            for row in reader:
                if reader.line_num - previous > QUOTED_LINES:
                    raise GlueRunnerError(
                        f"{path}:{previous + 1}: a quoted field runs over {reader.line_num - previous:,} lines; a "
                        "quote that is never closed takes the rest of the file with it. Close it (a quote inside a "
                        "field is written \"\"), or, for raw text whose quotes are text, use a task file of your "
                        "own with quoting: none")
                previous = reader.line_num
                if not row or row == [""]:
                    continue  # a blank line, as at the end of some files
                if len(row) < width:
                    skipped += 1
                    continue
                rows.append((reader.line_num, {ours: row[i] for ours, i in positions.items()}))
    except csv.Error as e:
        raise GlueRunnerError(f"{path}:{reader.line_num + 1}: unreadable as "
                              f"{'TSV' if delimiter == chr(9) else 'CSV'} ({e})") from None
    return rows, skipped


def _read_jsonl(path: Path, columns: dict) -> list:
    rows = []
    with _text_file(path) as f:
        for line_num, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError) as e:  # bad JSON, a number of 5000 digits, [[[[...]]]]
                reason = e.msg if isinstance(e, json.JSONDecodeError) else str(e).split(":")[0]
                raise GlueRunnerError(f"{path}:{line_num}: not a JSON object ({reason}); one object per line") from None
            if not isinstance(record, dict):
                raise GlueRunnerError(f"{path}:{line_num}: not a JSON object; one object per line")
            missing = [c for c in columns.values() if c not in record]
            if missing:
                raise GlueRunnerError(
                    f"{path}:{line_num}: missing key(s) {_shown(missing)}; the record has "
                    f"{_shown(list(record))}. Pass --text-columns/--label-column to name them")
            rows.append((line_num, {ours: record[theirs] for ours, theirs in columns.items()}))
    return rows


@contextmanager
def _text_file(path: Path, **kwargs):
    """A data file opened as UTF-8 text; failing to decode or read it is one clear error."""
    try:
        # utf-8-sig: MRPC's files start with a byte-order mark that would otherwise stick to the first name
        with open(path, encoding="utf-8-sig", **kwargs) as f:
            yield f
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except OSError as e:  # a folder, no permission, ...
        raise GlueRunnerError(f"{path}: cannot be read ({e.strerror})") from None


def _not_utf8(path: Path) -> GlueRunnerError:
    # The decoder's error position is within its read buffer, not the file: find the place again.
    raw = path.read_bytes()
    try:
        raw.decode("utf-8-sig")
        return GlueRunnerError(f"{path}: not UTF-8 text; re-save the file as UTF-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        if e.reason == "unexpected end of data" and e.end == len(raw):
            # UTF-8 text cut inside a character: the file is incomplete, not in another encoding
            return GlueRunnerError(f"{path}: ends in the middle of a UTF-8 character (line {line}): the file was cut "
                                   "short; copy or export it again in full")
    hint = ", it looks like UTF-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
    return GlueRunnerError(f"{path}: not UTF-8 text (line {line}){hint}; re-save the file as UTF-8")


def _shown(values: list, limit: int = 8) -> str:
    """Names for a message: a few, each cut short (a binary file's 'header' can be megabytes)."""
    shown = [repr(v if len(str(v)) <= 40 else str(v)[:40] + "…") for v in values[:limit]]
    return ", ".join(shown) + (f", … ({len(values)} in all)" if len(values) > limit else "")


def _to_dataset(rows: list, path: Path, task: TaskSpec, split: str, skipped: int, reading: tuple) -> RawSplit:
    data = {"idx": [], **{f: [] for f in task.text_fields}}
    has_labels = not split.startswith("test")
    if has_labels:
        data["label"] = []
    unknown = {}  # a label outside the task's set -> the first line it is on: all are named at the end
    for position, (line_num, row) in enumerate(rows):
        data["idx"].append(_parse_index(row.get("idx"), position, path, line_num))
        for f in task.text_fields:
            data[f].append(_parse_text(row[f], f, path, line_num))
        if has_labels:
            data["label"].append(_parse_label(row, task, path, line_num, unknown))
    if unknown:
        raise _unknown_labels(unknown, task, path, split)
    import datasets

    features = {"idx": datasets.Value("int64"), **{f: datasets.Value("string") for f in task.text_fields}}
    if has_labels:
        features["label"] = (datasets.Value("float32") if task.regression else
                             datasets.Sequence(datasets.Value("float32"), length=task.num_labels) if task.multi_label
                             else datasets.ClassLabel(names=list(task.label_names)))
    dataset = datasets.Dataset.from_dict(data, features=datasets.Features(features))
    return RawSplit(dataset, str(path), _file_fingerprint(path, f"{split}|{reading}"), skipped)


def _file_fingerprint(path: Path, split: str) -> str:
    stat = path.stat()
    return hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{split}".encode()).hexdigest()[:16]


def _parse_text(value, field: str, path: Path, line_num: int) -> str:
    # JSON can hold null, lists and objects (str() would train on "None"), and lone surrogates
    # ("\ud800"), which no tokenizer or Arrow column accepts.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            raise GlueRunnerError(f"{path}:{line_num}: {field} holds invalid Unicode (a lone surrogate)") from None
    raise GlueRunnerError(f"{path}:{line_num}: {field} is {_shown([value])}, not text")


def _parse_index(value, position: int, path: Path, line_num: int) -> int:
    if value is None:
        return position  # files without an index column are numbered in order
    try:
        index = int(value)
    except (TypeError, ValueError):
        raise GlueRunnerError(f"{path}:{line_num}: index {_shown([value])} is not an integer") from None
    if not -2**63 <= index < 2**63:  # the column is int64
        raise GlueRunnerError(f"{path}:{line_num}: index {_shown([value])} is too large")
    return index


def _parse_label(row: dict, task: TaskSpec, path: Path, line_num: int, unknown: dict):
    """The row's label: a score (regression), the label's position in label_names, or for
    multi_label a 0/1 vector over them. A label may be written as its name (MNLI's 'entailment')
    or its position (CoLA's '1'); one outside the task's set goes into `unknown`."""
    if task.label_columns:
        return [_parse_flag(row[("label", name)], name, path, line_num) for name in task.label_columns]
    text = str(row["label"]).strip()
    if task.regression:
        try:
            score = float(text)
        except ValueError:
            raise GlueRunnerError(
                f"{path}:{line_num}: label {_shown([text])} is not a number ({task.name} is a regression task)") from None
        # 'nan', 'inf' and '1e309' parse, and would make the loss NaN; so would 3.5e38, inf as a float32
        if not (math.isfinite(score) and abs(score) < 3.4028234e38):
            raise GlueRunnerError(f"{path}:{line_num}: label {_shown([text])} is not a finite number (within "
                                  "float32's range, as scores are kept)")
        return score
    positions = []
    for label in _split_labels(text, task) if task.multi_label else [text]:
        if label in task.label_names:
            positions.append(task.label_names.index(label))
        elif not task.labels_from_data and label.isascii() and label.isdigit() and int(label) < task.num_labels:
            positions.append(int(label))  # (isdigit alone takes '²')
        else:
            unknown.setdefault(label, line_num)
    if not task.multi_label:
        return positions[0] if positions else 0  # 0 stands in for an unknown label: the split is refused below
    return [1.0 if i in positions else 0.0 for i in range(task.num_labels)]


def _parse_flag(value, name: str, path: Path, line_num: int) -> float:
    text = str(value).strip().lower()
    if text in ("1", "1.0", "true"):
        return 1.0
    if text in ("0", "0.0", "false", ""):
        return 0.0
    raise GlueRunnerError(f"{path}:{line_num}: label column {_shown([name])} holds {_shown([value])}, not 0 or 1")


def _unknown_labels(unknown: dict, task: TaskSpec, path: Path, split: str) -> GlueRunnerError:
    names = ", ".join(f"{i}={n}" for i, n in enumerate(task.label_names[:20]))
    names += f", … ({len(task.label_names)} in all)" if len(task.label_names) > 20 else ""
    labels, first = list(unknown), min(unknown.values())
    what = f"label {_shown(labels)}" if len(labels) == 1 else f"labels {_shown(labels)} (the first)"
    if not task.own:
        return GlueRunnerError(f"{path}:{first}: {what} is not one of {task.name}'s labels ({names}); fix the row or "
                               "pick the right --task")
    return GlueRunnerError(
        f"{path}:{first}: {what} {'is' if len(labels) == 1 else 'are'} not among {task.name}'s labels ({names}), "
        f"which come from {'its task file' if task.source.endswith(('.yaml', '.yml')) else 'the training file'}: a "
        f"label seen only in the {split} split cannot be learned; add examples of it to the training data, or "
        "remove those rows")


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
    with _text_file(path) as f:
        found = len(list(itertools.islice(_lines(f), 2)))
    if found < 2:
        raise GlueRunnerError(f"{path} holds {found} line(s) of text; --adapt-lm needs at least 2, one document "
                              "per line (a share is held out to measure the masked-LM loss on)")


def read_texts(path: Path) -> RawSplit:
    """A texts file as a split with one `text` per non-blank line."""
    import datasets

    with _text_file(path) as f:
        lines = list(_lines(f))
    return RawSplit(datasets.Dataset.from_dict({"text": lines}), str(path), _file_fingerprint(path, "texts"))


def _lines(f):
    return (line.strip() for line in f if line.strip())


# ---- tokenization ----------------------------------------------------------

def tokenize(splits: dict[str, RawSplit], task: TaskSpec, tokenizer, max_seq_length: int,
             cache_dir: Path | None = None) -> dict[str, datasets.Dataset]:
    """Tokenize each split once (batched, fast tokenizer) and cache the result on disk.

    Nothing is padded here: batches are padded to their own longest member at
    training time, which is most of the speed-up over padding everything to 128.
    """
    cache_dir = cache_folder(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tokenizer_id = tokenizer_fingerprint(tokenizer)

    def encode(batch):
        encoded = tokenizer(*(batch[f] for f in task.text_fields), truncation=True, max_length=max_seq_length)
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        return encoded

    out = {}
    for name, split in splits.items():
        key = hashlib.sha256(f"{split.fingerprint}|{tokenizer_id}|{max_seq_length}|{task.text_fields}".encode()).hexdigest()[:24]
        out[name] = split.dataset.map(
            encode, batched=True, remove_columns=list(task.text_fields),
            cache_file_name=str(cache_dir / f"{task.name}-{name}-{key}.arrow"),
            desc=f"tokenizing {task.name} {name}")
    return out


def cache_folder(cache_dir: Path | None) -> Path:
    """Where tokenized splits (and a probe's features) are kept: --cache-dir, else in datasets' cache."""
    import datasets

    # absolute: datasets makes the folder of cache_file_name, and a bare name ("--cache-dir .") has none
    return Path(cache_dir or Path(datasets.config.HF_DATASETS_CACHE) / "glue_runner").absolute()


def tokenizer_fingerprint(tokenizer) -> str:
    # The serialized tokenizer, less its truncation/padding state, which calling it changes.
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    state.pop("truncation", None)
    state.pop("padding", None)
    return f"{type(tokenizer).__name__}|{json.dumps(state, sort_keys=True)}"
