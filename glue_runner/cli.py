"""The command line: flags -> session.py (one RunConfig per task and seed, checked, then run) -> results/.

    glue-run --task cola --model bert-base-uncased
    glue-run --task cola,sst2 --seeds 1,2,3 --data-dir glue_data --model ./my-model
    glue-run --task all --do-predict ...          (also a GLUE submission zip)
    glue-run --task rte,mrpc --grid learning_rate=2e-5,3e-5,5e-5 batch_size=16,32 ...   (each task's best point)
    glue-run --task all --smoke --expect cola:matthews_correlation>=0.1 ...            (a CI gate: exit 3 if missed)
    glue-run leaderboard [--results-dir results] [--model A,B] [--task cola,sst2] [--since 2025-01-01] [--reference]
    glue-run compare A B [--results-dir results] [--task cola,sst2] [--markdown FILE]
    glue-run validate-submission results/submissions/<model>-seed<seed> [--data-dir D]
    glue-run predict --model results/runs/<model>/<task>-seed<seed> --input new.csv [--output preds.csv]

The parser is built from RunConfig's fields (config.py), as HfArgumentParser builds
run_glue's flags from its dataclasses: each field's Option gives its flag, help, default,
choices and group. The subcommands read a results folder or check a submission.
"""

import argparse
import dataclasses
import signal
import sys
from dataclasses import MISSING
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from . import compare, leaderboard, predict, submission, sweeps
from .config import FIELDS, RunConfig, check_encoding, converter, flag, option_of, path, value_type
from .data import task_for
from .errors import GlueRunnerError, Interrupted
from .results import check_writable
from .train import device_type
from .session import (check_sweep, configs_from_args, parse_list, parse_shard, quiet_libraries, resolve_alias,
                      run_all)


SUBCOMMAND_HELP = """other commands (each has its own --help):
  glue-run predict --model MODEL --input new.csv [--output preds.csv] [--text-columns a,b] [--overwrite]
      a fine-tuned model's predictions for new text: each row with its predicted label and each label's
      probability (MODEL: a --save-model folder, or the run's folder that holds it)
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


def add_field(parser, f: dataclasses.Field) -> None:
    meta, kind = option_of(f), value_type(f)
    names = meta.flags or (flag(f.name),)
    help_text = meta.help + default_text(f)
    if kind is bool and f.default is None:
        parser.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
    elif kind is bool:
        parser.add_argument(*names, dest=f.name, action="store_false" if f.default else "store_true", help=help_text)
    else:
        parser.add_argument(*names, dest=f.name, type=converter(f), choices=meta.choices, help=help_text,
                            required=f.default is MISSING, default=None if f.default is MISSING else f.default)


def default_text(f: dataclasses.Field) -> str:
    """What --help says of a flag's default: nothing for switches, which are off unless given."""
    if option_of(f).fallback is not None:
        return f" (default: the task's recipe, else {option_of(f).fallback})"
    if f.default is MISSING or f.default is None or isinstance(f.default, bool):
        return ""
    return f" (default: {f.default})"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="glue-run", description="Fine-tune and evaluate a model on GLUE tasks.",
                                epilog=SUBCOMMAND_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    groups = {name: p.add_argument_group(title) for name, title in GROUPS.items()}
    for f in dataclasses.fields(RunConfig):
        add_field(groups[option_of(f).group], f)
    groups["training"].add_argument("--seeds", help="comma list of seeds: repeat every task once per seed")
    p.set_defaults(seed=None)  # the default (42) is taken where --seeds is not given: both given is an error
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
    sweep.add_argument("--shard", metavar="I/N",
                       help="run only the I-th of every N runs of the sweep's order (from 0; AX goes with its MNLI "
                            "run): N workers, each with its own I, split a sweep without overlap, e.g. a Slurm array "
                            "--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT. Without it, workers started on the "
                            "same sweep share it run by run")
    sweep.add_argument("--expect-file", type=path, metavar="FILE",
                       help="--expect's bounds from a file, one a line (or a comma list); # starts a comment")
    return p


