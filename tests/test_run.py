"""run.py: one run and a sweep of runs (what happens between the CLI and the loop)."""

import gc
import weakref

import pytest

from glue_runner import run, session
from glue_runner.cli import build_parser
from glue_runner.config import FIELDS, RunConfig, check_bounds, option_of
from glue_runner.errors import GlueRunnerError

FAST = ["--num-train-epochs", "1", "--batch-size", "8", "--learning-rate", "1e-3"]


@pytest.fixture
def loaded_models(monkeypatch):
    """Every model a sweep loads, as (task, weak reference); each load first checks which are still alive."""
    loaded, alive_at_load = [], []
    real = run.load_model

    def load_model(task, cfg, say, check):
        gc.collect()
        alive_at_load.append([name for name, ref in loaded if ref() is not None])
        model = real(task, cfg, say, check)
        loaded.append((task.name, weakref.ref(model.model)))
        return model

    monkeypatch.setattr(run, "load_model", load_model)
    return loaded, alive_at_load


def test_a_sweep_runs_in_glue_order_with_ax_right_after_mnli():
    from glue_runner.session import configs_from_args

    args = build_parser().parse_args(["--task", "all", "--model", "m", "--seeds", "1,2"])
    assert [(c.task, c.seed) for c in configs_from_args(args)][10:16] == [
        ("mnli", 1), ("ax", 1), ("mnli", 2), ("ax", 2), ("qnli", 1), ("qnli", 2)]


def test_a_sweep_frees_each_model_when_its_run_ends(run_cli, loaded_models):
    loaded, alive_at_load = loaded_models
    assert run_cli("--task", "rte,wnli,sst2", *FAST, "--max-train-samples", "8") == 0
    assert [name for name, _ in loaded] == ["sst2", "rte", "wnli"]
    assert alive_at_load == [[], [], []]  # no earlier model is alive when the next one loads
    gc.collect()
    assert all(ref() is None for _, ref in loaded)


def test_the_mnli_model_is_kept_only_until_ax_has_run(run_cli, loaded_models, monkeypatch):
    loaded, alive_at_load = loaded_models
    used_for_ax = []
    real_run = run.run

    def spy(cfg, console, extras, model=None):
        if cfg.task == "ax":
            used_for_ax.append(model.model is loaded[-1][1]())  # the MNLI model just trained, not a new one
        return real_run(cfg, console, extras, model)

    monkeypatch.setattr(session, "run", spy)
    assert run_cli("--task", "mnli,ax,rte", *FAST, "--max-train-samples", "8") == 0
    assert [name for name, _ in loaded] == ["mnli", "rte"] and used_for_ax == [True]
    assert alive_at_load == [[], []]  # AX ran right after MNLI: its model is gone before RTE's loads


def test_every_setting_is_a_flag_with_help_derived_from_run_config():
    parser = build_parser()
    dests = {a.dest: a for a in parser._actions}
    for name, f in FIELDS.items():
        assert name in dests, f"RunConfig.{name} has no flag"
        assert dests[name].help.startswith(option_of(f).help) and option_of(f).help
    args = parser.parse_args(["--task", "cola", "--model", "m", "--no-cuda-graphs", "--no-resume",
                              "--text-columns", "a, b", "--per-device-train-batch-size", "4"])
    assert (args.cuda_graphs, args.resume, args.text_columns, args.batch_size) == (False, False, ("a", "b"), 4)


def test_bounds_come_from_the_fields():
    with pytest.raises(GlueRunnerError, match="--save-total-limit must be at least 1"):
        check_bounds(RunConfig(task="cola", model="m", save_total_limit=0))
    check_bounds(RunConfig(task="cola", model="m"))


def test_resume_compares_exactly_the_settings_that_change_the_result():
    cfg = RunConfig(task="cola", model="m", adapt_lm="task")  # without --adapt-lm, its settings are left out
    compared = set(cfg.identity())
    assert {"learning_rate", "seed", "model", "max_seq_length", "train_file", "fp16"} <= compared
    assert not compared & {"output_dir", "results_dir", "logging_steps", "save_steps", "device", "resume"}
    assert compared == {n for n, f in FIELDS.items() if option_of(f).changes_result}


def test_the_recipe_fills_only_unset_settings():
    cfg = RunConfig(task="rte", model="m", learning_rate=1e-4).resolved({"learning_rate": 3e-5, "batch_size": 16})
    assert (cfg.learning_rate, cfg.batch_size, cfg.num_train_epochs, cfg.warmup_ratio) == (1e-4, 16, 3.0, 0.0)
