"""The learning rate and epochs a run trains with where no flag sets them: the recipe's value (or,
for your own data, the fallback's), fitted to the model's size and to the steps its data makes.

Recipes are written for BERT-base (110M parameters) on GLUE-sized data. Smaller encoders train best
at higher rates and larger ones at lower: ELECTRA's small, base and large (14M, 110M, 335M) use 3e-4,
1e-4 and 5e-5, BERT's base and large 2e-5..5e-5 and 1e-5..2e-5, close to the square root of the size
ratio each time. So a model outside BERT-base's size (0.7x to 1.4x) takes the recipe's rate times
sqrt(110M / its parameters), at most 10x, to one significant figure as recipes write them.

A small training set makes few optimizer steps: 3 epochs of 300 examples are 30 steps of 32, too few
to move a pretrained encoder to a new task (few-sample fine-tuning needs more iterations: Mosbach et
al., 2021; Zhang et al., 2021). Where neither a flag nor the recipe sets the epochs, they are the
fallback's 3, or as many as make MIN_STEPS steps, at most MAX_EPOCHS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import FIELDS, OPTIONS, RunConfig
from .tasks import TaskSpec

BERT_BASE_PARAMETERS = 110_000_000
BASE_SIZED = (0.7, 1.4)  # a model this many times BERT-base's parameters keeps the recipe's rate
MAX_FACTOR = 10.0
MIN_STEPS = 100
MAX_EPOCHS = 20.0
# At most this many training examples a class, the defaults choose the few-shot recipe: the evidence
# (benchmarks/README.md, Few-shot) has it ahead of fine-tuning at 8 and at 64 a class, the most measured
FEW_SHOT_UP_TO = 64


@dataclass(frozen=True)
class Chosen:
    """What the run trains with; in words why each setting differs from the one given, and in a table's
    note, alike for every task of one model and data size (a leaderboard row's runs). few_shot: SetFit's
    recipe (fewshot.py) instead of fine-tuning, for few examples a class."""
    learning_rate: float
    num_train_epochs: float
    why: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    few_shot: bool = False

    def record(self) -> dict:
        return {"learning_rate": self.learning_rate, "num_train_epochs": self.num_train_epochs, "why": list(self.why),
                "notes": list(self.notes), "few_shot": self.few_shot}


def choose(cfg: RunConfig, task: TaskSpec, overrides: dict, parameters: int, train_examples: int,
           world_size: int = 1, per_class: float | None = None) -> Chosen:
    """The learning rate and epochs for `cfg` (settled: the recipe's and the fallback's values filled in);
    `overrides` are the settings given as flags, which are kept as they are. per_class: the training
    examples a class (a label's, for multi-label data), which choose the few-shot recipe where it is few."""
    recipe = ("SetFit's recipe (the encoder tuned on pairs of texts at its own settings, then a logistic-regression "
              "head), not fine-tuning's learning rate and epochs")
    if cfg.few_shot:  # asked for: said, and no fine-tuning setting is fitted, for none applies
        return Chosen(cfg.learning_rate, cfg.num_train_epochs, few_shot=True, notes=("few-shot",),
                      why=(f"few-shot (--few-shot): {recipe}",))
    if few_shot(cfg, task, overrides, per_class):
        return Chosen(cfg.learning_rate, cfg.num_train_epochs, few_shot=True, notes=("few-shot",), why=(
            f"few-shot: {per_class:.3g} training examples a class, at most {FEW_SHOT_UP_TO}: {recipe}, which "
            "learns more from few examples than fine-tuning does; --no-few-shot fine-tunes",))
    rate, epochs, why, notes = cfg.learning_rate, cfg.num_train_epochs, [], []
    if "learning_rate" not in overrides:
        factor = size_factor(parameters)
        if factor != 1.0:
            rate = one_figure(cfg.learning_rate * factor)
            source = "recipe's" if "learning_rate" in task.recipe else "default"
            why.append(f"learning rate {rate:g}: the {source} {cfg.learning_rate:g} is for BERT-base's 110M "
                       f"parameters; x{factor:.1f} for this model's {parameters / 1e6:.1f}M (--learning-rate: "
                       "your own)")
            notes.append(f"lr x{factor:.1f} for the model's size")
    if "num_train_epochs" not in overrides and "num_train_epochs" not in task.recipe and train_examples \
            and not cfg.max_steps:  # a number of steps (--max-steps, --smoke's budget) says how long already
        steps = math.ceil(train_examples / (cfg.batch_size * cfg.gradient_accumulation_steps * world_size))
        needed = min(MAX_EPOCHS, float(math.ceil(MIN_STEPS / steps)))
        if needed > epochs:
            why.append(f"{needed:g} epochs: {train_examples} examples make {steps} steps an epoch, and "
                       f"{epochs:g} epochs' {steps * epochs:g} are too few to learn from (at least {MIN_STEPS}; "
                       "--num-train-epochs: your own)")
            notes.append(f"epochs for {MIN_STEPS} steps")
            epochs = needed
    return Chosen(rate, epochs, tuple(why), tuple(notes))


def few_shot(cfg: RunConfig, task: TaskSpec, overrides: dict, per_class: float | None) -> bool:
    """Whether the defaults choose the few-shot recipe: for your own classes or labels (a GLUE task keeps its
    recipe), FEW_SHOT_UP_TO training examples a class or fewer, and no flag that shapes fine-tuning given (a
    learning rate, epochs, layer settings, ...: those ask for fine-tuning) nor --few-shot/--no-few-shot."""
    shaped = [k for k, value in cfg.to_json().items() if OPTIONS[k].fine_tuning and k != "few_shot"
              and (k in overrides or (OPTIONS[k].fallback is None and value != FIELDS[k].default))]
    return (cfg.few_shot is None and task.own and not task.regression and not shaped and per_class is not None
            and per_class <= FEW_SHOT_UP_TO)


def size_factor(parameters: int) -> float:
    ratio = parameters / BERT_BASE_PARAMETERS
    if BASE_SIZED[0] <= ratio <= BASE_SIZED[1]:
        return 1.0
    return min(MAX_FACTOR, math.sqrt(1 / ratio))


def one_figure(value: float) -> float:
    """5.3e-05 -> 5e-05, 1.1e-04 -> 1e-04: a learning rate as recipes write it."""
    exponent = math.floor(math.log10(value))
    return float(f"{round(value / 10 ** exponent)}e{exponent}")
