"""The command line: flags -> RunConfig -> runner.run, once per task and seed.

    glue-run --task cola --model bert-base-uncased
    glue-run --task cola,sst2 --seeds 1,2,3 --data-dir glue_data --model ./my-model
    glue-run --task all --do-predict ...          (also a GLUE submission zip)
    glue-run leaderboard [--results-dir results] [--model A,B] [--task cola,sst2] [--since 2025-01-01] [--reference]
    glue-run validate-submission results/submissions/<model>-seed<seed> [--data-dir glue_data]
"""

import argparse
import dataclasses
import sys
from pathlib import Path

from rich.console import Console

from .config import RunConfig
from .errors import GlueRunnerError, Interrupted
from .tasks import GLUE_ORDER, get_task


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="glue-run", description="Fine-tune and evaluate a model on GLUE tasks.")
    p.add_argument("--task", required=True, help=f"a GLUE task, a comma list, or 'all' ({', '.join(GLUE_ORDER)})")
    p.add_argument("--model", "--model-name-or-path", dest="model", required=True,
                   help="a Hugging Face Hub name or a local folder")
    p.add_argument("--model-name", help="the model's name in results/ (default: from --model)")
    d = p.add_argument_group("data (default: the Hugging Face Hub, nyu-mll/glue)")
    d.add_argument("--data-dir", type=Path, help="a folder in the original GLUE TSV layout (CoLA/train.tsv, ...)")
    d.add_argument("--train-file", type=Path, help="your own training data: .csv, .tsv or .jsonl")
    d.add_argument("--validation-file", type=Path)
    d.add_argument("--test-file", type=Path)
    d.add_argument("--text-columns", help="comma list of the text column(s) in your own files")
    d.add_argument("--label-column", default="label")
    d.add_argument("--max-train-samples", type=int)
    d.add_argument("--max-eval-samples", type=int)
    d.add_argument("--max-predict-samples", type=int)
    d.add_argument("--max-seq-length", type=int, default=128)
    d.add_argument("--cache-dir", type=Path, help="where tokenized data and downloads are cached")
    t = p.add_argument_group("training (default: the task's recipe in tasks/, else run_glue's defaults)")
    t.add_argument("--learning-rate", type=float)
    t.add_argument("--num-train-epochs", type=float)
    t.add_argument("--batch-size", "--per-device-train-batch-size", dest="batch_size", type=int)
    t.add_argument("--eval-batch-size", type=int)
    t.add_argument("--warmup-ratio", type=float)
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--max-grad-norm", type=float, default=1.0)
    t.add_argument("--gradient-accumulation-steps", type=int, default=1)
    t.add_argument("--auto-batch-size", action="store_true",
                   help="on CUDA out-of-memory, halve the examples per forward pass and accumulate twice as many "
                        "(the effective batch, and so the results, stay the same)")
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--seeds", help="comma list of seeds: repeat every task once per seed")
    t.add_argument("--logging-steps", type=int, default=20)
    h = p.add_argument_group("hardware")
    h.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    h.add_argument("--fp16", action="store_true", help="float16 autocast with a gradient scaler (CUDA only)")
    h.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    h.add_argument("--no-cuda-graphs", dest="cuda_graphs", action="store_false",
                   help="run eagerly instead of replaying CUDA graphs per length bucket")
    o = p.add_argument_group("outputs")
    o.add_argument("--output-dir", type=Path, help="this run's folder (default: results/runs/<model>/<task>-seed<seed>)")
    o.add_argument("--results-dir", type=Path, default=Path("results"), help="where the results tables live")
    o.add_argument("--do-predict", action="store_true",
                   help="also predict the test split(s); with several tasks, also write a checked GLUE submission "
                        "(from the first seed's runs) to <results-dir>/submissions/")
    o.add_argument("--save-model", action="store_true", help="save the fine-tuned model in the run's folder")
    c = p.add_argument_group(
        "checkpoints (in the run's folder; a finished run deletes its own)",
        "A checkpoint is saved at each epoch end, every --save-steps steps and on Ctrl-C/SIGTERM. Re-running "
        "the same command into the same folder resumes from the newest one whose settings match.")
    c.add_argument("--save-steps", type=int, help="also save a checkpoint every N optimizer steps")
    c.add_argument("--save-total-limit", type=int, default=2, help="keep the newest N checkpoints (default 2)")
    c.add_argument("--resume", action=argparse.BooleanOptionalAction, default=None,
                   help="--resume: fail unless a checkpoint can be resumed; --no-resume: delete the "
                        "checkpoints and start over (default: resume when one matches)")
    m = p.add_argument_group("model loading")
    m.add_argument("--ignore-mismatched-sizes", action="store_true",
                   help="replace a classification head whose size does not fit the task")
    m.add_argument("--trust-remote-code", action="store_true",
                   help="allow a Hub model to run its own Python code (only for models you trust)")
    return p


