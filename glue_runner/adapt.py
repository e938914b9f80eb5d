"""Adapt the language model first, then fine-tune (--adapt-lm): the ULMFiT recipe as applied to BERT.

Masked-language-model training of the encoder on the task's own training texts, labels unused
(task-adaptive pretraining, TAPT), or on a text file, one document per line (domain-adaptive,
DAPT; Gururangan et al., 2020, "Don't Stop Pretraining"); fine-tuning then starts from the
adapted weights. The training is train.py's loop with a masking collate, so it is checkpointed,
resumed exactly and stopped safely as fine-tuning is:

    texts -> a fixed held-out share -> its masked-LM loss -> train (BERT's 15% masking)
          -> its masked-LM loss again -> <run folder>/adapt-lm/model/ (save_pretrained, tokenizer, adaptation.json)

The adaptation belongs to its run: the run's identity holds its settings, the run's folder its
checkpoints and then the adapted model, and the same command again reuses a finished one.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console

from . import data, results
from .config import RunConfig
from .display import ProgressBar, each, warning
from .errors import GlueRunnerError
from .layers import LayerSchedule
from .model import hub_options, load_hint, load_tokenizer
from .readers import read_texts
from .run import Tracker, start_or_resume
from .tasks import TaskSpec
from .train import Runtime, collate, seed_everything, to_device, train

if TYPE_CHECKING:  # torch is imported where it is used: the checks before a run answer in a second
    import datasets
    import torch

# BERT's masking (Devlin et al., 2019, 3.1): 15% of the ordinary tokens are chosen and predicted;
# of those 80% become [MASK], 10% a random token and 10% stay as they are.
CHOSEN, AS_MASK, AS_RANDOM = 0.15, 0.8, 0.1
WARMUP_RATIO, WEIGHT_DECAY = 0.06, 0.01  # TAPT's (Gururangan et al., 2020, Table 13)
# The texts the loss is measured on: 5%, at most 1,000, drawn with a seed of their own, so every
# run (and every seed) holds out the same ones and their losses compare.
HELDOUT_SHARE, HELDOUT_MAX, HELDOUT_SEED = 0.05, 1000, 0


# ---- masking ---------------------------------------------------------------

@dataclass
class Masker:
    """BERT's masking of batches of token ids, for the tokenizer it was made from (masker_for)."""
    mask_id: int
    vocab_size: int  # random replacements are drawn from the whole vocabulary, as BERT's were
    special_ids: torch.Tensor  # [CLS], [SEP], [PAD], [UNK], ...: never chosen

    def mask(self, input_ids: torch.Tensor, generator: torch.Generator | None = None):
        """(inputs, labels) for a padded batch: the labels hold the chosen tokens' ids and -100 (which
        the loss ignores) elsewhere. Draws come from torch's global RNG, which the loop seeds and
        its checkpoints save (a resumed run masks what an uninterrupted one would), unless a
        generator is given."""
        import torch

        ordinary = ~torch.isin(input_ids, self.special_ids)
        draw = torch.rand(input_ids.shape, generator=generator).masked_fill(~ordinary, 1.0)
        chosen = draw < CHOSEN
        if ordinary.any() and not chosen.any():
            # a batch with nothing chosen has no loss (0/0: NaN, which the loop stops at): take the likeliest token
            chosen.view(-1)[draw.argmin()] = True
        how = torch.rand(input_ids.shape, generator=generator)
        random_ids = torch.randint(self.vocab_size, input_ids.shape, generator=generator)
        inputs = torch.where(chosen & (how < AS_MASK), self.mask_id, input_ids)
        inputs = torch.where(chosen & (how >= 1 - AS_RANDOM), random_ids, inputs)
        return inputs, torch.where(chosen, input_ids, -100)

    def collate(self, dataset, indices: np.ndarray, pad_id: int, max_len: int, buckets: bool,
                multiple: int = 8) -> dict[str, torch.Tensor]:
        """train.collate's batch, masked: the loop's collate_fn for masked-LM training."""
        batch = collate(dataset, indices, pad_id, max_len, buckets, multiple)
        batch["input_ids"], batch["labels"] = self.mask(batch["input_ids"])
        return batch


def masker_for(tokenizer) -> Masker:
    import torch

    return Masker(tokenizer.mask_token_id, len(tokenizer), torch.tensor(tokenizer.all_special_ids))


# ---- texts -----------------------------------------------------------------

def heldout_split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(training, held-out) positions of n texts, both sorted; the same for the same n, whatever the run's seed."""
    size = min(HELDOUT_MAX, max(1, round(n * HELDOUT_SHARE)))
    heldout = np.sort(np.random.default_rng(HELDOUT_SEED).permutation(n)[:size])
    return np.setdiff1d(np.arange(n), heldout), heldout


