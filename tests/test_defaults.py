"""Defaults that learn (defaults.py): the learning rate fitted to the model's size, the epochs to the
training set's, flags and recipes kept; and a run trained with them resumes and is found done."""

import json
from pathlib import Path

import pytest

from glue_runner import defaults, results
from glue_runner.config import RunConfig
from glue_runner.tasks import TaskSpec, get_task
from tests.test_baseline import labelled
from tests.test_checkpoint import crash_after

OWN = TaskSpec(name="own", text_fields=("sentence",), metrics=("accuracy",), splits={}, columns={}, test_columns={})


def choose(task=OWN, parameters=110_000_000, examples=10_000, **flags):
    cfg = RunConfig(task="t", model="m", **flags).resolved(task.recipe)
    return defaults.choose(cfg, task, flags, parameters, examples)


def test_a_bert_base_sized_model_keeps_the_default_and_the_recipes():
    assert choose().learning_rate == 5e-5 and choose().why == ()
    assert choose(parameters=125_000_000).learning_rate == 5e-5  # RoBERTa-base: still BERT-base's size
    assert choose(get_task("cola")).learning_rate == get_task("cola").recipe["learning_rate"]


def test_smaller_models_take_higher_rates_and_larger_lower_by_the_square_root_of_the_size():
    minilm = choose(parameters=22_713_986)  # all-MiniLM-L6-v2: sqrt(110 / 22.7) = 2.2
    assert minilm.learning_rate == 1e-4
    assert "x2.2 for this model's 22.7M" in minilm.why[0]
    assert choose(parameters=335_000_000).learning_rate == 3e-5  # BERT-large: x0.57
    assert choose(get_task("rte"), parameters=14_000_000).learning_rate == 8e-5  # 3e-5 x 2.8
    assert choose(parameters=25_000).learning_rate == 5e-4  # at most 10x


def test_a_flag_is_kept_whatever_the_size():
    assert choose(parameters=22_713_986, learning_rate=2e-5).learning_rate == 2e-5


def test_a_small_training_set_gets_enough_epochs_for_100_steps():
    assert choose(examples=300).num_train_epochs == 10  # 10 steps an epoch
    assert "300 examples make 10 steps an epoch" in choose(examples=300).why[0]
    assert choose(examples=2_000).num_train_epochs == 3  # 63 steps an epoch: 3 make 189
    assert choose(examples=40).num_train_epochs == defaults.MAX_EPOCHS
    assert choose(examples=300, batch_size=8).num_train_epochs == 3  # 38 steps an epoch
    assert choose(examples=300, num_train_epochs=2.0).num_train_epochs == 2  # a flag is kept
    assert choose(get_task("rte"), examples=300).num_train_epochs == get_task("rte").recipe["num_train_epochs"]


def test_the_choice_is_the_same_every_time():
    assert choose(parameters=22_713_986, examples=300) == choose(parameters=22_713_986, examples=300)


@pytest.mark.parametrize("value, written", [(5.3e-5, 5e-5), (1.1e-4, 1e-4), (9.7e-5, 1e-4), (2.86e-4, 3e-4)])
def test_one_significant_figure(value, written):
    assert defaults.one_figure(value) == written


def test_a_run_with_no_training_flags_trains_with_the_chosen_values_and_resumes(run_cli, tmp_path, monkeypatch,
                                                                               capsys):
    train, dev = labelled(tmp_path / "train.csv", 40, 0, True), labelled(tmp_path / "dev.csv", 16, 1, True)
    # 20 examples a class would choose the few-shot recipe: this is about fine-tuning's rate and epochs
    args = ["--train-file", str(train), "--validation-file", str(dev), "--batch-size", "16", "--save-steps", "5",
            "--output-dir", str(tmp_path / "run"), "--no-few-shot"]
    with crash_after(monkeypatch, 1):
        run_cli(*args, data=False)
    saved = results.list_checkpoints(tmp_path / "run")
    identity = json.loads((saved[0] / "config.json").read_text())
    assert identity["learning_rate"] == 5e-5 and identity["num_train_epochs"] == 3.0  # the settings as given
    assert run_cli(*args, data=False) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "resuming from" in err
    assert "learning rate 0.0005: the default 5e-05 is for BERT-base's 110M parameters" in err
    record = json.loads(Path(tmp_path / "run" / "metrics.json").read_text())
    assert record["chosen"]["learning_rate"] == 5e-4 and record["chosen"]["num_train_epochs"] == 20
    assert record["train"]["steps"] == 60  # 3 steps an epoch, 20 epochs
    assert record["config"]["learning_rate"] == 5e-5
    assert run_cli(*args, data=False) == 0  # the same command again: already done, not redone
    assert "already done" in capsys.readouterr().err


def test_runs_md_and_the_leaderboard_note_what_trained():
    from glue_runner import tables

    chosen = defaults.choose(RunConfig(task="t", model="m").resolved({}), OWN, {}, 22_713_986, 300)
    assert chosen.notes == ("lr x2.2 for the model's size", "epochs for 100 steps")
    record = {"config": {"task": "cola"}, "chosen": chosen.record()}
    assert tables.run_notes(record)[-2:] == list(chosen.notes)
    assert choose().notes == ()  # nothing was changed: nothing to note