def parse_list(text: str, what: str, convert=str) -> list:
    try:
        items = [convert(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError:
        raise GlueRunnerError(f"--{what} '{text}' is not a comma list of {convert.__name__}s") from None
    if not items:
        raise GlueRunnerError(f"--{what} is empty")
    return items


def configs_from_args(args: argparse.Namespace) -> list[RunConfig]:
    """One RunConfig per (task, seed), tasks in GLUE order as asked."""
    tasks = GLUE_ORDER if args.task.strip().lower() == "all" else sorted(
        {get_task(t).name for t in parse_list(args.task, "task")}, key=GLUE_ORDER.index)
    seeds = parse_list(args.seeds, "seeds", int) if args.seeds else [args.seed]
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    common = {k: v for k, v in vars(args).items() if k in fields and k not in ("task", "seed", "output_dir")}
    if args.text_columns:
        common["text_columns"] = tuple(parse_list(args.text_columns, "text-columns"))
    for key in ("batch_size", "gradient_accumulation_steps", "max_seq_length", "logging_steps", "save_steps",
                "save_total_limit",
                "max_train_samples", "max_eval_samples", "max_predict_samples", "eval_batch_size"):
        if common.get(key) is not None and common[key] < 1:
            raise GlueRunnerError(f"--{key.replace('_', '-')} must be at least 1")
    several = len(tasks) * len(seeds) > 1
    configs = []
    for task in tasks:
        for seed in seeds:
            out = args.output_dir / f"{task}-seed{seed}" if several and args.output_dir else args.output_dir
            configs.append(RunConfig(task=task, seed=seed, output_dir=out, **common))
    return configs


def main(argv: list[str] | None = None) -> int:
    console = Console(stderr=True)
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in SUBCOMMANDS:
        return run_subcommand(argv[0], argv[1:], console)
    args = build_parser().parse_args(argv)
    quiet_libraries()
    try:
        from .runner import run

        outcomes = {}
        configs = configs_from_args(args)
        for cfg in configs:
            task = get_task(cfg.task)
            # AX is predicted by the MNLI model trained in this same invocation, if any
            source = outcomes.get((task.predict_with, cfg.seed))
            outcome = run(cfg, console, loaded=source.loaded if source else None)
            outcomes[(task.name, cfg.seed)] = outcome
        if len(configs) > 1:
            after_several_runs(configs, outcomes, console)
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


def quiet_libraries() -> None:
    # Their progress bars and load reports would bury glue-run's own progress.
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def report_error(e: GlueRunnerError, console: Console) -> int:
    console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
    return 2


def after_several_runs(configs: list[RunConfig], outcomes: dict, console: Console) -> None:
    """The leaderboard of the results folder and, with --do-predict on several tasks, the submission."""
    from . import submission

    first = configs[0]
    if first.do_predict and len({c.task for c in configs}) > 1:
        # One submission per invocation, from the first seed's runs: a fixed rule, not the best dev seed.
        run_dirs = {task: o.output_dir for (task, seed), o in outcomes.items() if seed == first.seed}
        name = outcomes[(first.task, first.seed)].record["model_name"]
        submission.from_runs(run_dirs, first, f"{name}-seed{first.seed}", console.print)
    show_leaderboard(console, first.results_dir)


def show_leaderboard(console: Console, results_dir: Path, **filters) -> None:
    from . import leaderboard

    board = leaderboard.build(results_dir, **filters)
    paths = leaderboard.write(board, results_dir)
    # Piped output has no width to fit: give the wide table room instead of wrapping every cell.
    Console(width=None if sys.stdout.isatty() else 250).print(leaderboard.rich_table(board))
    console.print(f"wrote {', '.join(map(str, paths))}", highlight=False)


def leaderboard_command(argv: list[str], console: Console) -> int:
    from .leaderboard import parse_since

    p = argparse.ArgumentParser(prog="glue-run leaderboard",
                                description="One row per model (mean ± std over seeds) in the GLUE leaderboard's "
                                            "columns, with the GLUE score; writes leaderboard.md/.csv/.png there.")
    p.add_argument("--results-dir", type=Path, default=Path("results"), help="the folder whose runs to read")
    p.add_argument("--model", help="comma list of model names, as in runs.md")
    p.add_argument("--task", help="comma list of tasks to show; the GLUE score is then over those")
    p.add_argument("--since", help="only runs from this date on (YYYY-MM-DD, UTC)")
    p.add_argument("--reference", action="store_true",
                   help="add rows of published dev-set numbers (BERT-base, DistilBERT, MiniLM, ELECTRA-Small)")
    args = p.parse_args(argv)
    show_leaderboard(console, args.results_dir,
                     models=parse_list(args.model, "model") if args.model else None,
                     tasks=parse_list(args.task, "task") if args.task else None,
                     since=parse_since(args.since) if args.since else None, reference=args.reference)
    return 0


def validate_command(argv: list[str], console: Console) -> int:
    from . import submission

    p = argparse.ArgumentParser(prog="glue-run validate-submission",
                                description="Check a GLUE submission folder: all files, headers, labels, row counts.")
    p.add_argument("folder", type=Path)
    p.add_argument("--data-dir", type=Path, help="GLUE folder whose test files give the row counts (default: the Hub)")
    p.add_argument("--cache-dir", type=Path)
    args = p.parse_args(argv)
    present = [n for n in submission.submission_files() if (args.folder / n).is_file()]
    cfg = RunConfig(task="", model="", data_dir=args.data_dir, cache_dir=args.cache_dir)
    problems = submission.validate(args.folder, submission.expected_rows(cfg, present))
    if problems:
        raise GlueRunnerError(f"{args.folder} is not a valid GLUE submission: {'; '.join(problems)}")
    console.print(f"[green]{args.folder} is a valid GLUE submission[/]")
    return 0


SUBCOMMANDS = {"leaderboard": leaderboard_command, "validate-submission": validate_command}


def run_subcommand(name: str, argv: list[str], console: Console) -> int:
    try:
        return SUBCOMMANDS[name](argv, console)
    except GlueRunnerError as e:
        return report_error(e, console)


if __name__ == "__main__":
    sys.exit(main())
