"""The training loop: one loop for CPU, one GPU, DataParallel and DistributedDataParallel.

Read top to bottom: pick the device, batch the data by length, then `train`: AdamW with
linear warm-up and decay, accumulation, clipping, a health check, a report per step,
an evaluation per epoch, and checkpoints. The fast path on a GPU: batches padded only
to a few length buckets, autocast with float32 master weights, fused AdamW, no host
sync inside a step, pinned memory, and CUDA graphs (torch.compile's reduce-overhead
mode) per bucket. Checkpoints (saved by results.py) are taken at step boundaries, so a
resumed run replays the same batches and dropout masks as one that never stopped.
Which parameters train, and at what rate, is the schedule's (AllLayers: all, at one rate).
"""

from __future__ import annotations

import math
import os
import random
import signal
import threading
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from . import results
from .config import RunConfig
from .errors import GlueRunnerError, Interrupted

if TYPE_CHECKING:  # torch is imported where it is used: the checks before a run answer in a second
    import torch
    from torch.optim.lr_scheduler import LambdaLR

# ---- where we run ----------------------------------------------------------

@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1  # processes (torchrun); DataParallel is one process
    amp_dtype: torch.dtype | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def device_type(cfg: RunConfig) -> str:
    """"cuda" or "cpu": what --device and the precision flags ask for, if this machine has it."""
    import torch

    want = cfg.device
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want not in ("cuda", "cpu"):
        raise GlueRunnerError(f"--device {cfg.device} is not known; use auto, cpu or cuda")
    if want == "cuda" and not torch.cuda.is_available():
        raise GlueRunnerError("--device cuda but no CUDA GPU is visible; use --device cpu")
    if cfg.fp16 and want != "cuda":
        raise GlueRunnerError("--fp16 needs a CUDA GPU (CPUs have no fast float16); use --bf16 or drop the flag")
    return want


def setup_runtime(cfg: RunConfig) -> Runtime:
    import torch
    import torch.distributed as dist

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if device_type(cfg) == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device("cuda", local_rank if world_size > 1 else torch.cuda.current_device())
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    bf16 = cfg.bf16 if cfg.bf16 is not None else native_bf16(device)
    amp_dtype = torch.float16 if cfg.fp16 else torch.bfloat16 if bf16 else None
    return Runtime(device, rank, world_size, amp_dtype)


def native_bf16(device: torch.device) -> bool:
    """Whether the processor computes bfloat16 natively, as torch sees it: a CUDA GPU that supports it, or a
    CPU with AVX512-BF16 or AMX tiles (elsewhere oneDNN emulates bfloat16, slower than float32)."""
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


# ---- batches ---------------------------------------------------------------

def padded_length(n: int, max_len: int, buckets: bool, multiple: int = 8) -> int:
    """Round a batch's longest sequence up: to a power of two when every shape
    costs a CUDA graph capture (few shapes), else to a multiple of `multiple`."""
    target = 1 << max(4, math.ceil(math.log2(n))) if buckets else -(-n // multiple) * multiple
    return min(target, max_len)


def pad_multiple(device: torch.device) -> int:
    # GPU tensor cores want multiples of 8; a CPU's time grows with every padded
    # token (MiniLM's step at length 64 costs 12% more than at 57), so pad none.
    return 8 if device.type == "cuda" else 1


def make_batches(lengths: np.ndarray, batch_size: int, *, shuffle: bool, seed: int, rank: int = 0,
                 world_size: int = 1) -> list[np.ndarray]:
    """Group similar lengths into batches so little padding is needed.

    Training: shuffle, sort within windows of 50 batches, shuffle the batches
    (random order, similar lengths inside each, as HF's LengthGroupedSampler).
    Evaluation: sort everything by length. With several processes each takes
    every world_size-th batch; training drops the remainder so all ranks step
    together, evaluation keeps it so every example is scored exactly once.
    """
    if shuffle:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(lengths))
        window = batch_size * 50
        order = np.concatenate([chunk[np.argsort(-lengths[chunk], kind="stable")]
                                for chunk in np.split(order, range(window, len(order), window))])
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        batches = [batches[i] for i in rng.permutation(len(batches))]
        batches = batches[:len(batches) - len(batches) % world_size]
    else:
        order = np.argsort(-lengths, kind="stable")
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return batches[rank::world_size]


