"""glue-run's training loop against a run_glue-style Hugging Face Trainer.

    python benchmarks/bench.py --task mrpc --model PATH --data-dir ../shared/glue_data --device cpu --repeats 2

Both sides get the same model, data (the first --max-train-samples training examples, the
whole dev set), batch size, learning rate, warm-up, weight decay, epochs and seed. The defaults
(1,024 MRPC examples, 3 epochs, batch 16, learning rate 1e-4) are a setting where MiniLM learns
on both sides, so their dev scores can tell a broken side from a working one: each side's scores
are set against the trivial predictor's (glue_runner.scoring's baseline: the most frequent
training label), and the report says whether each beat it.

glue-run runs as `glue-run` does (run.run with a RunConfig): length-grouped batches with
dynamic padding, fused AdamW, bf16 autocast where the processor has native bf16 (a CUDA GPU,
a CPU with AVX512-BF16 or AMX; float32 elsewhere) and, on CUDA, CUDA graphs. The Trainer runs
as run_glue.py does by default: every example padded to --max-seq-length, fp16 on CUDA (fp32
on the CPU). More sides compare like with like (--sides; each device has its own default set):

  glue-run        glue-run's default                      trainer       the Trainer's default
  glue-run-bf16   glue-run --bf16                         trainer-bf16  the Trainer's --bf16
  glue-run-eager  glue-run --bf16 --no-cuda-graphs        glue-run-fp16 glue-run --fp16 (graphs on)

  CPU default: glue-run, trainer, trainer-bf16, and glue-run-bf16 where glue-run's default is float32
  CUDA default: glue-run, trainer, glue-run-eager, glue-run-fp16

Each side runs in a fresh process (this script again, with --side), so neither inherits the
other's memory peak, thread pools or compiled kernels. A side prints one JSON line; this
process prints its row as soon as it ends (and appends the JSON to --json FILE), so a run cut
short keeps what it measured; then the medians, the ratios and, last,
`speedup_vs_trainer=<glue-run's default train samples/s / the Trainer's default train samples/s>`
(what each gives a user who sets nothing).

  train samples/s  training examples processed per second of the training loop (glue-run: its
                   epochs without the dev evaluation; Trainer: its own train_samples_per_second
                   over trainer.train()); compiling and warming up included
  steady samples/s batch size / the median time between optimizer steps: the rate once compiled
                   and warm (CUDA: timed by events on the GPU's stream, as the host runs ahead)
  wall time        loading model and data, tokenizing, training, scoring the dev set (not imports)
  peak memory      CUDA: torch.cuda.max_memory_allocated(). CPU: how far the process's peak
                   resident set (resource.getrusage ru_maxrss) rose from just before loading
                   model and data to the end
  GFLOP/s          6 x non-embedding parameters x real (not padding) tokens per second of
                   training; beside it, on the CPU its share of what a large matmul reaches on
                   this processor in the same precision (torch knows no datasheet peak), on CUDA
                   the model FLOP utilization: the steady rate's FLOP/s over the GPU's dense bf16
                   peak from its datasheet (DENSE_BF16_PEAK, or --peak-tflops)
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

# side -> (loop, precision: None for the side's own default, CUDA graphs)
SIDES = {
    "glue-run": ("glue-run", None, True),
    "trainer": ("trainer", None, False),
    "glue-run-bf16": ("glue-run", "bf16", True),
    "trainer-bf16": ("trainer", "bf16", False),
    "glue-run-eager": ("glue-run", "bf16", False),
    "glue-run-fp16": ("glue-run", "fp16", True),
}
CUDA_SIDES = ("glue-run", "trainer", "glue-run-eager", "glue-run-fp16")

# Dense (no sparsity) bfloat16 tensor-core FLOP/s from NVIDIA's datasheets, by a part of the name
# torch.cuda.get_device_name() gives; the first match wins, so the variants come before the plain names.
DENSE_BF16_PEAK = (("H100 NVL", 835e12), ("H100 PCIe", 756e12), ("H100", 989e12),
                   ("H200 NVL", 835e12), ("H200", 989e12), ("A100", 312e12))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", required=True)
    p.add_argument("--model", required=True, help="a model folder; with --random-init, only its tokenizer is used")
    p.add_argument("--model-name", help="the model's name in the report (default: the folder's name)")
    p.add_argument("--data-dir", required=True, type=Path, help="a folder in the GLUE TSV layout")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--sides", help="comma list of sides to run (default: the device's set; see above)")
    # The defaults: MiniLM learns MRPC on both sides in this many steps (96 of 32), measured in
    # benchmarks/README.md; 1,024 examples once, or 512 four times, left it at the all-"equivalent" baseline.
    p.add_argument("--max-train-samples", type=int, default=1024, help="the first N training examples (0: all)")
    p.add_argument("--num-train-epochs", type=float, default=3.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--max-seq-length", type=int, default=128)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--random-init", action="store_true",
                   help="a bert-base-shape model (12 layers, hidden 768) with random weights and --model's vocabulary")
    p.add_argument("--repeats", type=int, default=1,
                   help="run each side this many times, alternating which goes first (ABBA...), and report the "
                        "medians: on a shared machine the load drifts, and alternation spreads it over both sides")
    p.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak, for a GPU not in DENSE_BF16_PEAK")
    p.add_argument("--json", type=Path, help="also append each side's figures to this file, one JSON line each")
    p.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)  # set when this script runs one side
    return p


def main() -> None:
    args = build_parser().parse_args()
    if args.side:
        print(json.dumps(run_side(args)), flush=True)
        return
    sides = sides_of(args)
    order = [side for r in range(args.repeats) for side in (sides if r % 2 == 0 else sides[::-1])]
    runs, failed = {side: [] for side in sides}, []
    for side in order:
        figures = run_in_fresh_process(side)
        if figures is None:  # said; the other sides still run
            failed.append(side)
            continue
        if not any(runs.values()):
            print_header(args, figures)
        runs[side].append(figures)
        print_row(figures)
        if args.json:
            with open(args.json, "a", encoding="utf-8") as f:
                f.write(json.dumps(figures) + "\n")
    report(runs)
    if failed:
        sys.exit(f"failed: {', '.join(failed)} (their messages are above)")


def sides_of(args) -> tuple[str, ...]:
    if not args.sides and args.device == "cuda":
        return CUDA_SIDES
    if not args.sides:  # glue-run's default is bf16 on a CPU that has it natively: glue-run-bf16 would repeat it
        import torch

        from glue_runner.train import native_bf16

        bf16 = native_bf16(torch.device("cpu"))
        return ("glue-run", "trainer", "trainer-bf16") if bf16 else ("glue-run", "trainer", "glue-run-bf16", "trainer-bf16")
    sides = tuple(s.strip() for s in args.sides.split(","))
    unknown = [s for s in sides if s not in SIDES]
    if unknown or not sides:
        sys.exit(f"--sides: {', '.join(unknown) or 'none given'} not known; the sides are {', '.join(SIDES)}")
    if args.device != "cuda" and "glue-run-fp16" in sides:
        sys.exit("--sides glue-run-fp16 needs --device cuda (glue-run refuses --fp16 on the CPU)")
    return sides


def run_in_fresh_process(side: str) -> dict | None:
    """The side's figures, or None (said) if it failed."""
    done = subprocess.run([sys.executable, *sys.argv, "--side", side], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        print(f"{side}: failed (exit status {done.returncode}); its messages are above", flush=True)
        return None
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

    from glue_runner import data
    from glue_runner.config import RunConfig
    from glue_runner.scoring import baseline

    loop, precision, graphs = SIDES[args.side]
    cfg = RunConfig(task=task.name, model=args.model, model_name=model_label(args), data_dir=args.data_dir,
                    max_train_samples=args.max_train_samples or None, max_seq_length=args.max_seq_length,
                    num_train_epochs=args.num_train_epochs, batch_size=args.batch_size,
                    learning_rate=args.learning_rate, seed=args.seed, device=args.device,
                    bf16=True if precision == "bf16" else False if precision == "fp16" else None,
                    fp16=precision == "fp16", cuda_graphs=graphs,
                    results_dir=scratch / "results", cache_dir=scratch / "cache").resolved(task.recipe)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    loaded = load(task, cfg, args)
    splits = data.load_splits(task, cfg, with_test=False)
    tokens, parameters = real_tokens(task, splits, loaded, cfg), non_embedding_parameters(loaded.model)
    clock = StepClock(args.device)
    if loop == "glue-run":
        from glue_runner.run import run
        from glue_runner.session import extras_for

        record = run(cfg, Console(stderr=True), extras_for(cfg), model=loaded)[0].record
        samples_per_second, metrics, dtype = record["train"]["samples_per_second"], record["metrics"], record["precision"]
    else:
        dtype = "bfloat16" if precision == "bf16" else "float16" if args.device == "cuda" else "float32"
        samples_per_second, metrics = run_trainer(task, cfg, loaded, splits, scratch, dtype)
    wall = time.perf_counter() - started
    steady = cfg.batch_size / clock.median_step_seconds()
    if args.device == "cuda":
        peak, how = torch.cuda.max_memory_allocated(), "torch.cuda.max_memory_allocated"
    else:  # ru_maxrss is in KiB on Linux
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) * 1024
        how = "peak RSS rise (getrusage ru_maxrss)"
    trivial = baseline(task, loaded.labels, splits[task.train_split].dataset["label"], splits)
    ours, base = trivial.main_scores(metrics, task.eval_splits[0])
    return {"side": args.side, "precision": dtype, "cuda_graphs": graphs and args.device == "cuda",
            "train_samples_per_second": samples_per_second, "steady_samples_per_second": steady,
            "wall_seconds": wall, "peak_memory_bytes": peak, "peak_memory_measure": how, "metrics": metrics,
            "score": ours, "baseline_score": base, "baseline": trivial.predictor,
            "beat_baseline": not trivial.not_beaten(metrics), "flops": 6 * parameters * samples_per_second * tokens,
            "share": share(args, dtype, 6 * parameters * tokens, samples_per_second, steady),
            "tokens_per_example": tokens, "torch": torch.__version__, "device": device_name(args.device),
            "threads": torch.get_num_threads()}


