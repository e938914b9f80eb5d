"""The command line: flags -> one RunConfig per task and seed -> run.run_all.

    glue-run --task cola --model bert-base-uncased
    glue-run --task cola,sst2 --seeds 1,2,3 --data-dir glue_data --model ./my-model
    glue-run --task all --do-predict ...          (also a GLUE submission zip)
    glue-run --task rte,mrpc --grid learning_rate=2e-5,3e-5,5e-5 batch_size=16,32 ...   (each task's best point)
    glue-run --task all --smoke --expect cola:matthews_correlation>=0.1 ...            (a CI gate: exit 3 if missed)
    glue-run leaderboard [--results-dir results] [--model A,B] [--task cola,sst2] [--since 2025-01-01] [--reference]
    glue-run compare A B [--results-dir results] [--task cola,sst2] [--markdown FILE]
    glue-run validate-submission results/submissions/<model>-seed<seed> [--data-dir D]

RunConfig is the one place a setting is declared: its flag, help, default, bounds and
whether it changes the result (and so must match for a run to resume). The parser, the
bounds check and the resume comparison are all derived from it, as HfArgumentParser
derives run_glue's flags from its dataclasses. Adding a setting is adding a field.
"""

import argparse
import dataclasses
import math
import os
import sys
import types
import typing
from dataclasses import MISSING, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from .data import is_task_file
from .errors import GlueRunnerError, Interrupted


def option(default, help: str, *, group: str, flags: tuple[str, ...] = (), minimum=None, above=None, below=None,
           maximum=None, changes_result: bool = True, fallback=None, choices=None, local_path=None,
           own_data: str | None = None, card: bool = False, fine_tuning: bool = False):
    """A RunConfig field with what the parser and the checks need to know about it.

    A default of MISSING makes the flag required. minimum/above/below/maximum: the bounds of a
    number (at least, more than, less than, at most). changes_result: part of the run's identity,
    so a run may resume, or count as already done, only if this setting is unchanged (False for
    where outputs go, how often to log, ...). fallback: for recipe settings (default None), the
    value when neither the flag nor the task's recipe sets one. local_path: for a text setting
    that may name a file or folder, whether a value does (Path settings always do); the run's
    identity holds such a path made absolute. own_data: a setting that describes your own data
    files, "files" (usable with a GLUE task too) or "labels" (only for a task of your own). card:
    --save-model's model card lists it among the settings that made the model. fine_tuning: it
    shapes gradient training only, so it means nothing to --probe's linear head.
    """
    return field(default=default, metadata={
        "help": help, "group": group, "flags": flags, "minimum": minimum, "above": above, "below": below,
        "maximum": maximum, "changes_result": changes_result, "fallback": fallback, "choices": choices,
        "local_path": local_path, "own_data": own_data, "card": card, "fine_tuning": fine_tuning})


def exists(path: str) -> bool:
    return Path(path).expanduser().exists()


SUBCOMMAND_HELP = """other commands (each has its own --help):
  glue-run leaderboard [--results-dir results] [--model A,B] [--task cola,sst2] [--since DATE] [--reference]
      one row per model over the runs in a results folder, with the GLUE score; writes .md, .csv, .png
  glue-run compare A B [--results-dir results] [--task cola,sst2] [--markdown FILE]
      is B really better than A? per task and for the GLUE score: difference with its 95% interval,
      a test across seeds, a paired bootstrap over the dev examples, and a verdict in plain words
  glue-run validate-submission FOLDER [--data-dir D]
      check a GLUE submission folder before uploading it to gluebenchmark.com"""

