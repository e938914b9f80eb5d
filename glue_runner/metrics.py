"""Score predictions with the GLUE metric for a task.

The metric definitions live in glue_metric/glue_metric.py, an `evaluate`
module shipped inside the package and loaded by path, so scoring never needs
the Hugging Face Hub (evaluate.load("glue") does).
"""

from functools import lru_cache
from pathlib import Path

import evaluate

_METRIC_DIR = Path(__file__).parent / "glue_metric"


@lru_cache(maxsize=None)
def _load(task_metric: str) -> evaluate.EvaluationModule:
    # Loading copies and imports the module, so do it once per config.
    # keep_in_memory: no Arrow cache files or lock files on disk per compute.
    return evaluate.load(str(_METRIC_DIR), task_metric, keep_in_memory=True)


def compute_metrics(task_metric: str, predictions, references) -> dict[str, float]:
    """Return the GLUE metric(s) for `task_metric` (a config name such as "mrpc").

    Raises KeyError naming the valid configs when `task_metric` is unknown.
    """
    result = {k: float(v) for k, v in _load(task_metric).compute(predictions=predictions, references=references).items()}
    # Tasks with two metrics (mrpc/qqp: f1, accuracy; stsb: pearson, spearmanr)
    # also get their mean, as transformers' run_glue.py reports it.
    if len(result) > 1:
        result["combined_score"] = sum(result.values()) / len(result)
    return result