class StepClock:
    """When each optimizer step ended, for the steady rate: the median interval leaves out the steps that
    compile, warm up or wait for an evaluation. On CUDA the marks are events on the GPU's stream: the
    host runs ahead of the GPU between glue-run's loss reads, so its own clock would time the queueing."""

    def __init__(self, device: str):
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self.device, self.marks = device, []
        register_optimizer_step_post_hook(self.mark)  # every optimizer's steps: the Trainer's too

    def mark(self, optimizer, args, kwargs) -> None:
        import torch

        if self.device == "cuda":
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def median_step_seconds(self) -> float:
        import torch

        if len(self.marks) < 3:
            return float("nan")  # one interval after the first step is no steady rate
        if self.device == "cuda":
            torch.cuda.synchronize()
            gaps = [a.elapsed_time(b) / 1000 for a, b in zip(self.marks, self.marks[1:])]
        else:
            gaps = [b - a for a, b in zip(self.marks, self.marks[1:])]
        return median(gaps)


def real_tokens(task, splits, loaded, cfg) -> float:
    """The training examples' mean length in tokens, padding left out: what the model computes on."""
    train = splits[task.train_split].dataset
    encoded = loaded.tokenizer(*(list(train[f]) for f in task.text_fields), truncation=True,
                               max_length=cfg.max_seq_length)
    return sum(map(len, encoded["input_ids"])) / len(train)