def load_texts(task: TaskSpec, cfg: RunConfig, tokenizer, say) -> tuple[datasets.Dataset, datasets.Dataset]:
    """(training, held-out) texts, tokenized. A task's examples are read as fine-tuning reads them: a pair
    as the pair, [SEP] between and token types 0/1, which is the input the encoder will be fine-tuned on
    and the segment-pair input BERT was pretrained on; a file's lines one by one, each cut to
    --max-seq-length tokens (as run_mlm.py's --line_by_line)."""
    if cfg.adapt_lm == "task":
        name, split, reader = "train", data.load_splits(task, cfg, log=say, with_test=False)["train"], task
    else:  # read as a one-sentence task whose only field is the line
        name, split, reader = "texts", read_texts(Path(cfg.adapt_lm), cfg.encoding), replace(task, text_fields=("text",))
    texts = data.tokenize({name: split}, reader, tokenizer, cfg.max_seq_length, cfg.cache_dir)[name]
    texts = texts.select_columns([c for c in ("input_ids", "token_type_ids", "attention_mask", "length")
                                  if c in texts.column_names])
    # an empty text is its special tokens alone: nothing to mask
    usable = np.flatnonzero(np.asarray(texts["length"]) >
                            tokenizer.num_special_tokens_to_add(pair=len(reader.text_fields) == 2))
    if len(usable) < 2:
        raise GlueRunnerError(f"--adapt-lm {cfg.adapt_lm}: {len(usable)} text(s) with words in them; at least 2 are "
                              "needed (a share is held out to measure the masked-LM loss on)")
    training, heldout = heldout_split(len(usable))
    return texts.select(usable[training]), texts.select(usable[heldout])


# ---- the masked-LM loss ----------------------------------------------------

def heldout_loss(model: torch.nn.Module, heldout, masker: Masker, cfg: RunConfig, rt: Runtime, pad_id: int) -> float:
    """The mean loss per masked token of the held-out texts, masked alike every time (all of them at
    once, by a generator of a fixed seed), so the losses before and after adaptation compare."""
    import torch

    model.eval()
    order = np.argsort(-np.asarray(heldout["length"]), kind="stable")  # longest first: each slice is cut below
    batch = collate(heldout, order, pad_id, cfg.max_seq_length, buckets=False, multiple=1)
    batch["input_ids"], batch["labels"] = masker.mask(batch["input_ids"], torch.Generator().manual_seed(HELDOUT_SEED))
    autocast = torch.autocast(rt.device.type, dtype=rt.amp_dtype) if rt.amp_dtype else nullcontext()
    size, total, count = cfg.eval_batch_size or 4 * cfg.batch_size, 0.0, 0
    for start in range(0, len(order), size):
        width = int(batch["attention_mask"][start].sum())  # this slice's longest text
        part = {k: v[start:start + size, :width] for k, v in batch.items()}
        masked = int((part["labels"] != -100).sum())
        if masked:
            with torch.no_grad(), autocast:
                total += model(**to_device(part, rt.device)).loss.float().item() * masked
            count += masked
    return total / count


# ---- the adaptation --------------------------------------------------------

