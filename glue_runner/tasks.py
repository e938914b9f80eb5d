"""The task registry: one YAML file per GLUE task in tasks/, read into TaskSpec."""

from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import yaml

from .errors import GlueRunnerError


@dataclass(frozen=True)
class TaskSpec:
    name: str
    description: str
    metric: str  # config name of glue_runner/glue_metric
    text_fields: tuple[str, ...]  # one field: single sentence; two: a pair
    hub: dict
    glue_dir: str
    splits: dict[str, str]  # split name -> file in glue_dir
    columns: dict[str, str | int]  # our column -> header name (or index when no header)
    test_columns: dict[str, str | int]
    label_names: tuple[str, ...] = ()
    regression: bool = False
    metric_suffix: dict[str, str] = field(default_factory=dict)
    predict_with: str | None = None  # AX: predictions come from an MNLI model
    recipe: dict = field(default_factory=dict)
    # GLUE leaderboard submission: test split -> file name in the zip, and whether predictions
    # are written as label names ("names") or as the label's position in label_names ("index")
    submission: dict[str, str] = field(default_factory=dict)
    submission_labels: str = "index"

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


def _parse(text: str, source: str) -> TaskSpec:
    # safe_load: a task file is data, never code (a !!python/object tag is refused).
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise GlueRunnerError(f"task definition {source} is not plain YAML data ({str(e).splitlines()[0]})") from None
    try:
        raw["text_fields"] = tuple(raw["text_fields"])
        raw["label_names"] = tuple(raw.get("label_names", ()))
        return TaskSpec(**raw)
    except (TypeError, KeyError) as e:
        raise GlueRunnerError(f"task definition {source} is malformed ({e}); compare it with tasks/cola.yaml") from None


@cache
def registry() -> dict[str, TaskSpec]:
    specs = {}
    for entry in resources.files("glue_runner.task_files").iterdir():
        if entry.name.endswith(".yaml"):
            spec = _parse(entry.read_text(encoding="utf-8"), entry.name)
            specs[spec.name] = spec
    return specs


# The order of the GLUE leaderboard's columns; also the order of --task all.
GLUE_ORDER = ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli", "ax"]


def get_task(name: str) -> TaskSpec:
    tasks = registry()
    key = name.lower().replace("-", "")
    if key not in tasks:
        raise GlueRunnerError(f"unknown task '{name}'; choose one of: {', '.join(GLUE_ORDER)}")
    return tasks[key]