EXPECTATION_MISSED = 3  # the sweep ran, and missed an --expect bound or a --smoke task did not learn (2: bad input)


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
        grid = sweeps.parse_grid(args) if args.grid else None
        shard = parse_shard(args.shard) if args.shard else None
        configs = configs_from_args(args, grid)  # a bad flag value is said here, before anything loads
        bounds = sweeps.parse_bounds(args.expect, args.expect_file, [task_for(c) for c in configs]) \
            if args.expect or args.expect_file else []
        # a task asked for by name is never left out
        configs = check_sweep(configs, console, smoke_all=args.smoke and args.task.strip().lower() == "all")
        quiet_libraries()
        outcomes = run_all(configs, console, grid, shard)
        if outcomes is None:
            if bounds or args.smoke:
                console.print("--expect and --smoke's verdicts are checked by the shard that finishes the sweep's "
                              "last run", highlight=False)
            return 0
        runs = sweeps.chosen_runs(configs, outcomes, grid)
        learned = sweeps.check_smoke(runs, console) if args.smoke else True
        if not (sweeps.check_expected(bounds, runs, console) if bounds else True) or not learned:
            return EXPECTATION_MISSED
    except GlueRunnerError as e:
        return report_error(e, console)
    except (Interrupted, KeyboardInterrupt) as e:
        return interrupted(e, console)
    return 0


RUN_INTERRUPTED = ("interrupted; finished runs are kept, the current one wrote no results (the same command resumes "
                   "it from its newest checkpoint, if it saved one)")


def interrupted(e: BaseException, console: Console, said: str = RUN_INTERRUPTED) -> int:
    """The exit of a stopped glue-run. The stop is under way: another Ctrl-C or SIGTERM (a user who cannot wait,
    a launcher that signals again) is ignored from here on, or it would end the exit in a traceback."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    if str(e) or not isinstance(e, Interrupted):  # under torchrun, rank 0 speaks for every rank
        console.print(f"[yellow]{e if isinstance(e, Interrupted) else said}[/]", highlight=False, soft_wrap=True)
    return 128 + e.signum if isinstance(e, Interrupted) else 130


def report_error(e: GlueRunnerError, console: Console) -> int:
    # escaped: a message's own brackets (pip install "glue-runner[tensorboard]", nyu-mll/glue/cola[train]) are text
    console.print(f"[bold red]error:[/] {escape(printable(str(e)))}", highlight=False, soft_wrap=True)
    return 2


def printable(text: str) -> str:
    """text with what would break its line or garble a terminal escaped: newlines and other control
    characters, and bytes that are not UTF-8 (a value the message quotes may hold any of them)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def leaderboard_command(argv: list[str], console: Console) -> int:

    p = argparse.ArgumentParser(prog="glue-run leaderboard",
                                description="One row per model (mean ± std over seeds) in the GLUE leaderboard's "
                                            "columns, with the GLUE score; writes leaderboard.md/.csv/.png there.")
    p.add_argument("--results-dir", type=path, default=FIELDS["results_dir"].default,
                   help="the folder whose runs to read (default: %(default)s)")
    p.add_argument("--model", help="comma list of model names, as in runs.md")
    p.add_argument("--task", help="comma list of tasks to show; the GLUE score is then over those")
    p.add_argument("--since", help="only runs from this date on (YYYY-MM-DD, UTC)")
    p.add_argument("--reference", action="store_true",
                   help="add rows of published dev-set numbers (BERT-base, DistilBERT, MiniLM, ELECTRA-Small)")
    args = p.parse_args(argv)
    check_results_dir(args.results_dir)
    leaderboard.show(console, args.results_dir,
                     models=parse_list(args.model, "model") if args.model else None,
                     tasks=parse_list(args.task, "task") if args.task else None,
                     since=leaderboard.parse_since(args.since) if args.since else None, reference=args.reference)
    return 0


def compare_command(argv: list[str], console: Console) -> int:

    p = argparse.ArgumentParser(prog="glue-run compare",
                                description="Is model B better than model A? Per task and on the GLUE score: B - A "
                                            "over seeds with a 95% interval, a permutation test, ASO, a paired "
                                            "bootstrap over the dev examples, and a verdict.")
    p.add_argument("a", help="model A (the baseline): a row of leaderboard.md, or a model name in runs.md that "
                             "has one row")
    p.add_argument("b", help="model B, named as A")
    p.add_argument("--results-dir", type=path, default=FIELDS["results_dir"].default,
                   help="the folder whose runs to read (default: %(default)s)")
    p.add_argument("--task", help="comma list of tasks to compare; the GLUE score is then over those")
    p.add_argument("--markdown", type=path, help="also write the comparison to this Markdown file")
    args = p.parse_args(argv)
    check_results_dir(args.results_dir)
    if args.markdown:

        if args.markdown.is_dir():
            raise GlueRunnerError(f"--markdown {args.markdown} is a folder; give the file to write, e.g. "
                                  f"{args.markdown / 'compare.md'}")
        check_writable(args.markdown.parent, "--markdown")
    compare.show(console, args.results_dir, args.a, args.b, tasks=parse_list(args.task, "task") if args.task else None,
                 markdown_file=args.markdown)
    return 0


