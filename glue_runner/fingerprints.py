"""What a run reads, by content, and how many processes train it: the half of its identity that its
settings cannot hold.

The settings (RunConfig.identity) name the run's files and its model; this says what they held when it
ran: a digest of each data file it trains and scores on (and of its task file and --adapt-lm's texts),
of each file of a model folder (weights, config, tokenizer) or a Hub model's commit, a Hub dataset's
commit, and the number of processes (under torchrun each takes --batch-size examples, so a step is that
many times larger). Fixing labels in a file, new weights exported to the same folder, or another number
of processes therefore make another run: never "already done", never resumed from the other's
checkpoint. results.py compares them; changes() names what changed.

A file is hashed once per content (files.file_digest keeps digests by size and modification time).
Something that cannot be told (a Hub commit without the Hub or a cached copy) is None, and None matches
anything: runs recorded before inputs were fingerprinted have none at all, and still count as done.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from . import data
from .config import RunConfig, is_task_file
from .files import file_digest

# Files of a model folder that do not shape the model: its card, and git's bookkeeping
NOT_THE_MODEL = {"README.md", ".gitattributes"}


def inputs(cfg: RunConfig) -> dict:
    """The run's inputs by content: {"files": {path: digest}, "model": ..., "processes": N[, "hub_data": commit]}."""
    task = data.task_for(cfg)
    paths = [*(data.split_files(task, cfg, with_test=False) or {}).values()]
    paths += [Path(cfg.task)] if is_task_file(cfg.task) else []
    paths += [Path(cfg.adapt_lm)] if cfg.adapt_lm and cfg.adapt_lm != "task" else []
    found = {"files": {str(Path(p).resolve()): file_digest(p) for p in paths if Path(p).is_file()},
             "model": model(cfg.model, cfg.cache_dir), "processes": processes()}
    if data.from_hub(task, cfg):
        found["hub_data"] = hub_revision(task.hub, "dataset", None)
    return found


def processes() -> int:
    """The processes that train one run together (torchrun's WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def model(name: str, cache_dir: Path | None = None) -> dict | None:
    """A model folder's files by content ({file name: digest}), or a Hub model's {"revision": commit}."""
    folder = Path(name).expanduser()
    if folder.is_dir():
        return {f.name: file_digest(f) for f in sorted(folder.iterdir())
                if f.is_file() and f.name not in NOT_THE_MODEL}
    revision = hub_revision(name, "model", cache_dir)
    return {"revision": revision} if revision else None


@cache
def hub_revision(repo: str, kind: str, cache_dir: Path | None) -> str | None:
    """The commit a Hub repository's main branch is at: asked of the Hub (what a download now fetches), else
    the one the local cache holds; None where neither can say."""
    if os.environ.get("HF_HUB_OFFLINE", "0") in ("0", ""):
        try:
            from huggingface_hub import HfApi

            return HfApi().repo_info(repo, repo_type=kind, timeout=10).sha
        except Exception:  # noqa: BLE001 - no network, a gated or unknown repository: the cache may still say
            pass
    from huggingface_hub import constants

    ref = Path(cache_dir or constants.HF_HUB_CACHE) / f"{kind}s--{repo.replace('/', '--')}" / "refs" / "main"
    try:
        return ref.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def same(theirs: dict | None, ours: dict | None) -> bool:
    """Whether two runs' inputs are the same as far as both can tell (None on either side: cannot tell)."""
    return not changes(theirs, ours)


def changes(theirs: dict | None, ours: dict | None) -> list[str]:
    """What differs between the inputs a run was made from (theirs) and this run's, in words."""
    if theirs is None or ours is None:
        return []
    found = []
    before, now = theirs.get("files") or {}, ours.get("files") or {}
    found += [f"{path} changed" for path in now if before.get(path) not in (None, now[path])]
    model_before, model_now = theirs.get("model"), ours.get("model")
    if model_before and model_now and model_before != model_now:
        if "revision" in model_now:
            found.append(f"the model's commit ({model_before.get('revision', 'a folder')} there, {model_now['revision']} now)")
        else:
            files = sorted(n for n in {*model_before, *model_now} if model_before.get(n) != model_now.get(n))
            found.append(f"the model folder's {', '.join(files)}")
    if None not in (theirs.get("hub_data"), ours.get("hub_data")) and theirs["hub_data"] != ours["hub_data"]:
        found.append(f"the Hub dataset's commit ({theirs['hub_data']} there, {ours['hub_data']} now)")
    if None not in (theirs.get("processes"), ours.get("processes")) and theirs["processes"] != ours["processes"]:
        found.append(f"the processes ({theirs['processes']} there, {ours['processes']} now: each step takes "
                     "--batch-size examples per process)")
    return found