GROUPS = {
    "model": "model",
    "data": "data (default: the Hugging Face Hub, nyu-mll/glue)",
    "training": "training (default: the task's recipe in tasks/, else run_glue's defaults)",
    "hardware": "hardware",
    "outputs": "outputs",
    "checkpoints": "checkpoints (in the run's folder; a finished run deletes its own)",
    "adaptation": "adapting the language model first (masked-LM training on the texts, then fine-tuning from it)",
}


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
    trust_remote_code: bool = option(False, "allow a Hub model to run its own Python code (only for models you "
                                            "trust)", group="model", changes_result=False)
    # data: the Hub by default, else a GLUE folder, else the user's own files
    data_dir: Path | None = option(None, "a folder in the original GLUE TSV layout (CoLA/train.tsv, ...)", group="data")
    train_file: Path | None = option(None, "your own training data: .csv, .tsv or .jsonl", group="data",
                                     own_data="files")
    validation_file: Path | None = option(None, "your own dev data, scored after each epoch", group="data",
                                          own_data="files")
    test_file: Path | None = option(None, "your own test data, predicted with --do-predict", group="data",
                                    own_data="files")
    text_columns: tuple[str, ...] | None = option(None, "comma list of the text column(s) in your own files",
                                                  group="data", own_data="files")
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
    cache_dir: Path | None = option(None, "where tokenized data and downloads are cached", group="data",
                                    changes_result=False)
    # optimisation: None means the task's recipe, else the fallback (run_glue.py's defaults,
    # so a bare glue-run behaves like the script people know)
    learning_rate: float | None = option(None, "peak learning rate of AdamW", group="training", above=0,
                                         fallback=2e-5, card=True, fine_tuning=True)
    num_train_epochs: float | None = option(None, "passes over the training data (0: score the model as it is, "
                                                  "recorded as untrained)", group="training", minimum=0, fallback=3.0,
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
    bf16: bool = option(False, "bfloat16 autocast", group="hardware")
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
    report_to: str = option("none", "also log the loss, learning rate, samples/s and dev scores to a tracker: "
                                    "tensorboard writes <output dir>/tensorboard/", group="outputs",
                            choices=("none", "tensorboard"), changes_result=False)
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
            fallback = f.metadata["fallback"]
            if fallback is not None and getattr(self, f.name) is None:
                values[f.name] = type(fallback)(recipe.get(f.name, fallback))
        return dataclasses.replace(self, **values)

    def identity(self) -> dict:
        """What decides the run's result, as JSON: every setting that changes it, with the model's
        and the data's local paths made absolute (a folder's last part names many models).
        Runs with the same identity are the same run: it must match to resume, and a finished
        run with it is already done."""
        identity = {k: v for k, v in self.to_json().items() if FIELDS[k].metadata["changes_result"]}
        for key, value in identity.items():
            if value and names_path(FIELDS[key], value):
                identity[key] = str(Path(value).expanduser().resolve())
        return identity

    def overrides(self) -> dict:
        """The recipe settings given as flags (asked of a config not yet resolved): they, the model and
        the other settings make a leaderboard row, whatever each task's recipe is."""
        return {k: v for k, v in self.to_json().items() if FIELDS[k].metadata["fallback"] is not None and v is not None}

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
OWN_DATA = [f.name for f in dataclasses.fields(RunConfig) if f.metadata["own_data"]]  # what makes your own task


def names_path(f: dataclasses.Field, value) -> bool:
    """Whether this setting's value names a file or folder on this machine."""
    return value_type(f) is Path or bool(f.metadata["local_path"] and f.metadata["local_path"](value))


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def value_type(f: dataclasses.Field):
    """The type a flag's text converts to: the annotation, less its `| None`."""
    if isinstance(f.type, types.UnionType):
        return next(t for t in typing.get_args(f.type) if t is not type(None))
    return f.type


def add_field(parser, f: dataclasses.Field) -> None:
    meta, kind = f.metadata, value_type(f)
    names = meta["flags"] or (flag(f.name),)
    help_text = meta["help"] + default_text(f)
    if kind is bool and f.default is None:
        parser.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
    elif kind is bool:
        parser.add_argument(*names, dest=f.name, action="store_false" if f.default else "store_true", help=help_text)
    else:
        parser.add_argument(*names, dest=f.name, type=converter(f), choices=meta["choices"], help=help_text,
                            required=f.default is MISSING, default=None if f.default is MISSING else f.default)


def converter(f: dataclasses.Field):
    """What turns a flag's text into its value (argparse's type=; --grid's values too)."""
    kind = value_type(f)
    return comma_list if typing.get_origin(kind) is tuple else kind


def default_text(f: dataclasses.Field) -> str:
    """What --help says of a flag's default: nothing for switches, which are off unless given."""
    if f.metadata["fallback"] is not None:
        return f" (default: the task's recipe, else {f.metadata['fallback']})"
    if f.default is MISSING or f.default is None or isinstance(f.default, bool):
        return ""
    return f" (default: {f.default})"


def comma_list(text: str) -> tuple[str, ...]:
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    if not items:
        raise argparse.ArgumentTypeError("expected a comma list of names")
    return items


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="glue-run", description="Fine-tune and evaluate a model on GLUE tasks.",
                                epilog=SUBCOMMAND_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    groups = {name: p.add_argument_group(title) for name, title in GROUPS.items()}
    for f in dataclasses.fields(RunConfig):
        add_field(groups[f.metadata["group"]], f)
    groups["training"].add_argument("--seeds", help="comma list of seeds: repeat every task once per seed")
    sweep = p.add_argument_group("sweeps: a search over settings, and checks for CI")
    sweep.add_argument("--grid", nargs="+", action="extend", metavar="NAME=V1,V2",
                       help="try every combination of these settings (names as in RunConfig, dashes allowed; any "
                            "setting that changes the result; several items, or repeat the flag) for every task "
                            "and seed; each task's point with the best dev score (its metrics' mean, over the "
                            "seeds) is selected, and <results-dir>/grids/ records the selection and the full grid. "
                            "--do-predict submits the selected points")
    sweep.add_argument("--expect", action="append", metavar="TASK:METRIC>=X",
                       help="a bound the sweep must meet (also >, <=, <; a comma list, or repeat the flag) on a dev "
                            "metric as metrics.json records it (0 to 1), mean over the seeds; with --grid, of the "
                            "task's selected point. Checked after the sweep: exit 3 if any is missed (2 is bad input)")
    sweep.add_argument("--expect-file", type=Path, metavar="FILE",
                       help="--expect's bounds from a file, one a line (or a comma list); # starts a comment")
    sweep.add_argument("--smoke", action="store_true",
                       help="a CI smoke-test preset: " + ", ".join(f"{flag(k)} {v:g}" for k, v in SMOKE.items())
                            + ", each unless a flag or --grid sets it. They come before the task's recipe (CoLA's "
                              "10 epochs become 1); the recipe still sets the rest (learning rate, batch size, "
                              "warm-up). Its runs are subsets, and the tables say so")
    return p


# --smoke: every task end to end in minutes on a CPU with a small model, enough to catch a broken pipeline
SMOKE = {"max_train_samples": 256, "max_eval_samples": 256, "num_train_epochs": 1.0}


def check_bounds(cfg: RunConfig) -> None:
    """Every number within its field's bounds, and finite: said before anything is loaded."""
    for f in dataclasses.fields(cfg):
        value, meta = getattr(cfg, f.name), f.metadata
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if isinstance(value, int) and not -2**63 <= value < 2**63:  # torch and numpy take 64-bit integers
            shown = str(value) if len(str(value)) <= 24 else f"a number of {len(str(abs(value)))} digits"
            raise GlueRunnerError(f"{flag(f.name)} must be at most {2**63 - 1} (a 64-bit integer), not {shown}")
        bounds = [f"at least {meta['minimum']}" if meta["minimum"] is not None else None,
                  f"more than {meta['above']}" if meta["above"] is not None else None,
                  f"less than {meta['below']}" if meta["below"] is not None else None,
                  f"at most {meta['maximum']}" if meta["maximum"] is not None else None]
        inside = (math.isfinite(value) and (meta["minimum"] is None or value >= meta["minimum"])
                  and (meta["above"] is None or value > meta["above"]) and (meta["below"] is None or value < meta["below"])
                  and (meta["maximum"] is None or value <= meta["maximum"]))
        if not inside:
            wanted = " and ".join(b for b in bounds if b) or "a finite number"
            raise GlueRunnerError(f"{flag(f.name)} must be {wanted}, not {value:g}")


NAME_MAX = 255  # bytes in one file or folder name (Linux, macOS; Windows counts 255 characters)


def check_paths(cfg: RunConfig) -> None:
    """Every path flag (and --model, a folder or a Hub name) names a path this machine can look up
    and the libraries can open, and --model-name a folder it can make: said before anything is
    loaded, not as a traceback from the first look at the disk or from inside a library."""
    from .results import safe_name

    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if value is None or not (value_type(f) is Path or f.metadata["local_path"]):
            continue
        name = (f.metadata["flags"] or (flag(f.name),))[0]
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


def parse_list(text: str, what: str, convert=str) -> list:
    try:
        items = [convert(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError:
        raise GlueRunnerError(f"--{what} '{text}' is not a comma list of {convert.__name__}s") from None
    if not items:
        raise GlueRunnerError(f"--{what} is empty")
    return items


def configs_from_args(args: argparse.Namespace, grid=None) -> list[RunConfig]:
    """One RunConfig per (task, seed, grid point), in GLUE order, seed by seed, point by point; but
    each AX run comes right after the MNLI run of its seed and point, whose model predicts it, so
    that model is freed at once. grid: a sweeps.Grid, or None (one point: the flags as given)."""
    from .data import get_task, glue_tasks, task_for

    common = {k: v for k, v in vars(args).items() if k in FIELDS and k not in ("task", "seed", "output_dir")}
    check_combinations(common, grid)
    if args.smoke:  # only what no flag sets (a grid point sets its own below); cfg.resolved's recipe comes after
        common.update({k: v for k, v in SMOKE.items() if common[k] is None})
    # --probe trains a head on each task's training data: all tasks but AX, which has none
    names = [t.name for t in glue_tasks() if not (args.probe and t.predict_with)] \
        if args.task.strip().lower() == "all" else \
        parse_list(args.task, "task") if args.task else [""]
    tasks = {}  # the task as given (a GLUE name, a task file, or "": read from the files) -> its TaskSpec
    for name in names:
        task = task_for(RunConfig(task=name, **common))
        tasks.setdefault(task.name if not task.own else name, task)
    check_tasks(common, tasks)
    seeds = list(dict.fromkeys(parse_list(args.seeds, "seeds", int))) if args.seeds else [args.seed]  # 1,1: once
    points = grid.points() if grid else [{}]

    def order(given: str, seed: int, point: int) -> tuple:
        task = tasks[given]
        return (get_task(task.predict_with).order if task.predict_with else task.order or 0, seeds.index(seed), point,
                bool(task.predict_with))

    runs = sorted(((given, seed, i) for given in tasks for seed in seeds for i in range(len(points))),
                  key=lambda r: order(*r))
    configs = []
    for given, seed, i in runs:
        out = (args.output_dir / f"{tasks[given].name}-seed{seed}" if len(runs) > 1 and args.output_dir
               else args.output_dir)
        configs.append(RunConfig(task=given, seed=seed, output_dir=out, **{**common, **points[i]}))
    for cfg in configs:
        check_bounds(cfg)
        check_paths(cfg)
    return configs


def check_tasks(common: dict, tasks: dict) -> None:
    """Settings that the sweep's tasks (the task as given -> its TaskSpec) make meaningless."""
    if common["probe"] and any(task.predict_with for task in tasks.values()):
        raise GlueRunnerError("--probe trains a head for each task on its own training data, and AX has none; "
                              "drop ax from --task")
    if (common["tune_threshold"] or common["threshold"] != FIELDS["threshold"].default) and \
            not all(task.multi_label for task in tasks.values()):
        raise GlueRunnerError(f"--threshold and --tune-threshold are for multi-label tasks, and "
                              f"{', '.join(t.name for t in tasks.values() if not t.multi_label)} is not one; drop them")
    # --text-columns, --label-column: where your files hold what
    columns = [flag(n) for n in OWN_DATA if FIELDS[n].metadata["own_data"] == "files"
               and value_type(FIELDS[n]) is not Path and common[n] != FIELDS[n].default]
    task_files = [given for given in tasks if is_task_file(given)]
    if columns and (task_files or not any(common[n] for n in OWN_DATA if value_type(FIELDS[n]) is Path)):
        raise GlueRunnerError(f"{', '.join(columns)} name{'s' if len(columns) == 1 else ''} columns of your own files, "
                              + (f"and your task file {task_files[0]} names its own; drop them" if task_files else
                                 "but no --train-file, --validation-file or --test-file is given; drop them, or give "
                                 "the files"))
    own_only = [name for name in OWN_DATA if FIELDS[name].metadata["own_data"] == "labels" and common[name] is not None]
    glue = [task.name for task in tasks.values() if not task.own]
    if own_only and glue:
        raise GlueRunnerError(f"{', '.join(flag(f) for f in own_only)} describe your own data's labels, but "
                              f"{', '.join(glue)} has GLUE's; drop them, or leave out --task to read a task from "
                              "your files")


def check_combinations(given: dict, grid=None) -> None:
    """Settings that the others given make meaningless are an error, not ignored: each would
    still make a run of its own, with the same result as without it."""
    given = {k: v for k, v in given.items() if v != FIELDS[k].default} | dict.fromkeys(grid.axes if grid else ())
    if "probe" in given:
        unused = [flag(k) for k in given if FIELDS[k].metadata["fine_tuning"]] + \
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
    if "fp16" in given and "bf16" in given:
        raise GlueRunnerError("--fp16 and --bf16 exclude each other; pick one")
    adapt = [flag(k) for k in given if FIELDS[k].metadata["group"] == "adaptation" and k != "adapt_lm"]
    if adapt and "adapt_lm" not in given:
        raise GlueRunnerError(f"{', '.join(adapt)} set the language-model adaptation, which runs only with --adapt-lm; "
                              "add --adapt-lm task (or a text file), or drop them")


EXPECTATION_MISSED = 3  # --expect: the sweep ran, and missed a bound (2 is bad input)


def main(argv: list[str] | None = None) -> int:
    console = Console(stderr=True)
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in SUBCOMMANDS:
        return run_subcommand(argv[0], argv[1:], console)
    if argv and not argv[0].startswith("-"):  # glue-run's own flags take no words before them
        import difflib

        near = difflib.get_close_matches(argv[0], SUBCOMMANDS, n=1)
        return report_error(GlueRunnerError(
            f"'{argv[0]}' is not a glue-run command" + (f"; did you mean {near[0]}?" if near else "") +
            f" The commands are {', '.join(SUBCOMMANDS)}, and glue-run --task ... --model ... runs a task "
            "(glue-run --help)"), console)
    parser = build_parser()
    args = parser.parse_args(argv)
    for name, value in vars(args).items():
        if value == []:  # Python 3.11's argparse reads --flag=-- as [], and calls no type on it
            parser.error(f"argument {flag(name)}: expected one argument")
    try:
        from . import sweeps

        grid = sweeps.parse_grid(args)
        configs = configs_from_args(args, grid)  # a bad flag value is said here, before anything loads
        from .data import task_for

        bounds = sweeps.parse_bounds(args.expect, args.expect_file, [task_for(c) for c in configs])
        check_sweep(configs, console)
        quiet_libraries()
        from .run import run_all

        outcomes = run_all(configs, console, grid)
        if bounds and not sweeps.check_expected(bounds, sweeps.chosen_runs(configs, outcomes, grid), console):
            return EXPECTATION_MISSED
    except GlueRunnerError as e:
        return report_error(e, console)
    except Interrupted as e:
        console.print(f"[yellow]{e}[/]", highlight=False, soft_wrap=True)
        return 128 + e.signum
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; finished runs are kept, the current one wrote no results "
                      "(the same command resumes it from its newest checkpoint, if it saved one)[/]")
        return 130
    return 0


def check_sweep(configs: list[RunConfig], console: Console) -> None:
    """What can be checked for every run of the sweep before the libraries and any model load:
    the device it asks for is there, its data files are there, its folder (and --cache-dir) can be written
    and is not in use by another glue-run, your own files' labels fit the task, and the Hub answers if it
    is needed. Says which runs are already done."""
    from . import data, results, trackers

    if any(cfg.device == "cuda" or cfg.fp16 for cfg in configs):  # only these can ask for a GPU that is not there
        from .train import device_type  # loads torch, to look

        for cfg in configs:
            device_type(cfg)
    check_data_present(configs)
    done = 0
    for cfg in configs:
        task = data.task_for(cfg)
        resolved = cfg.resolved(task.recipe)
        if cfg.adapt_lm and not any(c.task == task.predict_with for c in configs):  # AX: its MNLI run adapts
            data.check_adapt_texts(task, resolved)
        if resolved.do_predict or not task.train_split:
            data.check_test_data(task, resolved)
        plan = results.plan(resolved, task.name)
        if not plan.done or cfg.overwrite:  # a finished run is only read: another glue-run in it is no matter
            results.check_not_in_use(plan.folder)
            results.check_writable(cfg.results_dir, "--results-dir")  # its tables are rewritten when the run ends
        if cfg.cache_dir:  # tokenized data is written there once the model has loaded
            results.check_writable(cfg.cache_dir, "--cache-dir")
        if plan.done and not cfg.overwrite and resolved.do_predict and task.train_split:
            unpredicted = [s for s in task.test_splits if not (plan.folder / f"predictions_{s}.tsv").is_file()]
            if unpredicted:
                raise GlueRunnerError(f"{plan.folder} is already done, without test predictions (it ran without "
                                      "--do-predict), and a finished run keeps no model to predict with; pass "
                                      "--overwrite to run it again with --do-predict")
        done += bool(plan.done and not cfg.overwrite)
    if done:
        console.print(f"{done} of {len(configs)} run(s) already done: skipped (--overwrite redoes them)")
    if any(cfg.report_to == "tensorboard" for cfg in configs):
        trackers.check_installed()
    offline_if_unreachable(configs, console)
    for cfg in configs:
        task = data.task_for(cfg)
        if task.own or data.own_files(cfg):  # their labels are checked now, not after the model has loaded
            data.load_splits(task, cfg, log=lambda *a, **k: None, with_test=cfg.do_predict)
    outside = [c for c in configs if c.output_dir and not Path(c.output_dir).resolve().is_relative_to(
        Path(c.results_dir).resolve())]
    if outside:
        console.print(f"note: --output-dir {outside[0].output_dir} is outside --results-dir {outside[0].results_dir}, "
                      "so runs.md and the leaderboard there will not list it", highlight=False, soft_wrap=True)


def check_data_present(configs: list[RunConfig]) -> None:
    """Every task's data files are there: all that are missing said at once (--task all over a folder
    of four tasks names the five others, not one a run), with the tasks that could run."""
    from . import data

    missing, tasks = {}, {}  # task name -> None: the tasks in sweep order, once each
    for cfg in configs:
        task = data.task_for(cfg)
        tasks[task.name] = None
        try:
            data.split_files(task, cfg.resolved(task.recipe), with_test=False)
        except GlueRunnerError as e:
            missing.setdefault(task.name, str(e))
    if len(missing) == 1:
        raise GlueRunnerError(next(iter(missing.values())))
    if missing:
        present = [t for t in tasks if t not in missing]
        raise GlueRunnerError(f"{len(missing)} of the {len(tasks)} tasks have no data: " + "; ".join(missing.values())
                              + (f". The others can run: --task {','.join(present)}" if present else ""))


def offline_if_unreachable(configs: list[RunConfig], console: Console) -> None:
    """Without internet, the Hugging Face libraries retry for a minute before failing; when a run
    needs the Hub and it does not answer, tell them to use their local cache at once (they read
    this when they are imported, so it is done first). Behind a proxy a direct probe says nothing."""
    import socket
    from urllib.parse import urlparse

    from .data import own_files, task_for

    hub_model = any(not Path(c.model).expanduser().exists() for c in configs)
    hub_data = any(c.data_dir is None and not own_files(c) and not task_for(c).own for c in configs)
    proxied = any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"))
    if not (hub_model or hub_data) or os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "") or proxied:
        return
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or (80 if endpoint.scheme == "http" else 443)),
                                 timeout=3).close()
    except OSError:
        os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"
        console.print(f"[yellow]{endpoint.hostname} cannot be reached: models and data come from the local cache "
                      "only[/]", highlight=False)


