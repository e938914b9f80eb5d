"""Where a run's files go and what they hold: its identity and folder, the lock that holds the
folder, checkpoints while it trains, its folder once it is done, and every run read back.

    <results_dir>/runs/<model>/<task>-seed<seed>[-<identity>]/
        checkpoint-<step>/          model.safetensors, state.pt, config.json (the identity)
        adapt-lm/                   --adapt-lm: the adaptation's checkpoint-<step>/ while it trains, then
            model/                  the adapted model, with adaptation.json (its record and the run's identity)
        metrics.json                written last: a run counts only once it is there
        predictions_*.tsv           dev predictions, and test ones with --do-predict

A run's identity (RunConfig.identity: the model, the data, the seed and every setting
that changes the result) decides its folder: the same identity finds its own folder
again (already done, or resumed), another one never takes it over. Every file is written
to a temporary name and renamed into place, so a crash, Ctrl-C or a full disk never
leaves half a file, nor predictions without their metrics.json, nor a broken newest
checkpoint. A run file that cannot be read is named, kept, and shown as such, never dropped
(tables.py writes runs.md from what load_runs reads).

torch and safetensors are imported where checkpoints are written and read: choosing a
run's folder is among the checks made before a run starts, which take a fraction of a second.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import shutil
import socket
import sys
import tempfile
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import fingerprints
from .config import RunConfig
from .errors import GlueRunnerError
from .files import disk_errors, fsync, safe_name, stage

if TYPE_CHECKING:
    import torch


# ---- where a run goes ------------------------------------------------------

def model_name(cfg: RunConfig) -> str:
    """--model-name, else the model's; an adapted model (--adapt-lm) is another model, so it is named apart:
    <model>-tapt (task-adaptive: the task's texts) or <model>-dapt-<file> (domain-adaptive: a texts file)."""
    if cfg.model_name:
        return cfg.model_name
    name = Path(cfg.model).name if Path(cfg.model).expanduser().exists() else cfg.model
    if cfg.adapt_lm:
        name += "-tapt" if cfg.adapt_lm == "task" else f"-dapt-{Path(cfg.adapt_lm).stem}"
    return name


def identity(cfg: RunConfig) -> dict:
    """The run's identity: its settings (RunConfig.identity) and, under "inputs", what its files and model
    held and how many processes train it (fingerprints.py)."""
    return cfg.identity() | {"inputs": fingerprints.inputs(cfg)}


def settings(identity: dict) -> dict:
    return {k: v for k, v in identity.items() if k != "inputs"}


def same_run(theirs: dict, ours: dict) -> bool:
    """Whether a recorded identity is this run's: the same settings, made from the same inputs (as far as both
    can tell: a record made before inputs were fingerprinted matches on its settings)."""
    return settings(theirs) == settings(ours) and fingerprints.same(theirs.get("inputs"), ours.get("inputs"))


def identity_hash(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]


def run_folder(cfg: RunConfig, task_name: str) -> Path:
    """--output-dir, else the first of these folders that holds no run of another identity:
    results/runs/<model>/<task>-seed<seed>, then that with -<8 hex digits of its settings>, then with
    -<8 hex digits of its settings and inputs>. Runs of other settings are kept apart by the first hash, a
    run made from edited data or other weights by the second; a folder that holds only checkpoints made
    with the same settings from other inputs is taken over (they are of no use: the run starts over)."""
    if cfg.output_dir:
        return Path(cfg.output_dir)
    ours = identity(cfg)
    candidates = default_folders(cfg, task_name, ours)
    for folder in candidates:
        held = folder_identity(folder)
        if held is None or same_run(held, ours) or (
                settings(held) == settings(ours) and not (folder / "metrics.json").exists()):
            return folder
    return candidates[-1]


def default_folders(cfg: RunConfig, task_name: str, ours: dict) -> list[Path]:
    base = Path(cfg.results_dir) / "runs" / safe_name(model_name(cfg)) / f"{safe_name(task_name)}-seed{cfg.seed}"
    return [base, base.with_name(f"{base.name}-{identity_hash(settings(ours))}"),
            base.with_name(f"{base.name}-{identity_hash(ours)}")]


def record_identity(record: dict) -> dict:
    """A metrics.json's (or a checkpoint's config.json's) identity; older files have none, so it is made from
    their recorded config."""
    if "identity" in record:
        # A setting added since the file was written takes its default, which is what the run had; one
        # since removed is dropped: a new version of glue-runner still finds the runs an older one made.
        defaults = RunConfig(task="", model="").identity()
        found = {k: record["identity"].get(k, default) for k, default in defaults.items()}
        return found | ({"inputs": record["identity"]["inputs"]} if "inputs" in record["identity"] else {})
    recorded = {"task": record.get("task"), "model": record.get("model") or record.get("model_name") or "",
                "seed": record.get("seed", 42), **record.get("config", {})}
    return RunConfig.from_json(recorded).identity()


ADAPTED, ADAPTATION = "adapt-lm", "adaptation.json"  # adapt.py's folder in a run's, and its adapted model's record


def folder_identity(folder: Path) -> dict | None:
    """The identity of the run in folder (finished, else checkpointed, else adapted); None when the folder
    holds none. A run file that cannot be read counts as another run's: its folder is never taken over."""
    folder = Path(folder)
    found = list_checkpoints(folder)
    adapted = folder / ADAPTED / "model" / ADAPTATION
    source = folder / "metrics.json" if (folder / "metrics.json").exists() else \
        found[-1] / "config.json" if found else adapted if adapted.exists() else None
    if source is None:
        return None
    try:
        saved = json.loads(source.read_text(encoding="utf-8"))
        if source.name == "config.json":  # a checkpoint's: the identity itself
            return record_identity({"identity": saved})
        problem = record_problem(saved)
        return {"unreadable": f"{source}: {problem}"} if problem else record_identity(saved)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
        return {"unreadable": f"{source}: {e}"}


@dataclass
class Plan:
    """Where a run goes and, if it is already done, its record; superseded: a finished run of the same
    settings made from other inputs, which this one is not (its folder, and what changed)."""
    folder: Path
    done: dict | None = None
    superseded: tuple[Path, list[str]] | None = None


def plan(cfg: RunConfig, task_name: str) -> Plan:
    """The run's folder, checked: it can be written, and it holds no finished run of another identity
    (possible only with --output-dir: the default folders never mix identities) unless --overwrite."""
    folder = run_folder(cfg, task_name)
    check_writable(folder)
    ours = identity(cfg)
    held = folder_identity(folder)
    if held is not None and same_run(held, ours):
        return Plan(folder, finished_record(folder))
    if held is not None and (folder / "metrics.json").exists() and not cfg.overwrite:
        raise GlueRunnerError(f"{folder} holds a finished run {'made from other inputs' if settings(held) == settings(ours) else 'with other settings'} "
                              f"({differences(held, ours)}); give this run another --output-dir, or pass "
                              "--overwrite to replace that run")
    return Plan(folder, superseded=superseded(cfg, task_name, ours, folder))


def superseded(cfg: RunConfig, task_name: str, ours: dict, folder: Path) -> tuple[Path, list[str]] | None:
    """The newest finished run of this run's settings, made from other inputs, in the folders before its own."""
    if cfg.output_dir:
        return None
    found = None
    for earlier in default_folders(cfg, task_name, ours):
        if earlier == folder:
            break
        held = folder_identity(earlier)
        if held and "unreadable" not in held and settings(held) == settings(ours) and (earlier / "metrics.json").exists():
            found = (earlier, fingerprints.changes(held.get("inputs"), ours["inputs"]))
    return found


def check_writable(folder: Path, flag: str | None = None) -> None:
    """The folder, or the nearest folder above it that exists, takes new files. flag: the option
    that names the folder, for the message (default: those of the run's folder)."""
    folder = Path(folder)
    dangling = next((p for p in [folder, *folder.parents] if p.is_symlink() and not p.exists()), None)
    if dangling is not None:  # mkdir cannot make a folder through it
        raise GlueRunnerError(f"{dangling} is a link to {os.readlink(dangling)}, which does not exist (a disk that is "
                              f"not mounted?); make that folder, or give the run another {flag or '--output-dir or --results-dir'}")
    if folder.exists() and not folder.is_dir():
        raise GlueRunnerError(f"{folder} is a file, not a folder; give the run a folder ({flag or '--output-dir'})")
    existing = next(p for p in [folder, *folder.parents] if p.exists())
    if not existing.is_dir():
        raise GlueRunnerError(f"{existing} is a file, so {folder} cannot be made; give the run another "
                              f"{flag or '--output-dir'}")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise GlueRunnerError(f"{folder} cannot be written ({existing}: {e.strerror}); give the run a folder you can "
                              f"write ({flag or '--output-dir or --results-dir'})") from None


def finished_record(folder: Path) -> dict | None:
    """The run's metrics.json, if it has one that can be read."""
    try:
        record = json.loads((Path(folder) / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return None if record_problem(record) else record


def differences(theirs: dict, ours: dict) -> str:
    """What differs between a recorded identity and this run's, in words: settings first, then inputs."""
    theirs_settings, ours_settings = settings(theirs), settings(ours)
    found = [f"{k}: {theirs_settings.get(k)!r} there, {v!r} now" for k, v in ours_settings.items()
             if theirs_settings.get(k) != v] + fingerprints.changes(theirs.get("inputs"), ours.get("inputs"))
    return "; ".join(found) or "; ".join(f"{k}: {v!r} there" for k, v in theirs_settings.items() if k not in ours)


LOCK, OWNER = ".glue-run.lock", ".glue-run.owner"


@contextmanager
def run_lock(folder: Path):
    """Hold the run's folder: another glue-run given it stops at once, with a message naming this one."""
    from filelock import FileLock, Timeout

    folder = Path(folder)
    created = [p for p in [folder, *folder.parents] if not p.exists()]  # deepest first
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise in_use(folder) from None
    try:
        (folder / OWNER).write_text(
            f"pid {os.getpid()} on {socket.gethostname()}, since "
            f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M:%S} UTC: glue-run {' '.join(sys.argv[1:])}",
            encoding="utf-8", errors="backslashreplace")  # the command may hold bytes that are not UTF-8
        yield
    finally:
        (folder / OWNER).unlink(missing_ok=True)
        # Removed while still held: a glue-run that opens the name later makes a new lock file and
        # can only start once this run's work is done.
        (folder / LOCK).unlink(missing_ok=True)
        lock.release()
        for made in created:  # a run that failed before writing anything leaves no empty folders behind
            with suppress(OSError):
                made.rmdir()


def check_not_in_use(folder: Path) -> None:
    """Before a run starts: fail now if another glue-run holds the folder (the lock itself is taken later)."""
    if (Path(folder) / LOCK).exists():
        with run_lock(folder):
            pass


class InUse(GlueRunnerError):
    """The run's folder is held by another glue-run: an error for one run, the next run's turn in a sweep."""


def in_use(folder: Path) -> InUse:
    try:
        who = (folder / OWNER).read_text(encoding="utf-8")
    except OSError:
        who = "a process that did not say which"
    return InUse(f"{folder} is in use by another glue-run ({who}); wait for it to finish, or give this run "
                 "another --output-dir or --results-dir")


def write_model(folder: Path, model, tokenizer, files: dict[str, str | bytes], state_dict: dict | None = None) -> None:
    """A model folder: save_pretrained's model (state_dict: what to save instead of the model's own) and
    tokenizer, with `files` (name -> text, or bytes) beside them, written beside the folder and renamed into place."""
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp")
    with disk_errors(str(folder), "The run's results were not written", "run the same command again to finish the run",
                     folder.parent):
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            model.save_pretrained(tmp, state_dict=state_dict)
            tokenizer.save_pretrained(tmp)
            for name, text in files.items():
                if isinstance(text, bytes):
                    (tmp / name).write_bytes(text)
                else:
                    (tmp / name).write_text(text, encoding="utf-8", errors="backslashreplace")  # names not UTF-8
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # a half-written model folder is of no use to anyone
            raise
        shutil.rmtree(folder, ignore_errors=True)  # an --overwrite: the new model replaces the old
        os.replace(tmp, folder)


# ---- checkpoints -----------------------------------------------------------
# model.safetensors holds the weights (loading them runs no code); state.pt the optimizer,
# scheduler, grad scaler, RNG states, data position and eval history, as plain tensors,
# numbers and lists read back with weights_only=True; config.json the run's identity,
# compared before resuming.

PREFIX = "checkpoint-"


def step_of(folder: Path) -> int:
    return int(folder.name.removeprefix(PREFIX))


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders never carry the name)."""
    if not Path(output_dir).is_dir():
        return []
    found = [p for p in Path(output_dir).iterdir()
             if p.is_dir() and p.name.startswith(PREFIX) and p.name.removeprefix(PREFIX).isdigit()]
    return sorted(found, key=step_of)


def save_checkpoint(output_dir: Path, step: int, model: torch.nn.Module, state: dict, cfg: RunConfig,
                    recorded: dict | None = None) -> Path:
    """Write checkpoint-<step> atomically, then keep only the newest cfg.save_total_limit; its config.json
    holds the run's identity (recorded, else cfg's)."""
    import torch
    from safetensors.torch import save_model

    output_dir = Path(output_dir)
    final = output_dir / f"{PREFIX}{step}"
    kept = list_checkpoints(output_dir)
    with disk_errors(str(final), f"The newest complete checkpoint is still {kept[-1].name}" if kept else
                     "No checkpoint of this run is complete", "run the same command again to resume", output_dir):
        output_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=output_dir, prefix=f".{final.name}.", suffix=".tmp"))
        try:
            save_model(model, str(tmp / "model.safetensors"))
            torch.save(state, tmp / "state.pt")
            (tmp / "config.json").write_text(json.dumps(recorded or identity(cfg), indent=2) + "\n", encoding="utf-8")
            for file in tmp.iterdir():
                fsync(file)
            fsync(tmp)
            os.replace(tmp, final)  # each step is saved once: train() saves an epoch's last step only at its end
            fsync(output_dir)  # the rename itself survives a power cut
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    prune_checkpoints(output_dir, cfg.save_total_limit)
    return final


def prune_checkpoints(output_dir: Path, keep: int) -> None:
    """Keep the newest `keep` checkpoints and remove temporary folders left by a killed save."""
    found = list_checkpoints(output_dir)
    for old in found[:len(found) - keep]:  # not [:-keep]: keep=0 must remove them all
        shutil.rmtree(old, ignore_errors=True)
    for tmp in Path(output_dir).glob(f".{PREFIX}*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)


def remove_checkpoints(output_dir: Path) -> None:
    prune_checkpoints(output_dir, 0)


def load_checkpoint(folder: Path, model: torch.nn.Module) -> dict:
    """Load the weights into `model` and return the rest of the state."""
    import torch
    from safetensors.torch import load_model

    try:
        load_model(model, str(folder / "model.safetensors"))
        return torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
    except Exception as e:  # truncated by hand, another model's checkpoint, a pickle with code in it, ...
        raise GlueRunnerError(f"{folder} cannot be resumed ({type(e).__name__}: {str(e).splitlines()[0]}); "
                              "delete it or pass --no-resume to start over") from None


def choose_checkpoint(output_dir: Path, cfg: RunConfig) -> Path | None:
    """The checkpoint to resume from, by cfg.resume: None (automatic), True (required), False (start over)."""
    found = list_checkpoints(output_dir)
    if cfg.resume is False or not found:
        if cfg.resume:
            raise GlueRunnerError(f"--resume: {output_dir} holds no complete checkpoint; drop --resume to start a new run")
        return None
    newest = found[-1]
    theirs, ours = folder_identity(output_dir), identity(cfg)
    if "unreadable" in theirs:
        raise GlueRunnerError(f"{newest}/config.json is unreadable ({theirs['unreadable']}); delete {newest} or "
                              "pass --no-resume")
    if not same_run(theirs, ours):
        raise GlueRunnerError(
            f"{newest} was saved with other settings ({differences(theirs, ours)}); re-run with the same "
            "settings to resume it, pass --no-resume to start over (its checkpoints are deleted), or use another "
            "--output-dir")
    return newest


def stale_checkpoints(output_dir: Path, cfg: RunConfig) -> list[str]:
    """What changed since the checkpoints in output_dir were saved, when they were saved with this run's
    settings from other inputs (an edited file, other weights, other processes); else []. Such checkpoints
    are of no use to this run, which starts over."""
    if not list_checkpoints(output_dir):
        return []
    theirs, ours = folder_identity(output_dir), identity(cfg)
    if "unreadable" in theirs or settings(theirs) != settings(ours):
        return []
    return fingerprints.changes(theirs.get("inputs"), ours["inputs"])


# ---- finished runs and the tables ------------------------------------------


def write_run(output_dir: Path, record: dict, predictions: dict[str, str | bytes]) -> Path:
    """predictions: file name -> its text (predictions, confusion matrices) or bytes (their
    pictures). Everything is written to temporary files first and renamed into place with
    metrics.json, which marks the run complete, last: a failure (a full disk) leaves the folder
    as it was, never predictions without their metrics.json. Files of an earlier result that
    this one does not have (an --overwrite) are removed after."""
    output_dir = Path(output_dir)
    files = {**predictions, "metrics.json": json.dumps(record, indent=2, allow_nan=False) + "\n"}
    staged = []
    with disk_errors(f"the results of {output_dir}", "None of them was written",
                     "run the same command again to finish the run (from its newest checkpoint, if it has one)"):
        try:
            for name, text in files.items():
                staged.append((stage(output_dir / name, text), output_dir / name))
        except BaseException:
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
            raise
        for tmp, final in staged:
            os.replace(tmp, final)
    for stale in [*output_dir.glob("predictions_*.tsv"), *output_dir.glob("confusion_*")]:
        if stale.name not in predictions:
            stale.unlink(missing_ok=True)
    return output_dir / "metrics.json"


@contextmanager
def locked(results_dir: Path):
    from filelock import FileLock

    results_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(results_dir / ".lock"):  # released by the operating system if the process dies
        yield


@dataclass
class Unreadable:
    """A metrics.json that cannot be read: named in warnings and tables, kept on disk untouched."""
    path: Path
    reason: str

    def warning(self) -> str:
        return (f"{self.path} cannot be read ({self.reason}); it is kept as it is and listed as unreadable: "
                "fix or remove it, or re-run that run with --overwrite")


def load_runs(results_dir: Path) -> tuple[list[dict], list[Unreadable]]:
    """Every finished run under results_dir (its record, with "path" added), and the run files that cannot be read."""
    runs, unreadable = [], []
    for path in sorted(Path(results_dir).rglob("metrics.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            unreadable.append(Unreadable(path, str(e).splitlines()[0] if str(e) else type(e).__name__))
            continue
        problem = record_problem(record)
        if problem:
            unreadable.append(Unreadable(path, problem))
            continue
        record["path"] = str(path.parent)
        runs.append(record)
    return runs, unreadable


def record_problem(record) -> str:
    """Why a parsed metrics.json is not a run the tables can use ("" when it is): a hand-edited or
    foreign file must be named as unreadable, never crash a table or be read as numbers it is not."""
    if not (isinstance(record, dict) and isinstance(record.get("metrics"), dict) and isinstance(record.get("task"), str)):
        return "not a glue-run record: no task or metrics"
    wrong = [k for k, v in record["metrics"].items()
             if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v))]
    if wrong:
        return f"metric {wrong[0]} is {record['metrics'][wrong[0]]!r}, not a number"
    if not isinstance(record.get("seed", 0), int) or isinstance(record.get("seed"), bool):
        return f"seed {record['seed']!r} is not a whole number"
    for key in ("model_name", "date"):
        if not isinstance(record.get(key, ""), str):
            return f"{key} {record[key]!r} is not text"
    return ""


