"""What a run shows on the terminal: rich progress bars, the metrics tables, and warnings."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .tasks import TaskSpec
from .train import Runtime, StepReport


class ProgressBar:
    """The run's progress as rich bars: one per epoch (every step: loss, learning rate, samples/s)
    and one per pass of scoring, removed when it is done."""

    def __init__(self, console: Console, rt: Runtime):
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=console,
                                 disable=not rt.is_main)
        self.epoch, self.task_id = None, None

    def __enter__(self) -> ProgressBar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def update(self, report: StepReport) -> None:
        if report.epoch != self.epoch:
            self.epoch = report.epoch
            self.task_id = self.progress.add_task(f"epoch {report.epoch + 1}/{report.epochs}",
                                                  total=report.steps_in_epoch, info="")
        info = {}
        if report.loss is not None:
            info["info"] = (f"loss {report.loss:.4f}  lr {report.learning_rate:.2e}  "
                            f"{report.samples_per_second:.0f} samples/s")
        self.progress.update(self.task_id, completed=report.step_in_epoch, **info)

    def scoring(self, split: str):
        """on_batch for predict(): a bar for this pass over `split`."""
        task_id = self.progress.add_task(f"scoring {split}", total=None, info="")

        def on_batch(done: int, total: int) -> None:
            self.progress.update(task_id, completed=done, total=total)
            if done == total:
                self.progress.remove_task(task_id)
        return on_batch


def warning(say):
    """say() for the loop's plain-text warnings: in yellow, their own brackets shown as text."""
    return lambda text: say(f"[yellow]{escape(text)}[/]")


def each(*callbacks):
    """One callback that calls several in turn: the loop reports to one."""
    def call(*args) -> None:
        for callback in callbacks:
            callback(*args)
    return call


def metrics_table(task: TaskSpec, name: str, metrics: dict, threshold: dict | None = None):
    caption = None
    if threshold:
        caption = f"multi-label threshold {threshold['value']:g}" + (
            f", chosen on {threshold['chosen_on']} (so these scores are optimistic)" if threshold["chosen_on"] else "")
    table = Table(title=f"{task.name} · {name}", caption=caption)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, "–" if value is None else f"{value:.4f}")
    return table


def per_label_table(title: str, scores: dict):
    table = Table(title=title)
    for name in ("label", "precision", "recall", "F1", "support"):
        table.add_column(name, justify="left" if name == "label" else "right")
    for label, s in scores.items():
        table.add_row(label, f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['f1']:.3f}", str(int(s["support"])))
    return table
