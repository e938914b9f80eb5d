"""The command line: flags -> RunConfig -> runner.run, once per task and seed.

    glue-run --task cola --model bert-base-uncased
    glue-run --task cola,sst2 --seeds 1,2,3 --data-dir glue_data --model ./my-model
"""

import argparse
import dataclasses
import sys
from pathlib import Path

from rich.console import Console

from .config import RunConfig
from .errors import GlueRunnerError
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
    o.add_argument("--do-predict", action="store_true", help="also predict the test split(s)")
    o.add_argument("--save-model", action="store_true", help="save the fine-tuned model in the run's folder")
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
    for key in ("batch_size", "gradient_accumulation_steps", "max_seq_length", "logging_steps",
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
    args = build_parser().parse_args(argv)
    quiet_libraries()
    try:
        from .runner import run

        outcomes = {}
        for cfg in configs_from_args(args):
            task = get_task(cfg.task)
            # AX is predicted by the MNLI model trained in this same invocation, if any
            source = outcomes.get((task.predict_with, cfg.seed))
            outcome = run(cfg, console, loaded=source.loaded if source else None)
            outcomes[(task.name, cfg.seed)] = outcome
    except GlueRunnerError as e:
        console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; finished runs are kept, the current one wrote nothing[/]")
        return 130
    return 0


def quiet_libraries() -> None:
    # Their progress bars and load reports would bury glue-run's own progress.
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


if __name__ == "__main__":
    sys.exit(main())