def collate(dataset, indices: np.ndarray, pad_id: int, max_len: int, buckets: bool,
            multiple: int = 8) -> dict[str, torch.Tensor]:
    import torch

    rows = dataset[indices.tolist()]
    width = padded_length(max(rows["length"]), max_len, buckets, multiple)
    batch = {}
    for key, pad in (("input_ids", pad_id), ("token_type_ids", 0), ("attention_mask", 0)):
        if key in rows:
            out = np.full((len(indices), width), pad, dtype=np.int64)
            for i, seq in enumerate(rows[key]):
                out[i, :len(seq)] = seq
            batch[key] = torch.from_numpy(out)
    if "label" in rows:
        batch["labels"] = torch.tensor(rows["label"])
    return batch


def to_device(batch: dict, device: torch.device) -> dict:
    if device.type != "cuda":
        return batch
    # pinned memory lets the copy overlap with the GPU's work on the previous step
    return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}


# ---- the loop --------------------------------------------------------------

@dataclass
class Position:
    """Where training stands; saved in every checkpoint, so plain numbers and lists only."""
    epoch: int = 0
    batch: int = 0  # the next micro-batch of this epoch: always the first of an accumulation
    step: int = 0
    samples: int = 0
    seconds: float = 0.0
    running_count: int = 0  # micro-batches in the running loss
    last_loss: float = float("nan")
    history: list = field(default_factory=list)  # what on_epoch_end returned, per epoch evaluated


@dataclass
class TrainState:
    """Everything the loop changes, in one place; the helpers below take it."""
    optimizer: torch.optim.Optimizer
    scheduler: LambdaLR
    scaler: torch.amp.GradScaler
    warmup_steps: int
    total_steps: int
    position: Position
    running_loss: torch.Tensor  # summed on the device since the last logging step: no sync per step
    # The first step whose loss or gradient norm was not finite (-1: none), kept on the device and
    # read (a sync) only before anything is logged or written, so a NaN at any step is caught.
    bad_step: torch.Tensor
    parts: int = 1  # --auto-batch-size: forward passes per micro-batch, doubled on each out-of-memory
    class_weights: torch.Tensor | None = None  # --class-weights: each class's (or label's positives') loss weight
    clock: float = 0.0  # when the current stretch of training time began (evaluation is not counted)


@dataclass
class StepReport:
    """What the loop tells its caller after every optimizer step."""
    epoch: int  # 0-based
    epochs: int
    step_in_epoch: int
    steps_in_epoch: int
    loss: float | None  # mean loss since the previous logging step; None between logging steps (no sync)
    learning_rate: float
    samples_per_second: float


@dataclass
class TrainStats:
    steps: int
    samples: int
    seconds: float
    final_loss: float | None
    history: list  # on_epoch_end's records, one per epoch evaluated
    trained_parameters: int  # trainable at the end (--freeze-layers, --gradual-unfreezing: fewer than all)

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds else 0.0