def adapt_first(cfg: RunConfig, task: TaskSpec, run_dir: Path, rt: Runtime, console: Console, say,
                tracker: Tracker) -> dict:
    """The run's adapted model: trained (or resumed from its newest checkpoint), or found already made.
    Returns its record; record["folder"] is the model folder to fine-tune from. The training's losses
    go to the run's tracker, on an axis of their own (adapt/)."""
    import torch.distributed as dist

    folder = Path(run_dir) / results.ADAPTED  # its checkpoints while it trains, then model/
    done = None if cfg.overwrite else finished(folder / "model", cfg)
    if done:
        say(f"[cyan]{task.name}: adapted model already made in {folder / 'model'} (held-out masked-LM loss "
            f"{done['heldout_loss']['before']:.4f} -> {done['heldout_loss']['after']:.4f}); fine-tuning from it[/]",
            highlight=False, soft_wrap=True)
        return {**done, "folder": str(folder / "model")}  # where it is now (the record has where it was written)
    # the loop's settings for this stage; --resume was checked on the fine-tuning's checkpoints, which come after
    lm_cfg = replace(cfg, learning_rate=cfg.adapt_learning_rate, num_train_epochs=cfg.adapt_epochs, max_steps=0,
                     warmup_ratio=WARMUP_RATIO, weight_decay=WEIGHT_DECAY, resume=None if cfg.resume else cfg.resume)
    resume_from = start_or_resume(lm_cfg, task, folder, rt, say)
    adapting = tracker.adaptation(resume_from)
    _, tokenizer = load_tokenizer(task, cfg)
    if tokenizer.mask_token_id is None:
        raise GlueRunnerError(f"'{cfg.model}' has no mask token; --adapt-lm needs a model pretrained as a masked "
                              "language model (BERT, RoBERTa, ELECTRA's generator, ...)")
    training, heldout = load_texts(task, cfg, tokenizer, say)
    seed_everything(cfg.seed)  # a head that has to be made is made the same way every time
    model, new_head = load_masked_lm(cfg, say)
    kept = weights_outside(model, cfg)
    masker, pad_id = masker_for(tokenizer), tokenizer.pad_token_id or 0
    model.to(rt.device)
    before = heldout_loss(model, heldout, masker, lm_cfg, rt, pad_id)
    texts = f"{task.name}'s training texts" if cfg.adapt_lm == "task" else cfg.adapt_lm
    say(f"[bold]adapting {cfg.model}[/] on {texts} ({len(training)}, and {len(heldout)} held out): "
        f"held-out masked-LM loss {before:.4f}", highlight=False, soft_wrap=True)

    def after_epoch(epoch: int, last: bool) -> dict:  # the held-out texts are few (at most 1,000): every epoch
        loss = heldout_loss(model, heldout, masker, lm_cfg, rt, pad_id)
        say(f"adaptation epoch {epoch + 1}: held-out masked-LM loss {loss:.4f}")
        return adapting.log_epoch({"epoch": epoch + 1, "heldout_loss": loss})

    with ProgressBar(console, rt) as bar:
        stats = train(model, training, lm_cfg, rt, pad_id=pad_id, on_epoch_end=after_epoch,
                      report=each(bar.update, adapting.log_step), output_dir=folder, resume_from=resume_from,
                      log=warning(say), collate_fn=masker.collate,
                      schedule=LayerSchedule(lm_cfg))  # --freeze-layers and the others shape this stage too
    record = {
        "source": cfg.identity()["adapt_lm"],
        "texts": {"train": len(training), "heldout": len(heldout)},
        "epochs": cfg.adapt_epochs, "learning_rate": cfg.adapt_learning_rate,
        "warmup_ratio": WARMUP_RATIO, "weight_decay": WEIGHT_DECAY, "mask_share": CHOSEN,
        "steps": stats.steps, "seconds": round(stats.seconds, 3), "final_loss": stats.final_loss,
        "heldout_loss": {"before": before, "after": stats.history[-1]["heldout_loss"]},
        "history": stats.history,
        "new_head": new_head,  # weights the model did not have, which transformers initialised
        "folder": str(folder / "model"),
        "identity": results.identity(cfg),  # the run the adapted model belongs to
    }
    if rt.is_main:
        results.write_model(folder / "model", model, tokenizer,
                            {results.ADAPTATION: json.dumps(record, indent=2) + "\n"},
                            state_dict={**model.state_dict(), **kept})
        results.remove_checkpoints(folder)  # the adapted model is made: its checkpoints are done with
    if rt.distributed:
        dist.barrier()  # every rank fine-tunes from the folder rank 0 has just written
    say(f"adapted: held-out masked-LM loss {before:.4f} -> {record['heldout_loss']['after']:.4f} in "
        f"{stats.seconds:.0f} s; wrote {record['folder']}", highlight=False, soft_wrap=True)
    return record


def finished(folder: Path, cfg: RunConfig) -> dict | None:
    """The record of the adapted model in folder, if it is complete and this run's."""
    try:
        record = json.loads((folder / results.ADAPTATION).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # none yet (a half-written model folder never has its record)
    ours = results.identity(cfg)
    if not results.same_run(results.record_identity(record), ours):  # possible only with --output-dir
        raise GlueRunnerError(f"{folder} holds a model adapted for a run with other settings or inputs "
                              f"({results.differences(results.record_identity(record), ours)}); give this run "
                              "another --output-dir, or pass --overwrite to replace it")
    return record


def load_masked_lm(cfg: RunConfig, say) -> tuple[torch.nn.Module, list[str]]:
    """The model with a masked-LM head, and the names of the weights its checkpoint lacked."""
    import torch
    from transformers import AutoModelForMaskedLM

    try:
        model, info = AutoModelForMaskedLM.from_pretrained(cfg.model, dtype=torch.float32, output_loading_info=True,
                                                           **hub_options(cfg))
    except (OSError, ValueError, RuntimeError) as e:
        raise GlueRunnerError(f"could not load '{cfg.model}' as a masked language model for --adapt-lm: "
                              f"{str(e).splitlines()[0]}{load_hint(e, cfg)}") from None
    new = sorted(info["missing_keys"])
    if new:
        say(f"[yellow]{cfg.model} has no trained masked-LM head ({len(new)} weights missing, e.g. {new[0]}; "
            "sentence-embedding exports often leave it out): transformers initialises one, so the loss before "
            "adaptation is that of an untrained head, and part of the drop is the head learning[/]",
            highlight=False, soft_wrap=True)
    return model, new


def weights_outside(model: torch.nn.Module, cfg: RunConfig) -> dict[str, torch.Tensor]:
    """The base model's weights that the masked-LM model has no place for (BERT's pooler), named as in its
    checkpoint: saved with the adapted model, so fine-tuning starts from the original pooler, as it does
    without --adapt-lm, instead of a fresh one."""
    import torch
    from transformers import AutoModel

    base = AutoModel.from_pretrained(cfg.model, dtype=torch.float32, **hub_options(cfg))
    prefix, have = model.base_model_prefix, model.state_dict()
    return {f"{prefix}.{k}": v for k, v in base.state_dict().items() if f"{prefix}.{k}" not in have}
