"""The task registry: each task one YAML file in tasks/ (fields, labels, files, metrics, recipe),
over the shared values in tasks/_defaults.yaml; those files are the only registry of tasks.
Your own task file (--task my_task.yaml) is read the same way. YAML in, TaskSpec out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path

import yaml

from .errors import GlueRunnerError
from .files import not_a_file
from .metrics import KINDS as KNOWN_METRICS

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
class Smoke:
    """--smoke's budget for a task: the optimizer steps it trains on its subset (256 examples), and whether a
    healthy small pretrained encoder leaves the baseline in them; where it cannot, why (the smoke run then
    checks that the task runs, not that the model learns)."""
    steps: int = 64
    learns: bool = True
    why_not: str = ""


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
    smoke: Smoke = Smoke()

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
    raw = {**defaults, **raw, "recipe": {**defaults.get("recipe", {}), **raw.get("recipe", {})},
           "smoke": {**defaults.get("smoke", {}), **raw.get("smoke", {})}}
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
        raw["smoke"] = Smoke(**raw["smoke"])
        spec = TaskSpec(**raw, source=source)
    except (TypeError, KeyError, AttributeError) as e:
        raise GlueRunnerError(f"task definition {source} is malformed ({e}); compare it with tasks/cola.yaml") from None
    if spec.multi_label and not (spec.label_delimiter or spec.label_columns):
        raise GlueRunnerError(f"task definition {source}: a multi_label task needs label_delimiter (the labels as a "
                              "list in one column) or label_columns (one 0/1 column per label)")
    return spec


def shared_defaults() -> dict:
    folder = resources.files("glue_runner.task_files")
    return _read_yaml(folder.joinpath("_defaults.yaml").read_text(encoding="utf-8"), "_defaults.yaml")


@cache
def registry() -> dict[str, TaskSpec]:
    folder, defaults = resources.files("glue_runner.task_files"), shared_defaults()
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


def read_task_file(path: Path) -> TaskSpec:
    if not path.expanduser().is_file():
        raise GlueRunnerError(f"task file {path} {not_a_file(path)}; give a GLUE task's name or the path of your "
                              "task file")
    path = path.expanduser().resolve()
    defaults = shared_defaults()
    spec = _parse(path.read_text(encoding="utf-8"), str(path), {k: defaults[k] for k in ("recipe", "smoke")},
                  folder=path.parent)
    if spec.name in registry():
        raise GlueRunnerError(f"task file {path} names its task '{spec.name}', which is a GLUE task's name; "
                              "rename it, so its results are never taken for GLUE's")
    return replace(spec, hub="", order=None)


def safe_task_name(text: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_") or "own"


def check_metrics(tasks: list[TaskSpec]) -> None:
    for task in tasks:
        unknown = [m for m in task.metrics if m not in KNOWN_METRICS]
        if unknown:
            raise GlueRunnerError(f"task definition {task.source}: unknown metric(s) {', '.join(unknown)}; "
                                  f"choose from {', '.join(KNOWN_METRICS)}")
