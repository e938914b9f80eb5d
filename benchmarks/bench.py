"""glue-run's training loop against a run_glue-style Hugging Face Trainer.

    python benchmarks/bench.py --task mrpc --model PATH --data-dir ../shared/glue_data \
        --device cpu --max-train-samples 1024 --num-train-epochs 1 --batch-size 32

Both sides get the same model, data (the first N training examples, the whole
dev set), batch size, learning rate, warm-up, weight decay, epochs and seed.
glue-run runs as `glue-run` does (run.run with a RunConfig): length-grouped
batches with dynamic padding, fused AdamW, bf16 autocast where the processor has
native bf16 (a CUDA GPU, a CPU with AVX512-BF16 or AMX; float32 elsewhere) and, on
CUDA, CUDA graphs. The Trainer runs as run_glue.py does by default: every example
padded to --max-seq-length, fp16 on CUDA (fp32 on the CPU). On the CPU two more
sides compare like with like: glue-run --bf16 against the Trainer's --bf16.

Each side runs in a fresh process (this script again, with --side), so neither
inherits the other's memory peak, thread pools or compiled kernels. A side
prints one JSON line; this process prints the figures and, last,
the like-for-like ratios and, last, `speedup_vs_trainer=<glue-run's default train
samples/s / the Trainer's default train samples/s>` (what each gives a user who sets nothing).

  train samples/s  training examples processed per second of the training loop
                   (glue-run: its epochs without the dev evaluation; Trainer: its
                   own train_samples_per_second over trainer.train())
  wall time        loading model and data, tokenizing, training, scoring the dev set
                   (not the Python imports)
  peak memory      CUDA: torch.cuda.max_memory_allocated(). CPU: how far the
                   process's peak resident set (resource.getrusage ru_maxrss) rose
                   from just before loading model and data to the end
  GFLOP/s          6 x non-embedding parameters x real (not padding) tokens per
                   second of training; beside it, its share of what a large matmul
                   reaches on this processor in the same precision (the peak a
                   datasheet gives is not known to torch; that matmul is the practical one)
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

SIDES = ("glue-run", "trainer")  # each one's default
LIKE_FOR_LIKE = ("glue-run-bf16", "trainer-bf16")  # on the CPU: both autocast to bfloat16


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", required=True)
    p.add_argument("--model", required=True, help="a model folder; with --random-init, only its tokenizer is used")
    p.add_argument("--model-name", help="the model's name in the report (default: the folder's name)")
    p.add_argument("--data-dir", required=True, type=Path, help="a folder in the GLUE TSV layout")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--max-train-samples", type=int)
    p.add_argument("--num-train-epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-seq-length", type=int, default=128)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--random-init", action="store_true",
                   help="a bert-base-shape model (12 layers, hidden 768) with random weights and --model's vocabulary")
    p.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=True,
                   help="glue-run's CUDA graphs per length bucket (glue-run --no-cuda-graphs turns them off)")
    p.add_argument("--fp16", action="store_true", help="glue-run autocasts to float16 instead of bfloat16 on CUDA")
    p.add_argument("--repeats", type=int, default=1,
                   help="run each side this many times, alternating which goes first (ABBA...), and report the "
                        "medians: on a shared machine the load drifts, and alternation spreads it over both sides")
    p.add_argument("--side", choices=SIDES + LIKE_FOR_LIKE, help=argparse.SUPPRESS)  # set when this script runs one side
    return p


def main() -> None:
    args = build_parser().parse_args()
    if args.side:
        print(json.dumps(run_side(args)), flush=True)
        return
    sides = SIDES + (LIKE_FOR_LIKE if args.device == "cpu" else ())
    order = [side for r in range(args.repeats) for side in (sides if r % 2 == 0 else sides[::-1])]
    runs = [run_in_fresh_process(side) for side in order]
    report(args, {side: [r for r in runs if r["side"] == side] for side in sides})


def run_in_fresh_process(side: str) -> dict:
    done = subprocess.run([sys.executable, *sys.argv, "--side", side], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"the {side} side failed (exit status {done.returncode}); its messages are above")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- one side, in its own process ------------------------------------------

def run_side(args) -> dict:
    from glue_runner.session import quiet_libraries
    from glue_runner.tasks import get_task

    quiet_libraries()
    task = get_task(args.task)
    with tempfile.TemporaryDirectory(prefix="glue-bench-") as scratch:  # results, caches, checkpoints
        return measure(args, task, Path(scratch))


def measure(args, task, scratch: Path) -> dict:
    import torch
    from rich.console import Console

    from glue_runner.config import RunConfig

    cfg = RunConfig(task=task.name, model=args.model, model_name=model_label(args), data_dir=args.data_dir,
                    max_train_samples=args.max_train_samples, max_seq_length=args.max_seq_length,
                    num_train_epochs=args.num_train_epochs, batch_size=args.batch_size, seed=args.seed,
                    device=args.device, bf16=True if args.side == "glue-run-bf16" else False if args.fp16 else None,
                    fp16=args.device == "cuda" and args.fp16, cuda_graphs=args.cuda_graphs,
                    results_dir=scratch / "results", cache_dir=scratch / "cache").resolved(task.recipe)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    loaded = load(task, cfg, args)
    tokens, parameters = real_tokens(task, cfg, loaded), non_embedding_parameters(loaded.model)
    if args.side.startswith("glue-run"):
        from glue_runner.run import run
        from glue_runner.session import extras_for

        record = run(cfg, Console(stderr=True), extras_for(cfg), model=loaded)[0].record
        samples_per_second, metrics, dtype = record["train"]["samples_per_second"], record["metrics"], record["precision"]
    else:
        dtype = "bfloat16" if args.side == "trainer-bf16" else "float16" if args.device == "cuda" else "float32"
        samples_per_second, metrics = run_trainer(task, cfg, loaded, scratch, dtype)
    wall = time.perf_counter() - started
    if args.device == "cuda":
        peak, how = torch.cuda.max_memory_allocated(), "torch.cuda.max_memory_allocated"
    else:  # ru_maxrss is in KiB on Linux
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) * 1024
        how = "peak RSS rise (getrusage ru_maxrss)"
    flops = 6 * parameters * samples_per_second * tokens
    return {"side": args.side, "train_samples_per_second": samples_per_second, "wall_seconds": wall,
            "peak_memory_bytes": peak, "peak_memory_measure": how, "metrics": metrics, "precision": dtype,
            "flops": flops, "matmul_flops": matmul_rate(args.device, dtype), "tokens_per_example": tokens,
            "torch": torch.__version__, "device": device_name(args.device), "threads": torch.get_num_threads()}


def real_tokens(task, cfg, loaded) -> float:
    """The training examples' mean length in tokens, padding left out: what the model computes on."""
    from glue_runner import data

    train = data.load_splits(task, cfg, with_test=False)["train"].dataset
    encoded = loaded.tokenizer(*(list(train[f]) for f in task.text_fields), truncation=True,
                               max_length=cfg.max_seq_length)
    return sum(map(len, encoded["input_ids"])) / len(train)


