"""What a run shows on the terminal: rich progress bars, the metrics tables, and warnings."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .config import RunConfig
from .scoring import BASELINE_MARGIN, Baseline
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


def metrics_table(task: TaskSpec, name: str, metrics: dict, threshold: dict | None = None,
                  trivial: Baseline | None = None):
    """The run's scores, each beside what the trivial predictor (named under the table) scores."""
    captions = []
    if threshold:
        captions.append(f"multi-label threshold {threshold['value']:g}" + (
            f", chosen on {threshold['chosen_on']} (so these scores are optimistic)" if threshold["chosen_on"] else ""))
    if trivial:
        captions.append(f"baseline: {trivial.predictor}")
    table = Table(title=f"{task.name} · {name}", caption="\n".join(captions) or None)
    table.add_column("metric")
    table.add_column("value", justify="right")
    if trivial:
        table.add_column("baseline", justify="right")
    for key, value in metrics.items():
        base = [_score(trivial.metrics.get(key))] if trivial else []
        table.add_row(key, _score(value), *base)
    return table


def _score(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def baseline_warning(task: TaskSpec, cfg: RunConfig, trivial: Baseline, metrics: dict) -> str:
    """The plain words for a run whose main score does not beat the trivial predictor's."""
    lr = f"--learning-rate {cfg.learning_rate:g}" if cfg.learning_rate else "the learning rate"
    return (f"[yellow]{task.name}: this model learned nothing usable: its score is no better (by more than "
            f"{BASELINE_MARGIN}) than predicting {trivial.predictor} ({trivial.said(metrics)}; the mean of "
            f"{', '.join(task.metrics)}). What usually helps: another learning rate ({lr} now; small models and "
            "small data often need 1e-4 or more), more --num-train-epochs, or --probe as a quick check that the "
            "encoder's features carry the labels at all.[/]")


def per_label_table(title: str, scores: dict):
    table = Table(title=title)
    for name in ("label", "precision", "recall", "F1", "support"):
        table.add_column(name, justify="left" if name == "label" else "right")
    for label, s in scores.items():
        table.add_row(label, f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['f1']:.3f}", str(int(s["support"])))
    return table


def smoke_line(task: TaskSpec, verdict: dict) -> str:
    """A --smoke run's last line: learned, did not learn, or not expected to in its budget (and why)."""
    if not verdict["expected"]:
        return (f"[cyan]smoke: {task.name} is not expected to learn in {verdict['steps']} steps on its subset "
                f"({verdict['why_not']}); it ran end to end ({verdict['scores']})[/]")
    if verdict["learned"]:
        return (f"[green]smoke: {task.name} learned[/] ({verdict['scores']}: above the baseline by more than "
                f"{verdict['margin']})")
    return (f"[bold red]smoke: {task.name} did not learn[/] ({verdict['scores']}: not above the baseline by more "
            f"than {verdict['margin']} after {verdict['steps']} steps)")
