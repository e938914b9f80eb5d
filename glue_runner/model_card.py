"""--save-model's model card: <output_dir>/model/README.md, so the saved folder is ready for the Hub.

The YAML front matter is the Hub's metadata, made with huggingface_hub's own ModelCardData
and EvalResult: the base model, the dataset, and a `model-index` holding every dev score
(one result per dev split: MNLI's validation_matched and validation_mismatched). The body
says what the model was fine-tuned for, its scores and the settings that made it. All of
it comes from the run's record, what metrics.json holds.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .config import FIELDS, flag, names_path, option_of
from .model import MEAN_HEAD
from .readers import file_kind
from .tasks import TaskSpec

if TYPE_CHECKING:  # huggingface_hub is imported where it is used: it takes a third of a second
    from huggingface_hub import EvalResult, ModelCardData


def text(record: dict, task: TaskSpec) -> str:
    # a local folder's path means nothing on the Hub (and may say too much): name it, link nothing
    from huggingface_hub import ModelCard, ModelCardData

    base = None if Path(record["model"]).expanduser().exists() else record["model"]
    data = ModelCardData(
        model_name=f"{record['model_name'].split('/')[-1]}-finetuned-{task.name}",
        base_model=base, datasets=hub_datasets(record, task),
        eval_results=[eval_result(record, task, *score) for score in dev_scores(record, task)] or None,
        library_name="transformers", pipeline_tag="text-classification", tags=["glue-runner"])
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body(record, task, data, base or record['model_name'])}"))


def command(cfg: dict, base: str) -> str:
    """The glue-run command that makes the model again: every setting that changes the result and is
    not at its default (the recipe's values as resolved), files by their names only."""
    words = ["glue-run", "--model", base]
    for name, f in FIELDS.items():
        value = cfg.get(name)
        unset = value is None or value is False or (f.default is not None and value == f.default)
        if name == "model" or not option_of(f).changes_result or unset:
            continue
        if names_path(f, value):
            value = Path(value).name
        words += [flag(name)] if value is True else \
            [flag(name), ",".join(value) if isinstance(value, list) else str(value)]
    return " ".join(shlex.quote(w) for w in words)


def hub_datasets(record: dict, task: TaskSpec) -> list[str] | None:
    """The Hub's ids of the data: GLUE's, or --dataset-name's; none for your own files or a local folder."""
    name = record["config"].get("dataset_name")
    if name:
        return None if Path(name).expanduser().exists() else [name]
    return None if own_data_files(record, task) else [task.hub]


def dataset_named(cfg: dict) -> str:
    """--dataset-name as the card names it: a Hub id as it is, a local folder by its name only."""
    name = cfg["dataset_name"]
    return Path(name).name if Path(name).expanduser().exists() else name


def own_data_files(record: dict, task: TaskSpec) -> dict[str, Path]:
    """Role (train, validation) -> the file of your own data it came from: --train-file and
    --validation-file, or your task file's splits. Empty for GLUE's own data and --dataset-name's."""
    cfg = record["config"]
    if cfg.get("dataset_name"):
        return {}
    if cfg["train_file"] or cfg["validation_file"]:
        return {role: Path(cfg[f"{role}_file"]) for role in ("train", "validation") if cfg[f"{role}_file"]}
    if task.own:
        return {role: Path(task.splits[role].file) for role in ("train", "validation") if role in task.splits}
    return {}


def dev_scores(record: dict, task: TaskSpec) -> list[tuple[str, str, str, float]]:
    """(split, metric, its key in metrics.json, value) per defined dev score. A key belongs to the
    split whose metric suffix it ends with, the longest first (MNLI: accuracy_mm, validation_mismatched)."""
    splits = sorted(task.eval_splits, key=lambda s: len(task.splits[s].metric_suffix), reverse=True)
    scores = []
    for key, value in record["metrics"].items():
        split = next(s for s in splits if key.endswith(task.splits[s].metric_suffix))
        metric = key.removesuffix(task.splits[split].metric_suffix)
        if record["config"]["max_eval_samples"]:  # scored on the split's first N examples (datasets' slice syntax)
            split = f"{split}[:{record['data']['examples'][split]}]"
        if value is not None:  # undefined on this data (e.g. constant predictions)
            scores.append((split, metric, key, value))
    return scores


# the `datasets` loader that reads each kind of file
LOADERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet"}


def eval_result(record: dict, task: TaskSpec, split: str, metric: str, key: str, value: float) -> EvalResult:
    from huggingface_hub import EvalResult

    cfg, file = record["config"], own_data_files(record, task).get("validation")
    if cfg.get("dataset_name"):
        dataset = {"dataset_type": dataset_named(cfg), "dataset_name": dataset_named(cfg),
                   "dataset_config": cfg.get("dataset_config"),
                   "dataset_revision": cfg.get("dataset_revision")}
    elif file:  # own data: named by its file and the loader that reads it
        dataset = {"dataset_type": LOADERS.get(file_kind(file), "csv"), "dataset_name": file.name}
    else:
        dataset = {"dataset_type": task.hub, "dataset_name": f"GLUE {task.glue_dir}", "dataset_config": task.name}
    return EvalResult(task_type="text-classification", task_name="Text Classification", dataset_split=split,
                      metric_type=metric, metric_name=key, metric_value=value, **dataset)


def body(record: dict, task: TaskSpec, data: ModelCardData, base: str) -> str:
    cfg, files = record["config"], own_data_files(record, task)
    if cfg.get("dataset_name"):
        config = f", config `{cfg['dataset_config']}`" if cfg.get("dataset_config") else ""
        held = f", {cfg['validation_split_percentage']:g}% of its training split held out as the dev set" \
            if cfg.get("validation_split_percentage") else ""
        source = f"the dataset `{dataset_named(cfg)}`{config}{held}, for the task `{task.name}`"
    elif files:
        named = ", ".join(f"{role} `{file.name}`" for role, file in files.items())
        source = f"own data ({named}) for " + (f"the task `{task.name}`" if task.own else
                                               f"the GLUE {task.glue_dir} task")
    else:
        source = f"GLUE {task.glue_dir} (`{task.hub}`, config `{task.name}`" + \
                 (", read from the original GLUE TSV files)" if cfg["data_dir"] else ")")
    made = f"fine-tuned from `{base}` on {source}" if record["train"] else f"`{base}`, not trained further by this run"
    lines = [f"# {data.model_name}", "", f"This model is {made}: {task.description}.", "", "## Dev results", ""]
    scores = dev_scores(record, task)
    if scores:
        lines += ["| split | metric | value |", "|---|---|---|"]
        lines += [f"| {split} | {key} | {value:.4f} |" for split, _, key, value in scores]
        if record.get("baseline"):
            lines += ["", f"Baseline, predicting {record['baseline']['predictor']}: " + ", ".join(
                f"{key} {value:.4f}" for key, value in record["baseline"]["metrics"].items()) + "."]
    else:
        lines += ["No dev set was scored."]
    lines += ["", "## How it was made", "",
              f"With glue-runner {__version__}:", "", "```bash", command(cfg, base), "```", "",
              "| setting | value |", "|---|---|"]
    lines += [f"| {flag(name)} | {cfg[name]} |" for name, f in FIELDS.items()
              if option_of(f).card and cfg.get(name) is not None]
    for why in (record.get("chosen") or {}).get("why", []):  # what trained where defaults.py fitted the given values
        setting, reason = why.split(": ", 1)
        lines += [f"| trained with {setting} | {reason} |"]
    threshold = record.get("details", {}).get("threshold")
    if threshold:  # saved in config.json as multi_label_threshold too
        chosen = f" (chosen on the {threshold['chosen_on']} split)" if threshold["chosen_on"] else ""
        lines += [f"| multi-label threshold | {threshold['value']:g}{chosen} |"]
    precision = record.get("precision") or ("fp16" if cfg["fp16"] else "bf16" if cfg["bf16"] else "float32")  # older runs
    lines += [f"| precision | {precision} |",
              f"| training examples | {record['data']['examples'].get('train', 0)} |"]
    if record["train"]:
        lines += ["", f"Training took {record['train']['steps']} optimizer steps on {record['device']}."]
    return "\n".join(lines + usage(record, task)) + "\n"


def usage(record: dict, task: TaskSpec) -> list[str]:
    """How to predict with the saved model: glue-run predict, which reads as the run read, or transformers'
    pipeline, which cuts a long text as the run did only when asked to (truncation=True), and never at both ends."""
    cfg = record["config"]
    pair = len(task.text_fields) == 2
    call = 'classify({"text": first, "text_pair": second}' if pair else "classify(text"
    call += ", top_k=None)" if task.multi_label else ")"
    lines = ["", "## How to use", "", "```bash", "glue-run predict --model <this folder> --input new.csv", "```"]
    if cfg.get("few_shot") or (record.get("chosen") or {}).get("few_shot"):
        return lines + ["", "This model was trained with few examples a class (`--few-shot`): its outputs come from a "
                        "linear head on the mean of the encoder's last-layer token vectors, saved as "
                        f"`{MEAN_HEAD}`. glue-run reads it; transformers' classes do not, so a pipeline on this "
                        "folder would use the classification head it was loaded with, which was never trained."]
    lines += ["", "or with transformers:", "", "```python", "from transformers import pipeline", "",
             'classify = pipeline("text-classification", model="<this folder>", truncation=True)',
             call + (f"  # the labels scored above {record['details']['threshold']['value']:g}, the run's threshold"
                     if task.multi_label and record.get("details", {}).get("threshold") else ""),
             "```", "",
             f"`truncation=True` cuts a text longer than {cfg['max_seq_length']} tokens as the run did (the tokenizer's "
             "`model_max_length`" + (", from its end" if cfg["truncation"] == "tail" else "") + "); without it a "
             "pipeline reads the whole text, up to the model's positions."]
    if cfg["truncation"] == "head+tail":
        lines += ["This model was trained on the start and the end of long texts (`--truncation head+tail`), "
                  "which a pipeline cannot cut: it keeps the start. `glue-run predict` reads as the run did."]
    return lines