def check_results_dir(folder: Path) -> None:
    """A results folder to read is there (a misspelled one is not made, empty, by reading it)."""
    if not folder.is_dir():
        why = "is a file, not a folder" if folder.exists() else "does not exist"
        raise GlueRunnerError(f"--results-dir {folder} {why}; give the folder your runs wrote to (--results-dir of "
                              "glue-run, results by default)")


def validate_command(argv: list[str], console: Console) -> int:

    p = argparse.ArgumentParser(prog="glue-run validate-submission",
                                description="Check a GLUE submission folder: all files, headers, labels, row counts.")
    p.add_argument("folder", type=path, help="the submission folder (results/submissions/<model>-seed<seed>)")
    p.add_argument("--data-dir", type=path, help="GLUE folder whose test files give the row counts (default: the Hub)")
    p.add_argument("--cache-dir", type=path, help="where downloads from the Hub are cached")
    args = p.parse_args(argv)
    present = [n for n in submission.submission_files() if (args.folder / n).is_file()]
    cfg = RunConfig(task="", model="", data_dir=args.data_dir, cache_dir=args.cache_dir)
    problems = submission.validate(args.folder, submission.expected_rows(cfg, present))
    if problems:
        raise GlueRunnerError(f"{args.folder} is not a valid GLUE submission: {'; '.join(problems)}")
    console.print(f"[green]{args.folder} is a valid GLUE submission[/]")
    return 0


def predict_command(argv: list[str], console: Console) -> int:
    p = argparse.ArgumentParser(prog="glue-run predict",
                                description="A fine-tuned model's predictions for new text: every input row, in "
                                            "order, with its columns, the predicted label and each label's "
                                            "probability (multi-label: the labels above the model's threshold; "
                                            "regression: the score).")
    p.add_argument("--model", required=True,
                   help="a --save-model folder (results/runs/<model>/<task>-seed<seed>/model), the run's folder that "
                        "holds it, or another fine-tuned classifier (a folder or a Hub name)")
    p.add_argument("--input", type=path, required=True,
                   help="the texts: .csv, .tsv, .jsonl (each also .gz) or .parquet, with the column(s) the model's run "
                        "read its text from (or name them with --text-columns); rows with an empty text are written "
                        "without a prediction")
    p.add_argument("--output", type=path, help="the file to write, in the format its name says (default: beside the "
                                               "input, <name>.predictions.<its format>)")
    p.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    p.add_argument("--batch-size", type=positive, default=128,
                   help="examples per forward pass, sorted by length (default: %(default)s, as a run's evaluation)")
    for name in ("text_columns", "encoding", "device", "bf16", "cache_dir"):
        add_field(p, FIELDS[name])
    args = p.parse_args(argv)
    check_encoding(args.encoding)
    model, _ = resolve_alias(args.model)
    target = args.output or predict.default_output(args.input)
    predict.check_files(args.input, target, args.overwrite)
    cfg = RunConfig(model=model, eval_batch_size=args.batch_size, encoding=args.encoding, device=args.device,
                    bf16=args.bf16, cache_dir=args.cache_dir)
    if cfg.device == "cuda":
        device_type(cfg)  # a GPU that is not there is said before the model loads
    quiet_libraries()
    try:
        predict.predict_file(model, args.input, target, args.text_columns, cfg, console)
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted: nothing was written to {target}[/]", highlight=False, soft_wrap=True)
        return 130
    return 0


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return value


SUBCOMMANDS = {"leaderboard": leaderboard_command, "compare": compare_command, "validate-submission": validate_command,
               "predict": predict_command}


def run_subcommand(name: str, argv: list[str], console: Console) -> int:
    try:
        return SUBCOMMANDS[name](argv, console)
    except GlueRunnerError as e:
        return report_error(e, console)
    except KeyboardInterrupt as e:
        return interrupted(e, console, "interrupted; every file it writes is written whole, so none is half written")


if __name__ == "__main__":
    sys.exit(main())
