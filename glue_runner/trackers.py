"""Trackers: the loop's numbers, sent where people already watch their runs.

    --report-to tensorboard,wandb,mlflow    a comma list; all: those installed; none (the default)

    tensorboard   <output dir>/tensorboard/ (the adaptation's: tensorboard/adapt-lm/)
    wandb         a W&B run in WANDB_PROJECT (else glue-runner), its files in WANDB_DIR (else the output dir)
    mlflow        an MLflow run in MLFLOW_TRACKING_URI's store (else MLflow's default: mlflow.db and mlruns/
                  where glue-run runs) and MLFLOW_EXPERIMENT_NAME's experiment (else MLflow's Default)

Each gets train/loss, train/learning_rate and train/samples_per_second per optimizer step and
eval/<metric> per epoch, against the fine-tuning's step; with --adapt-lm also adapt/loss,
adapt/learning_rate and adapt/samples_per_second per step and adapt/heldout_loss per epoch,
against the adaptation's step. W&B and MLflow also get the run's settings (config, params), its
task, model and seed (the run's name and tags), the final metrics (final/<metric>) and
--save-model's model card; MLflow also metrics.json and the predictions files.

The loop knows nothing of them: run.py hands each StepReport to the progress bar and to the
tracker, each epoch's record (DevScorer.after_epoch's) to the tracker and, once the run's files
are written, its record; adapt.py hands its loop's to the tracker's adaptation Loop. run.Tracker is the base they
share with --report-to none, which drops everything. A run that
resumes from a checkpoint logs on to the W&B and MLflow runs it began (their ids are kept in
trackers.json in its folder); a run that starts over begins new ones.
"""

from __future__ import annotations

import importlib.util
import json
import os
from contextlib import ExitStack
from pathlib import Path

from . import results
from .config import RunConfig
from .files import write_atomic
from .data import task_for
from .errors import GlueRunnerError, Interrupted
from .run import Tracker
from .train import Runtime, StepReport

NAMES = ("tensorboard", "wandb", "mlflow")  # each also names its package and glue-runner's extra for it
PROJECT = "glue-runner"  # W&B's project when WANDB_PROJECT names none
RUNS = "trackers.json"  # in the run's folder: the W&B and MLflow run ids, for a resumed run to log on to


def chosen(report_to: str) -> list[str]:
    """--report-to's trackers: a comma list of NAMES, all (those installed) or none. Checked before anything loads."""
    names = list(dict.fromkeys(name.strip().lower() for name in report_to.split(",") if name.strip()))
    unknown = [name for name in names if name not in (*NAMES, "all", "none")]
    if unknown or not names:
        raise GlueRunnerError(f"--report-to {report_to!r}: {'unknown tracker ' + repr(unknown[0]) if unknown else 'empty'}"
                              f"; choose from {', '.join(NAMES)} (a comma list), all (those installed) or none")
    if len(names) > 1 and {"all", "none"} & set(names):
        raise GlueRunnerError(f"--report-to {report_to}: all and none stand alone; give one of them, or a comma "
                              f"list of {', '.join(NAMES)}")
    if names == ["none"]:
        return []
    if names == ["all"]:
        installed = [name for name in NAMES if importlib.util.find_spec(name)]
        if not installed:
            raise GlueRunnerError(f"--report-to all: none of {', '.join(NAMES)} is installed; "
                                  f'pip install "glue-runner[{",".join(NAMES)}]" (or only the ones you use)')
        return installed
    return names


def check_installed(report_to: str) -> None:
    """Said before a run starts, without importing the trackers (find_spec only looks)."""
    missing = [name for name in chosen(report_to) if not importlib.util.find_spec(name)]
    if missing:
        packages = f"the {' and '.join(missing)} package{'s' if len(missing) > 1 else ''}"
        raise GlueRunnerError(f"--report-to {','.join(missing)} needs {packages}: "
                              f'pip install "glue-runner[{",".join(missing)}]"')


def start(cfg: RunConfig, output_dir: Path, rt: Runtime, resume_from: Path | None) -> Tracker:
    """The run's trackers, made before the model and data load, so that a missing package stops the run at once.
    They start their runs when run.py's `with` block, around the whole run, enters them."""
    names = chosen(cfg.report_to)
    check_installed(cfg.report_to)  # on every rank, so that all of them stop alike
    step = results.step_of(resume_from) if resume_from else 0
    if not rt.is_main:
        return Tracker()  # under torchrun only rank 0 reports
    if goes_on(cfg, output_dir, resume_from):
        runs = earlier_runs(output_dir)
    else:
        (output_dir / RUNS).unlink(missing_ok=True)  # a run that starts over logs to new runs, whatever it reports to
        runs = {}
    trackers = []
    for name in names:
        if name == "tensorboard":
            trackers.append(TensorBoard(summary_writer(), output_dir / "tensorboard", step))
        else:  # runs: shared by these, each adding its own to trackers.json as it starts
            trackers.append((WandB if name == "wandb" else MLflow)(cfg, output_dir, step, runs))
    return Tracker() if not trackers else trackers[0] if len(trackers) == 1 else Several(trackers, step)


