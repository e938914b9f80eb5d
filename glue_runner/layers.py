"""Which parameters train, and how fast: ULMFiT's and ELECTRA's tools for full fine-tuning.

    --layer-lr-decay F    the head trains at --learning-rate, the top layer at lr*F, the next at
                          lr*F^2, ..., the embeddings at lr*F^(L+1) (ELECTRA's layer-wise decay,
                          ULMFiT's discriminative learning rates)
    --freeze-layers N     the embeddings and the lowest N layers never train (N = 0: none)
    --gradual-unfreezing  ULMFiT: the first epoch trains the head alone, each later epoch one
                          more layer from the top, the embeddings last

All three rest on one number per parameter, its depth below the output: 0 for the head,
1 for the top encoder layer, ..., L for the lowest, L + 1 for the embeddings. The layers are
found the same way in every encoder the Auto classes load: the base model's one list of
num_hidden_layers modules (encoder.layer in BERT, RoBERTa and ELECTRA, transformer.layer in
DistilBERT, layers in ModernBERT). An architecture without one, such as ALBERT, whose
layers share one set of weights, is refused before its weights load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import RunConfig
from .errors import GlueRunnerError
from .train import AllLayers

if TYPE_CHECKING:  # torch is imported where it is used: the checks before a run answer in a second
    import torch


def find_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The encoder's layers, bottom first: the base model's list of num_hidden_layers modules
    (DistilBERT's config calls the number n_layers and answers to both names)."""
    import torch

    count = getattr(model.config, "num_hidden_layers", None)
    lists = {name: m for name, m in model.base_model.named_modules()
             if isinstance(m, torch.nn.ModuleList) and len(m) == count}
    # a list inside a layer may have the same length by chance: the outermost list is the layers
    outer = [m for name, m in lists.items() if not any(name.startswith(other + ".") for other in lists)]
    if len(outer) != 1:
        found = "several lists" if outer else "no list"
        raise GlueRunnerError(
            f"--layer-lr-decay, --freeze-layers and --gradual-unfreezing need the model's layers, but "
            f"{type(model.base_model).__name__} holds {found} of {count} layers (num_hidden_layers in its config; "
            "ALBERT, for one, shares a single layer among all); drop these flags for this model")
    return outer[0]


def depths(model: torch.nn.Module) -> tuple[dict[str, int], int]:
    """Each parameter's depth below the output, by its name in model.named_parameters(), and
    the number of layers L: 0 the head, 1 the top layer, ..., L the lowest, L + 1 the embeddings."""
    layers = find_layers(model)
    depth = {}
    for i, layer in enumerate(layers):
        depth.update({id(p): len(layers) - i for p in layer.parameters()})
    # What the layers read goes with the embeddings: ELECTRA's embeddings_project (as ELECTRA's own
    # code does) and DeBERTa's relative position embeddings too.
    depth.update({id(p): len(layers) + 1 for name, p in model.base_model.named_parameters()
                  if id(p) not in depth and "embed" in name})
    # Everything else is the head, at depth 0: the classifier, and the pooler, which only feeds the
    # classifier (inside BERT's base model, beside the classifier in DeBERTa's), and a norm above the
    # top layer (ModernBERT's final_norm). ELECTRA's code, too, gives what is not a layer or an
    # embedding the full rate; it leaves one step empty between the head and the top layer (lr*F^2),
    # where here each group is one step below the one above.
    return {name: depth.get(id(p), 0) for name, p in model.named_parameters()}, len(layers)


def trainable(depth: int, layers: int, cfg: RunConfig, epoch: int | None) -> bool:
    """Whether a parameter at `depth` trains in `epoch` (0-based; None: in any epoch of the run)."""
    if cfg.freeze_layers and depth > layers - cfg.freeze_layers:
        return False  # the embeddings (L + 1) and the lowest N layers (L - N + 1 ... L), for the whole run
    # Gradual unfreezing: epoch e trains depths 0 to e, a function of the epoch alone, so a resumed run
    # recomputes it. A fractional last epoch counts as an epoch; a layer frozen above stays frozen.
    return epoch is None or not cfg.gradual_unfreezing or depth <= epoch


class LayerSchedule(AllLayers):
    """The loop's schedule (train.AllLayers) for a run with any of the three flags."""

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg

    def check(self, config) -> None:
        check_before_loading(self.cfg, config)

    def trains(self, model: torch.nn.Module, epoch: int | None) -> dict[str, bool]:
        if not (self.cfg.freeze_layers or self.cfg.gradual_unfreezing):
            return super().trains(model, epoch)  # needs no layers: any model will do
        depth, layers = depths(model)
        return {name: trainable(d, layers, self.cfg, epoch) for name, d in depth.items()}

    def depths(self, model: torch.nn.Module) -> dict[str, int]:
        return depths(model)[0] if self.cfg.layer_lr_decay else {}


def check_before_loading(cfg: RunConfig, config) -> None:
    """Said before the weights load: --freeze-layers fits the layer count in the model's config, and
    the layers can be found, in a copy of the model without weights (on the meta device: no memory)."""
    import torch

    if not (cfg.layer_lr_decay or cfg.freeze_layers or cfg.gradual_unfreezing):
        return
    count = getattr(config, "num_hidden_layers", None)
    if count is not None and cfg.freeze_layers > count:
        raise GlueRunnerError(f"--freeze-layers {cfg.freeze_layers} is more than the {count} layers of "
                              f"'{cfg.model}'; pass at most {count}")
    from transformers import AutoModelForSequenceClassification

    try:
        with torch.device("meta"):
            skeleton = AutoModelForSequenceClassification.from_config(config, trust_remote_code=cfg.trust_remote_code)
    except ValueError:
        return  # no classification model of this kind: loading it says so
    find_layers(skeleton)