def train(model: torch.nn.Module, train_set, cfg: RunConfig, rt: Runtime, *, pad_id: int,
          on_epoch_end: Callable[[int, bool], dict | None] | None = None, report: Callable[[StepReport], None] | None = None,
          output_dir: Path | None = None, resume_from: Path | None = None, log=lambda *a, **k: None,
          collate_fn: Callable[..., dict] = collate, schedule: AllLayers | None = None,
          identity: dict | None = None) -> TrainStats:
    """Fine-tune `model` in place; `on_epoch_end(epoch, last)` evaluates (or not: None) and returns the epoch's
    record. cfg.max_steps, when set, says how long to train instead of cfg.num_train_epochs.
    collate_fn makes a micro-batch as `collate` does (adapt.py's masks tokens, drawing from the
    RNGs that checkpoints save, so a resumed run draws what an uninterrupted one would).

    With output_dir, a checkpoint is saved every cfg.save_steps steps and at the end of each epoch
    on_epoch_end evaluated (none after the last: the results come next), and on SIGINT/SIGTERM;
    resume_from continues from one exactly (same batches, same dropout).
    log(text) gets the loop's warnings as plain text (a stop heard, smaller passes after an
    out-of-memory); how they look is the caller's business. schedule: which parameters train in
    each epoch, and at what depth (default: all, at one rate). identity: what the checkpoints record
    as the run's (default: cfg's); a run whose learning rate and epochs defaults.py fitted is known
    by the settings as given, and trains with cfg's.
    """
    import torch

    schedule = schedule or AllLayers()
    set_trainable(model, schedule, epoch=None)  # before DDP and the optimizer take the parameters that train
    runner, base = wrap_model(model, rt, cfg)
    lengths, accumulation = np.asarray(train_set["length"]), cfg.gradient_accumulation_steps
    steps_per_epoch = max(1, len(epoch_batches(lengths, cfg, rt, 0)) // accumulation)
    left = left_out(lengths, cfg, rt, steps_per_epoch)
    if left and not resume_from:
        log(f"each epoch leaves out {left} of {len(lengths)} training examples, drawn anew each epoch: the batches "
            f"of {cfg.batch_size} that do not make a whole step of {accumulation} micro-batch(es) on each of "
            f"{rt.world_size} process(es)")
    total_steps = cfg.max_steps or math.ceil(steps_per_epoch * cfg.num_train_epochs)
    epochs = math.ceil(total_steps / steps_per_epoch)
    state = start_state(base, cfg, rt, total_steps, resume_from, schedule.depths(base))
    if cfg.class_weights:
        state.class_weights = balanced_weights(train_set["label"], base.config.problem_type, base.config.num_labels,
                                               rt.device)
    pos = state.position
    with StopRequest(log) as stop:
        for epoch in range(pos.epoch, epochs):
            base.train()
            set_trainable(base, schedule, epoch)  # gradual unfreezing: one more layer each epoch
            batches = epoch_batches(lengths, cfg, rt, epoch)[:steps_per_epoch * accumulation]
            state.clock = time.perf_counter()
            for first in range(pos.batch, len(batches), accumulation):
                if pos.step >= state.total_steps:
                    break
                group = batches[first:first + accumulation]
                loss = forward_backward(runner, train_set, group, state, cfg, rt, pad_id, log, collate_fn)
                grad_norm = optimizer_step(state, base, cfg)
                count_step(state, loss, grad_norm, group, cfg, rt)
                pos.batch = first + len(group)
                logging_step = pos.step % cfg.logging_steps == 0 or pos.batch == len(batches)
                if logging_step:
                    read_loss(state, cfg)
                if report:
                    report(progress(state, epoch, epochs, steps_per_epoch, logging_step))
                # the epoch's last step is saved (and a stop honoured) after its evaluation, below
                if pos.batch < len(batches) and pos.step < state.total_steps:
                    saved = (save_checkpoint(state, base, cfg, rt, output_dir, identity)
                             if cfg.save_steps and pos.step % cfg.save_steps == 0 else None)
                    if stop.requested(rt, logging_step):
                        saved = saved or save_checkpoint(state, base, cfg, rt, output_dir, identity)
                        raise stopped(stop, pos, saved, rt)
            if rt.device.type == "cuda":
                torch.cuda.synchronize()
            pos.seconds += time.perf_counter() - state.clock
            pos.epoch, pos.batch = epoch + 1, 0
            check_health(state, cfg)
            record = on_epoch_end(epoch, epoch + 1 == epochs) if on_epoch_end else None
            if record:
                pos.history.append(record)
            state.clock = time.perf_counter()  # evaluation time is not training time
            # a checkpoint (the weights and an optimizer's state, three times their size) where the epoch was
            # evaluated, or --save-steps says: on a few hundred examples scored every few epochs, saving after
            # each took longer than the epochs; none after the last, whose results are written next
            due = record or not on_epoch_end or (cfg.save_steps and pos.step % cfg.save_steps == 0)
            stopping = stop.requested(rt, True)
            saved = save_checkpoint(state, base, cfg, rt, output_dir, identity) \
                if (due and epoch + 1 < epochs) or stopping else None
            if stopping:
                raise stopped(stop, pos, saved, rt)
    check_health(state, cfg)
    final_loss = pos.last_loss if math.isfinite(pos.last_loss) else None  # fp16's skipped steps: no number
    trained = sum(p.numel() for p in base.parameters() if p.requires_grad) if pos.step else 0
    return TrainStats(pos.step, pos.samples, pos.seconds, final_loss, pos.history, trained)


class AllLayers:
    """Which parameters train in each epoch, and each one's depth below the output, which sets its
    learning rate under --layer-lr-decay: here every parameter, in every epoch, at one rate.
    layers.py's LayerSchedule (--freeze-layers, --gradual-unfreezing, --layer-lr-decay) is the other."""

    def check(self, config) -> None:
        """Said on the model's configuration, before its weights load."""

    def trains(self, model: torch.nn.Module, epoch: int | None) -> dict[str, bool]:
        """Parameter name -> whether it trains in `epoch` (0-based; None: in any epoch of the run)."""
        return {name: True for name, _ in model.named_parameters()}

    def depths(self, model: torch.nn.Module) -> dict[str, int]:
        """Parameter name -> its depth (0: the head); a name left out is at depth 0."""
        return {}

    def trained_parameters(self, model: torch.nn.Module, epochs: float) -> int:
        """How many parameters the run's last epoch trains (none without an epoch)."""
        if not math.ceil(epochs):
            return 0
        flags = self.trains(model, math.ceil(epochs) - 1)
        return sum(p.numel() for name, p in model.named_parameters() if flags[name])


def set_trainable(model: torch.nn.Module, schedule: AllLayers, epoch: int | None) -> None:
    """requires_grad for every parameter, for `epoch`; None before the optimizer is made, which must
    hold every parameter the run will train (one gradual unfreezing has not reached simply has no
    gradient, so AdamW leaves it alone), so the optimizer's state is the same whatever epoch a run
    resumes in."""
    flags = schedule.trains(model, epoch)
    for name, param in model.named_parameters():
        param.requires_grad_(flags[name])


def wrap_model(model: torch.nn.Module, rt: Runtime, cfg: RunConfig) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Returns (the module to call, the underlying model)."""
    import torch

    model.to(rt.device)
    if rt.distributed:
        ids = [rt.device.index] if rt.device.type == "cuda" else None
        # gradual unfreezing: the layers not yet unfrozen get no gradient, which DDP must look for
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids,
                                                         find_unused_parameters=cfg.gradual_unfreezing), model
    if rt.device.type == "cuda" and torch.cuda.device_count() > 1:
        return torch.nn.DataParallel(model), model
    if rt.device.type == "cuda" and cfg.cuda_graphs:
        # reduce-overhead captures each (batch, length) shape once in a CUDA graph and
        # replays it: the ~35 ms of kernel-launch cost per eager step goes away.
        return torch.compile(model, mode="reduce-overhead", dynamic=False), model
    return model, model


def epoch_batches(lengths: np.ndarray, cfg: RunConfig, rt: Runtime, epoch: int) -> list[np.ndarray]:
    return make_batches(lengths, cfg.batch_size, shuffle=True, seed=cfg.seed + epoch, rank=rt.rank,
                        world_size=rt.world_size)


def left_out(lengths: np.ndarray, cfg: RunConfig, rt: Runtime, steps_per_epoch: int) -> int:
    """How many training examples an epoch (the first; the others alike) gives no step: every process steps
    together, so the batches past the last whole step of every process are dropped."""
    used = sum(len(batch) for rank in range(rt.world_size)
               for batch in make_batches(lengths, cfg.batch_size, shuffle=True, seed=cfg.seed, rank=rank,
                                         world_size=rt.world_size)[:steps_per_epoch * cfg.gradient_accumulation_steps])
    return len(lengths) - used


def build_optimizer(model: torch.nn.Module, cfg: RunConfig, depth: dict[str, int]) -> torch.optim.Optimizer:
    """AdamW over the parameters that require a gradient (--freeze-layers' stay out), in groups by depth
    below the output (--layer-lr-decay F: lr * F**depth; else one depth) and, as in the BERT recipe,
    split in two: no weight decay on biases and LayerNorm weights. The head's groups come first. The
    schedule multiplies every group's rate alike, and the groups are the same on every run, so a
    checkpoint's optimizer state fits them."""
    import torch

    groups = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            d, no_decay = depth.get(name, 0), param.ndim < 2 or "norm" in name.lower()
            group = groups.setdefault((d, no_decay), {
                "params": [], "weight_decay": 0.0 if no_decay else cfg.weight_decay,
                "lr": cfg.learning_rate * (cfg.layer_lr_decay or 1.0) ** d})
            group["params"].append(param)
    # fused: one kernel for all tensors, on CUDA and on the CPU (MiniLM's CPU step: 15 ms, not 90)
    return torch.optim.AdamW([groups[key] for key in sorted(groups)], lr=cfg.learning_rate, fused=True)


def linear_schedule(step: int, warmup_steps: int, total_steps: int) -> float:
    """The learning rate's multiplier after `step` steps: up from 0 over the warm-up, then down to 0
    (as transformers' get_linear_schedule_with_warmup and BERT's run_classifier.py)."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def start_state(model: torch.nn.Module, cfg: RunConfig, rt: Runtime, total_steps: int,
                resume_from: Path | None, depth: dict[str, int]) -> TrainState:
    """A fresh optimizer, schedule and scaler, or the ones saved in resume_from."""
    import torch
    from torch.optim.lr_scheduler import LambdaLR

    optimizer = build_optimizer(model, cfg, depth)
    warmup_steps = int(cfg.warmup_ratio * total_steps)
    scheduler = LambdaLR(optimizer, partial(linear_schedule, warmup_steps=warmup_steps, total_steps=total_steps))
    scaler = torch.amp.GradScaler(rt.device.type, enabled=cfg.fp16)
    position, running_loss = Position(), 0.0
    if resume_from:
        saved = results.load_checkpoint(resume_from, model)
        try:
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            scaler.load_state_dict(saved["scaler"])
            # each process's own random state (dropout), saved by rank; a one-process checkpoint holds one
            set_rng_state(saved["rng"][rt.rank] if isinstance(saved["rng"], list) else saved["rng"])
            position, running_loss = Position(**saved["position"]), saved["running_loss"]
        except (KeyError, TypeError, ValueError) as e:
            raise GlueRunnerError(f"{resume_from} cannot be resumed (saved by another version of glue-runner: {e}); "
                                  "delete it or pass --no-resume to start over") from None
    return TrainState(optimizer, scheduler, scaler, warmup_steps, total_steps, position,
                      running_loss=torch.full((), running_loss, device=rt.device),
                      bad_step=torch.full((), -1, dtype=torch.long, device=rt.device))


def forward_backward(runner: torch.nn.Module, dataset, group: list[np.ndarray], state: TrainState, cfg: RunConfig,
                     rt: Runtime, pad_id: int, log, collate_fn: Callable[..., dict]) -> torch.Tensor:
    """Forward and backward over one optimizer step's micro-batches; returns their summed losses.

    On CUDA out-of-memory the step starts over in smaller passes (--auto-batch-size), or
    stops with the flags that would fit.
    """
    import torch

    while True:
        try:
            return accumulate(runner, dataset, group, state, cfg, rt, pad_id, collate_fn)
        except torch.OutOfMemoryError:
            state.optimizer.zero_grad(set_to_none=True)  # the step starts over: drop its partial gradients
            state.parts = fewer_examples_per_pass(cfg, rt, state.parts, state.position.step + 1, log)


def accumulate(runner: torch.nn.Module, dataset, group: list[np.ndarray], state: TrainState, cfg: RunConfig,
               rt: Runtime, pad_id: int, collate_fn: Callable[..., dict]) -> torch.Tensor:
    import torch

    buckets = rt.device.type == "cuda" and cfg.cuda_graphs
    autocast = torch.autocast(rt.device.type, dtype=rt.amp_dtype) if rt.amp_dtype else nullcontext()
    total = torch.zeros((), device=rt.device)
    for j, indices in enumerate(group):
        pieces = np.array_split(indices, min(state.parts, len(indices)))
        for k, piece in enumerate(pieces):
            batch = to_device(collate_fn(dataset, piece, pad_id, cfg.max_seq_length, buckets, pad_multiple(rt.device)),
                              rt.device)
            share = len(piece) / len(indices)  # pieces of a micro-batch weigh as the whole would
            last = j + 1 == len(group) and k + 1 == len(pieces)
            # DDP: only the last micro-batch of an accumulation all-reduces gradients.
            # no_sync() can be entered once, so forward and backward share one `with`.
            with runner.no_sync() if rt.distributed and not last else nullcontext():
                with autocast:
                    if state.class_weights is None:
                        loss = runner(**batch).loss.mean()  # .mean(): DataParallel returns one loss per GPU
                    else:
                        labels = batch.pop("labels")
                        loss = weighted_loss(runner(**batch).logits, labels, state.class_weights)
                state.scaler.scale(loss * share / cfg.gradient_accumulation_steps).backward()
            total += loss.detach().float() * share
    return total


def balanced_weights(labels, problem_type: str, num_labels: int, device: torch.device) -> torch.Tensor:
    """--class-weights from the training labels (the model's output order): single-label, scikit-learn's
    'balanced' examples / (classes x count), so a class's examples weigh as much in all as any other's;
    multi-label, each label's negatives / positives, BCE's pos_weight. A class with no example gets
    weight 1 (it adds no loss anyway)."""
    import torch

    labels = np.asarray(labels)
    if problem_type == "multi_label_classification":
        positives = labels.sum(axis=0)
        weights = np.where(positives > 0, (len(labels) - positives) / np.maximum(positives, 1), 1.0)
    else:
        counts = np.bincount(labels.astype(np.int64), minlength=num_labels)
        weights = np.where(counts > 0, len(labels) / (num_labels * np.maximum(counts, 1)), 1.0)
    return torch.tensor(weights, dtype=torch.float32, device=device)


def weighted_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The model's classification loss with --class-weights: cross-entropy, or for 0/1 rows (multi-label)
    binary cross-entropy, in float32 under autocast."""
    import torch.nn.functional as F

    if labels.ndim == 2:
        return F.binary_cross_entropy_with_logits(logits.float(), labels.float(), pos_weight=weights)
    return F.cross_entropy(logits.float(), labels, weight=weights)


def optimizer_step(state: TrainState, model: torch.nn.Module, cfg: RunConfig) -> torch.Tensor:
    """Clip, step and schedule; returns the gradient norm before clipping (on the device)."""
    import torch

    state.scaler.unscale_(state.optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
    state.scaler.step(state.optimizer)
    state.scaler.update()
    state.scheduler.step()
    state.optimizer.zero_grad(set_to_none=True)
    return grad_norm


def count_step(state: TrainState, loss: torch.Tensor, grad_norm: torch.Tensor, group: list, cfg: RunConfig,
               rt: Runtime) -> None:
    import torch

    pos = state.position
    pos.step += 1
    if not cfg.fp16:  # under fp16 the gradient scaler skips such steps itself
        finite = torch.isfinite(loss) & torch.isfinite(grad_norm)
        state.bad_step = torch.where(finite | (state.bad_step >= 0), state.bad_step, pos.step)
    state.running_loss += loss
    pos.running_count += len(group)
    pos.samples += sum(len(b) for b in group) * rt.world_size


def check_health(state: TrainState, cfg: RunConfig) -> None:
    first_bad = int(state.bad_step)
    if first_bad >= 0:
        lr = cfg.learning_rate * linear_schedule(first_bad - 1, state.warmup_steps, state.total_steps)
        raise GlueRunnerError(
            f"the training loss or gradients became NaN/inf at step {first_bad} (learning rate {lr:.2e}); "
            "no results or checkpoint were written from it. Try a lower --learning-rate, --warmup-ratio 0.1, "
            "a smaller --max-grad-norm, or --bf16 instead of --fp16")


def read_loss(state: TrainState, cfg: RunConfig) -> None:
    """The one host sync, every logging_steps: the mean loss since the last one."""
    check_health(state, cfg)
    pos = state.position
    pos.last_loss = (state.running_loss / pos.running_count).item()
    state.running_loss.zero_()
    pos.running_count = 0


def progress(state: TrainState, epoch: int, epochs: int, steps_per_epoch: int, logging_step: bool) -> StepReport:
    pos = state.position
    elapsed = pos.seconds + time.perf_counter() - state.clock
    return StepReport(epoch, epochs, pos.step - epoch * steps_per_epoch,
                  min(steps_per_epoch, state.total_steps - epoch * steps_per_epoch),
                  pos.last_loss if logging_step else None, state.scheduler.get_last_lr()[0],
                  pos.samples / elapsed if elapsed else 0.0)


def save_checkpoint(state: TrainState, model: torch.nn.Module, cfg: RunConfig, rt: Runtime,
                    output_dir: Path | None, identity: dict | None) -> Path | None:
    import torch.distributed as dist

    check_health(state, cfg)  # never save (or later evaluate) a model that has diverged
    if output_dir is None:
        return None
    saved, rng = None, rng_state()
    if rt.distributed:  # every process draws its own dropout masks: a resumed run needs each one's state
        every = [None] * rt.world_size
        dist.all_gather_object(every, rng)
        rng = every
    if rt.is_main:
        position = {**asdict(state.position),
                    "seconds": state.position.seconds + time.perf_counter() - state.clock}
        saved = results.save_checkpoint(output_dir, state.position.step, model, {
            "position": position, "running_loss": state.running_loss.item(),
            "optimizer": state.optimizer.state_dict(), "scheduler": state.scheduler.state_dict(),
            "scaler": state.scaler.state_dict(), "rng": rng}, cfg, identity)
    if rt.distributed:
        dist.barrier()  # no rank moves on (or exits) before the checkpoint is complete
    return saved


class StopRequest:
    """SIGINT/SIGTERM while training: finish the step (and an evaluation under way), save a
    checkpoint, then stop; said at once, so the user knows the key was heard.

    A second Ctrl-C (SIGINT) stops at once (KeyboardInterrupt), for a user who cannot wait. A repeated
    SIGTERM does not: schedulers and launchers deliver one stop several times (Slurm signals every
    process of a step, and torchrun and srun pass on the copy they got), and a rank that stopped at once
    would leave the others inside a collective; their SIGKILL follows after a grace anyway.
    Nested (a run's, then its loading's or its loop's), the inner one starts with a stop the outer one
    heard in between, and hands its own back out when it ends.
    """

    def __init__(self, notice=lambda *a, **k: None,
                 when: str = "after this step (and after the evaluation, if one is running) with a checkpoint saved"):
        self.signum, self.previous, self.notice, self.when = None, {}, notice, when

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():  # Python allows handlers only there
            self.previous = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
            if outer := self.outer():
                self.signum = outer.signum
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        if (outer := self.outer()) and outer.signum is None:
            outer.signum = self.signum

    def outer(self) -> StopRequest | None:
        handler = getattr(self.previous.get(signal.SIGTERM), "__self__", None)
        return handler if isinstance(handler, StopRequest) else None

    def handle(self, signum, frame) -> None:
        if self.signum is not None:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return  # the stop already under way
        self.signum = signum
        self.notice(f"{signal.Signals(signum).name}: stopping {self.when}; press Ctrl-C again to stop at once")

    def requested(self, rt: Runtime, sync_point: bool) -> bool:
        import torch
        import torch.distributed as dist

        if rt.distributed:
            # torchrun signals every rank, but not at the same step: agree where a sync happens anyway
            if not sync_point:
                return False
            flag = torch.tensor(self.signum or 0, device=rt.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            self.signum = int(flag) or None
        return self.signum is not None


def stopped(stop: StopRequest, pos: Position, saved: Path | None, rt: Runtime) -> Interrupted:
    if not rt.is_main:
        return Interrupted(stop.signum, "")  # rank 0 saved the checkpoint, and says so
    how = (f"saved {saved}; to continue, run the same command again (it resumes from the newest checkpoint)"
           if saved else "no checkpoint was saved")
    return Interrupted(stop.signum, f"stopped by {signal.Signals(stop.signum).name} at step {pos.step}; {how}")


def rng_state() -> dict:
    import torch

    return {
        "python": random.getstate(),
        "numpy": _numpy_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _numpy_state() -> dict:
    # np.random.get_state() holds an ndarray, which weights_only loading refuses; a tensor is allowed.
    import torch

    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
            "has_gauss": has_gauss, "gauss": gauss}


def set_rng_state(state: dict) -> None:
    import torch

    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def fewer_examples_per_pass(cfg: RunConfig, rt: Runtime, parts: int, step: int, log) -> int:
    """After a CUDA out-of-memory: with --auto-batch-size, split each micro-batch in two more pieces."""
    import torch

    per_pass = -(-cfg.batch_size // parts)
    if rt.device.type == "cuda":
        torch.cuda.empty_cache()
    if cfg.auto_batch_size and per_pass > 1 and not rt.distributed:
        log(f"out of memory at step {step} with {per_pass} examples per pass; --auto-batch-size: "
            f"trying {-(-cfg.batch_size // (2 * parts))} per pass, the same effective batch")
        return 2 * parts
    half = max(1, per_pass // 2)
    accumulation = cfg.gradient_accumulation_steps * -(-cfg.batch_size // half)
    raise GlueRunnerError(
        f"the GPU ran out of memory at step {step} with {per_pass} examples per forward pass "
        f"(--batch-size {cfg.batch_size}, --max-seq-length {cfg.max_seq_length}); pass --batch-size {half} "
        f"--gradient-accumulation-steps {accumulation} (the same effective batch)"
        + ("" if cfg.auto_batch_size or rt.distributed else ", or --auto-batch-size to do that as needed")
        + ", or a shorter --max-seq-length")


# ---- prediction ------------------------------------------------------------

def logits_of(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    return model(**batch).logits


def predict(model: torch.nn.Module, dataset, cfg: RunConfig, rt: Runtime, *, pad_id: int,
            on_batch: Callable[[int, int], None] | None = None, read=logits_of) -> np.ndarray:
    """Logits (or what `read(model, batch)` returns per example) for every example of `dataset`,
    in dataset order, on every rank; on_batch(done, total) before the first batch (done=0, so a
    bar shows its length from the start) and after each.

    Batches are sorted by length (little padding) and larger than in training.
    Under torchrun each rank scores its share and the shares are gathered by
    position, so every example is counted exactly once.
    """
    import torch
    import torch.distributed as dist

    model.eval()
    model.to(rt.device)
    autocast = torch.autocast(rt.device.type, dtype=rt.amp_dtype) if rt.amp_dtype else nullcontext()
    lengths = np.asarray(dataset["length"])
    positions, outputs = [], []
    batches = make_batches(lengths, cfg.eval_batch_size or 4 * cfg.batch_size, shuffle=False, seed=0,
                           rank=rt.rank, world_size=rt.world_size)
    if on_batch:
        on_batch(0, len(batches))
    for done, indices in enumerate(batches, start=1):
        batch = collate(dataset, indices, pad_id, cfg.max_seq_length, buckets=False, multiple=pad_multiple(rt.device))
        batch.pop("labels", None)
        with torch.no_grad(), autocast:
            output = read(model, to_device(batch, rt.device))
        positions.append(indices)
        outputs.append(output.float().cpu().numpy())
        if on_batch:
            on_batch(done, len(batches))
    if rt.distributed:
        gathered = [None] * rt.world_size
        dist.all_gather_object(gathered, (positions, outputs))
        positions = [p for shard, _ in gathered for p in shard]
        outputs = [o for _, shard in gathered for o in shard]  # a rank with no batch adds nothing
    positions = np.concatenate(positions) if positions else np.zeros(0, dtype=np.int64)
    outputs = np.concatenate(outputs) if outputs else np.zeros((0, model.config.num_labels), dtype=np.float32)
    result = np.empty((len(dataset), outputs.shape[1]), dtype=np.float32)
    result[positions] = outputs
    if len(np.unique(positions)) != len(dataset):
        raise RuntimeError("prediction did not cover every example exactly once")
    return result
