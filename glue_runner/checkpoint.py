"""Checkpoints: everything a run needs to continue exactly where it stopped.

    <output_dir>/checkpoint-<step>/
        model.safetensors  the weights (safetensors: loading runs no code)
        state.pt           optimizer, scheduler, grad scaler, RNG states, the data
                           position and the eval history; plain tensors, numbers,
                           lists and dicts, read back with torch.load(weights_only=True)
        config.json        the settings that shape training, compared before resuming

A checkpoint is written into a hidden temporary folder, fsynced, and renamed:
a folder named checkpoint-<step> is always complete, whenever the process dies.
Batches are a pure function of (seed, epoch), so (epoch, batch index) is enough
to replay the data order; the RNG states make dropout draw the same masks.
"""

import json
import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_model, save_model

from .config import RunConfig
from .errors import GlueRunnerError

PREFIX = "checkpoint-"

# Settings that do not change a single training number: a run may resume with
# them changed (say, a new --results-dir or --save-steps).
NOT_COMPARED = {"output_dir", "results_dir", "cache_dir", "do_predict", "save_model", "logging_steps",
                "save_steps", "save_total_limit", "resume", "max_predict_samples", "eval_batch_size",
                "model_name", "device", "cuda_graphs", "auto_batch_size"}


def training_settings(cfg: RunConfig) -> dict:
    return {k: v for k, v in cfg.to_json().items() if k not in NOT_COMPARED}


def rng_state() -> dict:
    return {
        "python": random.getstate(),
        "numpy": _numpy_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _numpy_state() -> dict:
    # np.random.get_state() holds an ndarray, which weights_only loading refuses; a tensor is allowed.
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
            "has_gauss": has_gauss, "gauss": gauss}


def set_rng_state(state: dict) -> None:
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def step_of(folder: Path) -> int:
    return int(folder.name.removeprefix(PREFIX))


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders never carry the name)."""
    if not Path(output_dir).is_dir():
        return []
    found = [p for p in Path(output_dir).iterdir()
             if p.is_dir() and p.name.startswith(PREFIX) and p.name.removeprefix(PREFIX).isdigit()]
    return sorted(found, key=step_of)


def save(output_dir: Path, step: int, model: torch.nn.Module, state: dict, cfg: RunConfig) -> Path:
    """Write checkpoint-<step> atomically, then keep only the newest cfg.save_total_limit."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    final = output_dir / f"{PREFIX}{step}"
    tmp = Path(tempfile.mkdtemp(dir=output_dir, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        save_model(model, str(tmp / "model.safetensors"))
        torch.save(state, tmp / "state.pt")
        (tmp / "config.json").write_text(json.dumps(training_settings(cfg), indent=2) + "\n", encoding="utf-8")
        for file in tmp.iterdir():
            _fsync(file)
        _fsync(tmp)
        os.replace(tmp, final)  # each step is saved once: train() saves an epoch's last step only at its end
        _fsync(output_dir)  # the rename itself survives a power cut
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    prune(output_dir, cfg.save_total_limit)
    return final


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prune(output_dir: Path, keep: int) -> None:
    """Keep the newest `keep` checkpoints and remove temporary folders left by a killed save."""
    found = list_checkpoints(output_dir)
    for old in found[:len(found) - keep]:  # not [:-keep]: keep=0 must remove them all
        shutil.rmtree(old, ignore_errors=True)
    for tmp in Path(output_dir).glob(f".{PREFIX}*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)


def remove_all(output_dir: Path) -> None:
    prune(output_dir, 0)


def load(folder: Path, model: torch.nn.Module) -> dict:
    """Load the weights into `model` and return the rest of the state."""
    try:
        load_model(model, str(folder / "model.safetensors"))
        return torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
    except Exception as e:  # truncated by hand, another model's checkpoint, a pickle with code in it, ...
        raise GlueRunnerError(f"{folder} cannot be resumed ({type(e).__name__}: {str(e).splitlines()[0]}); "
                              "delete it or pass --no-resume to start over") from None


def choose(output_dir: Path, cfg: RunConfig) -> Path | None:
    """The checkpoint to resume from, by cfg.resume: None (automatic), True (required), False (start over)."""
    found = list_checkpoints(output_dir)
    if cfg.resume is False or not found:
        if cfg.resume:
            raise GlueRunnerError(f"--resume: {output_dir} holds no complete checkpoint; drop --resume to start a new run")
        return None
    newest = found[-1]
    try:
        theirs = json.loads((newest / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise GlueRunnerError(f"{newest}/config.json is unreadable ({e}); delete {newest} or pass --no-resume") from None
    ours = json.loads(json.dumps(training_settings(cfg)))  # tuples become lists, as in the file
    changed = [f"{k}: {theirs.get(k)!r} there, {v!r} now" for k, v in ours.items() if theirs.get(k) != v]
    if changed:
        raise GlueRunnerError(
            f"{newest} was saved with other settings ({'; '.join(changed)}); re-run with the same settings to "
            "resume it, pass --no-resume to start over (its checkpoints are deleted), or use another --output-dir")
    return newest