def summary_writer():
    check_installed("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter


def goes_on(cfg: RunConfig, output_dir: Path, resume_from: Path | None) -> bool:
    """Whether this run goes on from a checkpoint: its fine-tuning's, or its adaptation's (adapt.py decides that
    later, by the same rule: --overwrite and --no-resume delete those checkpoints, as they do the fine-tuning's)."""
    adapting = cfg.adapt_lm and not cfg.overwrite and cfg.resume is not False and \
        results.list_checkpoints(output_dir / results.ADAPTED)
    return resume_from is not None or bool(adapting)


def earlier_runs(output_dir: Path) -> dict[str, str]:
    """The tracker runs that trackers.json names; none if it is missing (the run reported to none yet) or unreadable."""
    try:
        found = json.loads((output_dir / RUNS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in found.items() if isinstance(v, str)} if isinstance(found, dict) else {}


def remember(output_dir: Path, runs: dict[str, str], name: str, run_id: str) -> None:
    runs[name] = run_id
    write_atomic(output_dir / RUNS, json.dumps(runs, indent=2) + "\n")  # whole or not at all


def identity(cfg: RunConfig) -> tuple[str, dict[str, str]]:
    """The run's name in a tracker, and its task, model and seed as tags: as its folder names it."""
    task, model = task_for(cfg).name, results.model_name(cfg)
    return f"{model}/{task}-seed{cfg.seed}", {"task": task, "model": model, "seed": str(cfg.seed)}


class Loop:
    """One training loop's numbers, against its own optimizer steps: the fine-tuning's (train/ at each step,
    eval/ at each epoch's end) or the adaptation's (adapt/). A resumed loop counts on from its checkpoint's step."""

    def __init__(self, tracker: Reporter, name: str, epoch_prefix: str, start_step: int):
        self.tracker, self.name, self.epoch_prefix = tracker, name, epoch_prefix
        self.start = self.step = start_step

    def log_step(self, report: StepReport) -> None:
        self.step += 1  # the loop reports once per optimizer step
        values = {"loss": report.loss} if report.loss is not None else {}  # read back only at logging steps: no sync
        values |= {"learning_rate": report.learning_rate, "samples_per_second": report.samples_per_second}
        self.tracker.scalars({f"{self.name}/{k}": v for k, v in values.items()}, self)

    def log_epoch(self, record: dict) -> dict:
        """Returns the record, so it can sit between on_epoch_end and the scorer."""
        scores = {f"{self.epoch_prefix}/{k}": v for k, v in record.items()
                  if k != "epoch" and v is not None}  # None: undefined on this data
        if scores:
            self.tracker.scalars(scores, self)  # at the step the epoch ended at
        return record


class Reporter(Tracker):
    """A tracker that writes: each loop's numbers come to scalars() against that loop's own steps (the
    fine-tuning's, the adaptation's), and the run's record to final(). The trackers below are these."""

    def __init__(self, start_step: int = 0):
        self.training = Loop(self, "train", "eval", start_step)

    def log_step(self, report: StepReport) -> None:
        self.training.log_step(report)

    def log_epoch(self, record: dict) -> dict:
        return self.training.log_epoch(record)

    def adaptation(self, resume_from: Path | None) -> Loop:
        """--adapt-lm's loop (adapt.py), counted from its own checkpoint's step."""
        return Loop(self, "adapt", "adapt", results.step_of(resume_from) if resume_from else 0)

    def scalars(self, values: dict[str, float], loop: Loop) -> None:
        """values at loop.step, on loop's axis."""



class Several(Reporter):
    """Several trackers as one: each gets everything."""

    def __init__(self, trackers: list[Tracker], start_step: int):
        super().__init__(start_step)
        self.trackers = trackers

    def __enter__(self) -> Several:
        with ExitStack() as opened:
            for tracker in self.trackers:
                opened.enter_context(tracker)
            self.opened = opened.pop_all()  # had one failed to start, those started before it would be closed now
        return self

    def __exit__(self, *exc) -> None:
        self.opened.__exit__(*exc)

    def scalars(self, values: dict[str, float], loop: Loop) -> None:
        for tracker in self.trackers:
            tracker.scalars(values, loop)

    def final(self, record: dict, files: list[str]) -> None:
        for tracker in self.trackers:
            tracker.final(record, files)


class TensorBoard(Reporter):
    """Scalars in TensorBoard event files, one point per optimizer step (the x axis): the fine-tuning's in
    the folder, the adaptation's, whose steps count apart, in its adapt-lm/ (another run to TensorBoard)."""

    def __init__(self, writer_class, folder: Path, start_step: int):
        super().__init__(start_step)
        self.writer_class, self.folder = writer_class, folder
        self.writers = {}  # loop name -> its SummaryWriter, made when the loop first logs

    def __exit__(self, *exc) -> None:
        for writer in self.writers.values():
            writer.close()  # flushes: a failed or interrupted run keeps what it logged

    def scalars(self, values: dict[str, float], loop: Loop) -> None:
        if loop.name not in self.writers:
            # purge_step: TensorBoard drops what this folder logged from that step on, so a resumed
            # run replaces the steps logged after its checkpoint (not saved, so trained again) and a
            # run that starts over replaces the old log, as it replaces the old metrics.json.
            folder = self.folder if loop.name == "train" else self.folder / results.ADAPTED
            self.writers[loop.name] = self.writer_class(str(folder), purge_step=loop.start + 1)
        for tag, value in values.items():
            self.writers[loop.name].add_scalar(tag, value, loop.step)


class WandB(Reporter):
    """A W&B run (wandb.init reads WANDB_MODE, WANDB_ENTITY, ... itself; WANDB_MODE=offline logs to files
    only): the run's settings as its config, its task, model and seed as its name and tags."""

    def __init__(self, cfg: RunConfig, output_dir: Path, start_step: int, runs: dict[str, str]):
        super().__init__(start_step)
        self.cfg, self.folder, self.runs = cfg, output_dir, runs

    def __enter__(self) -> WandB:
        import wandb

        name, tags = identity(self.cfg)
        earlier = self.runs.get("wandb")
        try:
            self.run = wandb.init(
                project=None if os.environ.get("WANDB_PROJECT") else PROJECT,
                dir=None if os.environ.get("WANDB_DIR") else self.folder,  # its files stay with the run's
                id=earlier, resume="allow" if earlier else None, name=name,
                tags=[f"{k}:{v}"[:64] for k, v in tags.items()],  # W&B refuses longer tags
                config=None if earlier else self.cfg.to_json())  # a resumed run has them
        except wandb.Error as e:
            raise GlueRunnerError(f"--report-to wandb: {e} (WANDB_MODE=offline logs to files only, without an "
                                  "account)") from None
        # each loop's scalars against its own steps, not W&B's count of log calls
        for axis, prefixes in (("train", ("train", "eval")), ("adapt", ("adapt",))):
            self.run.define_metric(f"{axis}/step")
            for prefix in prefixes:
                self.run.define_metric(f"{prefix}/*", step_metric=f"{axis}/step")
        remember(self.folder, self.runs, "wandb", self.run.id)
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.run.finish(exit_code=0 if exc_type is None else 1)

    def scalars(self, values: dict[str, float], loop: Loop) -> None:
        self.run.log({**values, f"{loop.name}/step": loop.step})

    def final(self, record: dict, files: list[str]) -> None:
        self.run.summary.update({f"final/{k}": v for k, v in record["metrics"].items() if v is not None})
        card = self.folder / "model" / "README.md"  # --save-model's
        if card.is_file():
            self.run.save(str(card), base_path=str(self.folder), policy="now")


class MLflow(Reporter):
    """An MLflow run (mlflow reads MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_NAME, ... itself): the run's
    settings as its params, its task, model and seed as its name and tags."""

    def __init__(self, cfg: RunConfig, output_dir: Path, start_step: int, runs: dict[str, str]):
        super().__init__(start_step)
        self.cfg, self.folder, self.runs = cfg, output_dir, runs

    def __enter__(self) -> MLflow:
        import mlflow
        from mlflow.exceptions import MlflowException

        self.mlflow, earlier = mlflow, self.runs.get("mlflow")
        name, tags = identity(self.cfg)
        try:
            run = mlflow.start_run(run_id=earlier) if earlier else mlflow.start_run(run_name=name, tags=tags)
            if not earlier:  # a param cannot change once logged; those that change the result match on a resume
                mlflow.log_params(self.cfg.to_json())
        except MlflowException as e:
            mlflow.end_run("FAILED")
            raise GlueRunnerError(f"--report-to mlflow: {e.message}") from None
        remember(self.folder, self.runs, "mlflow", run.info.run_id)
        return self

    def __exit__(self, exc_type, *exc) -> None:
        stopped = exc_type is not None and issubclass(exc_type, (Interrupted, KeyboardInterrupt))
        self.mlflow.end_run("FINISHED" if exc_type is None else "KILLED" if stopped else "FAILED")

    def scalars(self, values: dict[str, float], loop: Loop) -> None:
        # in the background: a round trip to the store at every step would slow training down
        self.mlflow.log_metrics(values, step=loop.step, synchronous=False)

    def final(self, record: dict, files: list[str]) -> None:
        self.mlflow.log_metrics({f"final/{k}": v for k, v in record["metrics"].items() if v is not None})
        for name in ("metrics.json", *files):
            self.mlflow.log_artifact(str(self.folder / name))
        card = self.folder / "model" / "README.md"  # --save-model's
        if card.is_file():
            self.mlflow.log_artifact(str(card), artifact_path="model")