def non_embedding_parameters(model) -> int:
    return sum(p.numel() for name, p in model.named_parameters() if "embeddings" not in name)


def matmul_rate(device: str, dtype: str) -> float:
    """FLOP/s of the better of two 1024 x 1024 matmuls in the run's precision: this processor's practical peak."""
    import torch

    kind = getattr(torch, dtype)
    a, b = (torch.randn(1024, 1024, device=device).to(kind) for _ in range(2))
    best = float("inf")
    for _ in range(2):
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return 2 * 1024 ** 3 / best


def model_label(args) -> str:
    return args.model_name or ("bert-base-shape-random" if args.random_init else Path(args.model).name)


def load(task, cfg, args):
    """The same model for both sides: the checkpoint as glue-run loads it, or a seeded random bert-base."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig

    from glue_runner.model import Labels, LoadedModel, load_model

    if not args.random_init:
        return load_model(task, cfg)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                        intermediate_size=3072, pad_token_id=tokenizer.pad_token_id, num_labels=task.num_labels,
                        problem_type="regression" if task.regression else None)
    torch.manual_seed(cfg.seed)
    model = AutoModelForSequenceClassification.from_config(config)
    return LoadedModel(model, tokenizer, Labels(task, tuple(range(task.num_labels))))


def run_trainer(task, cfg, loaded, scratch: Path, dtype: str) -> tuple[float, dict]:
    """run_glue.py's defaults: pad everything to max_seq_length, default collator, fp16 on CUDA (and its
    --bf16 for the like-for-like side)."""
    import numpy as np
    from transformers import Trainer, TrainingArguments, default_data_collator

    from glue_runner import data
    from glue_runner.metrics import compute_metrics

    splits = data.load_splits(task, cfg)

    def encode(batch):
        return loaded.tokenizer(*(batch[f] for f in task.text_fields), padding="max_length",
                                max_length=cfg.max_seq_length, truncation=True)

    train_set, dev_set = (splits[name].dataset.map(encode, batched=True, remove_columns=["idx", *task.text_fields])
                          for name in ("train", task.eval_splits[0]))
    on_cuda = cfg.device == "cuda"
    arguments = TrainingArguments(
        output_dir=str(scratch / "trainer"), per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size or 4 * cfg.batch_size, learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.num_train_epochs, warmup_steps=cfg.warmup_ratio,  # below 1: a fraction of the steps
        weight_decay=cfg.weight_decay, max_grad_norm=cfg.max_grad_norm, seed=cfg.seed, fp16=dtype == "float16",
        bf16=dtype == "bfloat16",
        use_cpu=not on_cuda, eval_strategy="no", save_strategy="no", report_to="none", disable_tqdm=True)
    trainer = Trainer(model=loaded.model, args=arguments, train_dataset=train_set, data_collator=default_data_collator)
    samples_per_second = trainer.train().metrics["train_samples_per_second"]
    values = loaded.labels.predictions(trainer.predict(dev_set).predictions)
    return samples_per_second, compute_metrics(task.metrics, values, np.asarray(dev_set["label"]))


def device_name(device: str) -> str:
    import platform

    import torch

    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"CPU {platform.processor() or platform.machine()}"


# ---- the report --------------------------------------------------------------

def report(args, runs: dict[str, list[dict]]) -> None:
    """Every run's figures, then each side's medians and their ratio."""
    first = runs["glue-run"][0]
    print(f"task {args.task} · model {model_label(args)} · {first['device']} ({first['threads']} threads) · "
          f"torch {first['torch']} · batch {args.batch_size} · max length {args.max_seq_length} · "
          f"{args.max_train_samples or 'all'} train examples x {args.num_train_epochs:g} epoch(s) · seed {args.seed}")
    print(f"peak memory: {first['peak_memory_measure']}")
    print(f"real tokens per training example: {first['tokens_per_example']:.1f} (the Trainer pads each to "
          f"{args.max_seq_length}); GFLOP/s = 6 x non-embedding parameters x real tokens/s")
    print(f"{'':13} {'precision':>9} {'samples/s':>10} {'GFLOP/s':>8} {'of matmul':>9} {'wall s':>8} {'peak MiB':>9}  "
          "dev metrics")
    for side, found in runs.items():
        for f in found:
            metrics = "  ".join(f"{k} {v:.4f}" for k, v in f["metrics"].items() if v is not None)
            print(f"{side:13} {f['precision']:>9} {f['train_samples_per_second']:10.1f} {f['flops'] / 1e9:8.2f} "
                  f"{f['flops'] / f['matmul_flops']:9.1%} {f['wall_seconds']:8.1f} "
                  f"{f['peak_memory_bytes'] / 2**20:9.0f}  {metrics}")
    medians = {side: {key: median(f[key] for f in found) for key in ("train_samples_per_second", "peak_memory_bytes")}
               for side, found in runs.items()}
    for side, m in medians.items():
        print(f"median train samples/s {side}: {m['train_samples_per_second']:.1f}")
    ours, theirs = medians["glue-run"], medians["trainer"]
    print(f"peak memory glue-run/trainer: {ours['peak_memory_bytes'] / max(theirs['peak_memory_bytes'], 1):.2f}")
    if "glue-run-bf16" in medians:
        ratio = medians["glue-run-bf16"]["train_samples_per_second"] / medians["trainer-bf16"]["train_samples_per_second"]
        print(f"like for like, bfloat16: glue-run/trainer {ratio:.2f}")
    if runs["glue-run"][0]["precision"] == runs["trainer"][0]["precision"]:
        print(f"like for like, {runs['trainer'][0]['precision']} (each one's default here): glue-run/trainer "
              f"{ours['train_samples_per_second'] / theirs['train_samples_per_second']:.2f}")
    print(f"speedup_vs_trainer={ours['train_samples_per_second'] / theirs['train_samples_per_second']:.2f}")


if __name__ == "__main__":
    main()