def non_embedding_parameters(model) -> int:
    return sum(p.numel() for name, p in model.named_parameters() if "embeddings" not in name)


def share(args, dtype: str, flop_per_example: float, samples_per_second: float, steady: float) -> float:
    """On CUDA the model FLOP utilization: the steady rate's FLOP/s over the datasheet's dense bf16 peak
    (--peak-tflops; NaN for a GPU not in DENSE_BF16_PEAK). On the CPU the whole loop's FLOP/s over what a
    large matmul reaches in the run's precision."""
    if args.device == "cpu":
        return flop_per_example * samples_per_second / matmul_rate(dtype)
    import torch

    name = torch.cuda.get_device_name()
    known = [rate for part, rate in DENSE_BF16_PEAK if part in name]
    peak = args.peak_tflops * 1e12 if args.peak_tflops else known[0] if known else float("nan")
    return flop_per_example * steady / peak


def matmul_rate(dtype: str) -> float:
    """FLOP/s of the better of two 1024 x 1024 matmuls on the CPU in the run's precision: its practical peak."""
    import torch

    kind = getattr(torch, dtype)
    a, b = (torch.randn(1024, 1024).to(kind) for _ in range(2))
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        a @ b
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


def run_trainer(task, cfg, loaded, splits, scratch: Path, dtype: str) -> tuple[float, dict]:
    """run_glue.py's defaults: pad everything to max_seq_length, default collator, fp16 on CUDA (and its
    --bf16 for the like-for-like side)."""
    import numpy as np
    from transformers import Trainer, TrainingArguments, default_data_collator

    from glue_runner.metrics import compute_metrics

    def encode(batch):
        return loaded.tokenizer(*(batch[f] for f in task.text_fields), padding="max_length",
                                max_length=cfg.max_seq_length, truncation=True)

    train_set, dev_set = (splits[name].dataset.map(encode, batched=True, remove_columns=["idx", *task.text_fields])
                          for name in (task.train_split, task.eval_splits[0]))
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