def quiet_libraries() -> None:
    # Their progress bars and load reports would bury glue-run's own progress.
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def report_error(e: GlueRunnerError, console: Console) -> int:
    # escaped: a message's own brackets (pip install "glue-runner[tensorboard]", nyu-mll/glue/cola[train]) are text
    console.print(f"[bold red]error:[/] {escape(printable(str(e)))}", highlight=False, soft_wrap=True)
    return 2


def printable(text: str) -> str:
    """text with what would break its line or garble a terminal escaped: newlines and other control
    characters, and bytes that are not UTF-8 (a value the message quotes may hold any of them)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def leaderboard_command(argv: list[str], console: Console) -> int:
    from .leaderboard import parse_since, show

    p = argparse.ArgumentParser(prog="glue-run leaderboard",
                                description="One row per model (mean ± std over seeds) in the GLUE leaderboard's "
                                            "columns, with the GLUE score; writes leaderboard.md/.csv/.png there.")
    p.add_argument("--results-dir", type=Path, default=FIELDS["results_dir"].default,
                   help="the folder whose runs to read (default: %(default)s)")
    p.add_argument("--model", help="comma list of model names, as in runs.md")
    p.add_argument("--task", help="comma list of tasks to show; the GLUE score is then over those")
    p.add_argument("--since", help="only runs from this date on (YYYY-MM-DD, UTC)")
    p.add_argument("--reference", action="store_true",
                   help="add rows of published dev-set numbers (BERT-base, DistilBERT, MiniLM, ELECTRA-Small)")
    args = p.parse_args(argv)
    check_results_dir(args.results_dir)
    show(console, args.results_dir,
         models=parse_list(args.model, "model") if args.model else None,
         tasks=parse_list(args.task, "task") if args.task else None,
         since=parse_since(args.since) if args.since else None, reference=args.reference)
    return 0


def compare_command(argv: list[str], console: Console) -> int:
    from .compare import show

    p = argparse.ArgumentParser(prog="glue-run compare",
                                description="Is model B better than model A? Per task and on the GLUE score: B - A "
                                            "over seeds with a 95% interval, a permutation test, ASO, a paired "
                                            "bootstrap over the dev examples, and a verdict.")
    p.add_argument("a", help="model A (the baseline): a row of leaderboard.md, or a model name in runs.md that "
                             "has one row")
    p.add_argument("b", help="model B, named as A")
    p.add_argument("--results-dir", type=Path, default=FIELDS["results_dir"].default,
                   help="the folder whose runs to read (default: %(default)s)")
    p.add_argument("--task", help="comma list of tasks to compare; the GLUE score is then over those")
    p.add_argument("--markdown", type=Path, help="also write the comparison to this Markdown file")
    args = p.parse_args(argv)
    check_results_dir(args.results_dir)
    if args.markdown:
        from .results import check_writable

        if args.markdown.is_dir():
            raise GlueRunnerError(f"--markdown {args.markdown} is a folder; give the file to write, e.g. "
                                  f"{args.markdown / 'compare.md'}")
        check_writable(args.markdown.parent, "--markdown")
    show(console, args.results_dir, args.a, args.b, tasks=parse_list(args.task, "task") if args.task else None,
         markdown_file=args.markdown)
    return 0


def check_results_dir(folder: Path) -> None:
    """A results folder to read is there (a misspelled one is not made, empty, by reading it)."""
    if not folder.is_dir():
        why = "is a file, not a folder" if folder.exists() else "does not exist"
        raise GlueRunnerError(f"--results-dir {folder} {why}; give the folder your runs wrote to (--results-dir of "
                              "glue-run, results by default)")


def validate_command(argv: list[str], console: Console) -> int:
    from . import submission

    p = argparse.ArgumentParser(prog="glue-run validate-submission",
                                description="Check a GLUE submission folder: all files, headers, labels, row counts.")
    p.add_argument("folder", type=Path, help="the submission folder (results/submissions/<model>-seed<seed>)")
    p.add_argument("--data-dir", type=Path, help="GLUE folder whose test files give the row counts (default: the Hub)")
    p.add_argument("--cache-dir", type=Path, help="where downloads from the Hub are cached")
    args = p.parse_args(argv)
    present = [n for n in submission.submission_files() if (args.folder / n).is_file()]
    cfg = RunConfig(task="", model="", data_dir=args.data_dir, cache_dir=args.cache_dir)
    problems = submission.validate(args.folder, submission.expected_rows(cfg, present))
    if problems:
        raise GlueRunnerError(f"{args.folder} is not a valid GLUE submission: {'; '.join(problems)}")
    console.print(f"[green]{args.folder} is a valid GLUE submission[/]")
    return 0


SUBCOMMANDS = {"leaderboard": leaderboard_command, "compare": compare_command, "validate-submission": validate_command}


def run_subcommand(name: str, argv: list[str], console: Console) -> int:
    try:
        return SUBCOMMANDS[name](argv, console)
    except GlueRunnerError as e:
        return report_error(e, console)


if __name__ == "__main__":
    sys.exit(main())
