"""Trackers: the loop's numbers, sent where people already watch their runs.

    --report-to tensorboard   <output_dir>/tensorboard/: train/loss, train/learning_rate and
                              train/samples_per_second per optimizer step, eval/<metric> per epoch

The loop knows nothing of them: run.py hands each StepReport to the progress bar and to the
tracker, and each epoch's record (DevScorer.after_epoch's) to the tracker; run.Tracker is the
base, which drops them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from . import results
from .config import RunConfig
from .errors import GlueRunnerError
from .run import Tracker
from .train import Runtime, StepReport


def start(cfg: RunConfig, output_dir: Path, rt: Runtime, resume_from: Path | None) -> Tracker:
    """The run's tracker, made before the model and data load, so that a missing package stops the run at once."""
    writer = summary_writer()  # checked on every rank, so that all of them stop alike
    if not rt.is_main:
        return Tracker()  # under torchrun only rank 0 writes
    return TensorBoard(writer, output_dir / "tensorboard", results.step_of(resume_from) if resume_from else 0)


def check_installed() -> None:
    """Said before a run starts, without importing torch (find_spec only looks)."""
    if not importlib.util.find_spec("tensorboard"):
        raise GlueRunnerError('--report-to tensorboard needs the tensorboard package: '
                              'pip install "glue-runner[tensorboard]"')


def summary_writer():
    check_installed()
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter


class TensorBoard(Tracker):
    """Scalars in TensorBoard event files, one point per optimizer step (the x axis)."""

    def __init__(self, writer_class, folder: Path, start_step: int):
        self.writer_class, self.folder = writer_class, folder
        self.step = start_step  # a resumed run goes on from its checkpoint's step
        self.writer = None

    def __enter__(self) -> TensorBoard:
        # purge_step: TensorBoard drops what this folder logged from that step on, so a resumed
        # run replaces the steps logged after its checkpoint (not saved, so trained again) and a
        # run that starts over replaces the old log, as it replaces the old metrics.json.
        self.writer = self.writer_class(str(self.folder), purge_step=self.step + 1)
        return self

    def __exit__(self, *exc) -> None:
        self.writer.close()  # flushes: a failed or interrupted run keeps what it logged

    def log_step(self, report: StepReport) -> None:
        self.step += 1  # the loop reports once per optimizer step
        if report.loss is not None:  # read back only at logging steps: no extra host sync
            self.writer.add_scalar("train/loss", report.loss, self.step)
        self.writer.add_scalar("train/learning_rate", report.learning_rate, self.step)
        self.writer.add_scalar("train/samples_per_second", report.samples_per_second, self.step)

    def log_epoch(self, record: dict) -> dict:
        for name, value in record.items():
            if name != "epoch" and value is not None:  # None: undefined on this data
                self.writer.add_scalar(f"eval/{name}", value, self.step)  # the step the epoch ended at
        return record