def print_header(args, first: dict) -> None:
    print(f"task {args.task} · model {model_label(args)} · {first['device']} ({first['threads']} threads) · "
          f"torch {first['torch']} · batch {args.batch_size} · max length {args.max_seq_length} · "
          f"{args.max_train_samples or 'all'} train examples x {args.num_train_epochs:g} epoch(s) · "
          f"learning rate {args.learning_rate:g} · seed {args.seed}")
    print(f"peak memory: {first['peak_memory_measure']}")
    print(f"real tokens per training example: {first['tokens_per_example']:.1f} (the Trainer pads each to "
          f"{args.max_seq_length}); GFLOP/s = 6 x non-embedding parameters x real tokens/s")
    print(f"baseline: {first['baseline']}, scoring {first['baseline_score']:.4f} (the mean of the dev metrics); "
          "a side beat it when its score is higher by more than glue_runner.scoring.BASELINE_MARGIN")
    share = "MFU" if args.device == "cuda" else "of matmul"
    print(f"{'':14} {'precision':>9} {'samples/s':>10} {'steady/s':>9} {'GFLOP/s':>8} {share:>9} {'wall s':>7} "
          f"{'peak MiB':>9} {'score':>6}  baseline?      dev metrics")


def print_row(f: dict) -> None:
    metrics = "  ".join(f"{k} {v:.4f}" for k, v in f["metrics"].items() if v is not None)
    score = "–" if f["score"] is None else f"{f['score']:.4f}"
    print(f"{f['side']:14} {f['precision']:>9} {f['train_samples_per_second']:10.1f} "
          f"{f['steady_samples_per_second']:9.1f} {f['flops'] / 1e9:8.2f} {f['share']:9.1%} {f['wall_seconds']:7.1f} "
          f"{f['peak_memory_bytes'] / 2**20:9.0f} {score:>6}  {'beat it' if f['beat_baseline'] else 'DID NOT BEAT':12}  "
          f"{metrics}", flush=True)


def report(runs: dict[str, list[dict]]) -> None:
    """Each side's medians and how often it beat the baseline; glue-run's sides against the Trainer's of the
    same precision, and against the Trainer's default; speedup_vs_trainer last."""
    medians = {side: {key: median(f[key] for f in found)
                      for key in ("train_samples_per_second", "steady_samples_per_second", "peak_memory_bytes")}
               for side, found in runs.items() if found}
    for side, m in medians.items():
        beat = [f["beat_baseline"] for f in runs[side]]
        print(f"{side}: median train samples/s {m['train_samples_per_second']:.1f}, steady "
              f"{m['steady_samples_per_second']:.1f}; beat the baseline in {sum(beat)} of {len(beat)} run(s)")
    precision = {side: runs[side][0]["precision"] for side in medians}
    for trainer in (side for side in medians if side.startswith("trainer")):
        for ours in (side for side in medians if side.startswith("glue-run") and precision[side] == precision[trainer]):
            ratio = medians[ours]["train_samples_per_second"] / medians[trainer]["train_samples_per_second"]
            print(f"like for like, {precision[trainer]}: {ours}/{trainer} {ratio:.2f}")
    if "glue-run" not in medians or "trainer" not in medians:
        return
    theirs = medians["trainer"]
    for side, m in medians.items():
        if side.startswith("glue-run"):
            print(f"{side}/trainer: samples/s {m['train_samples_per_second'] / theirs['train_samples_per_second']:.2f}, "
                  f"steady {m['steady_samples_per_second'] / theirs['steady_samples_per_second']:.2f}, "
                  f"peak memory {m['peak_memory_bytes'] / max(theirs['peak_memory_bytes'], 1):.2f}")
    print(f"speedup_vs_trainer={medians['glue-run']['train_samples_per_second'] / theirs['train_samples_per_second']:.2f}")


if __name__ == "__main__":
    main()
