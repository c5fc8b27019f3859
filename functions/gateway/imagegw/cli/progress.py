"""The live view of a batch: one bar per running request (its images), one for the batch
(requests finished, images saved, failures, cost so far). Failures are printed as they happen.

On a terminal the bars redraw in place; piped to a file, rich prints no bars, only the failure
lines and the summary the command prints at the end.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from imagegw.cli.batch import BatchItem, Outcome, Totals


def format_cost(totals: Totals) -> str:
    finished = totals.done
    if totals.priced == 0:
        return "cost n/a" if finished else "cost $0"
    text = f"cost ${totals.cost:.4f}"
    unpriced = finished - totals.priced
    return f"{text} (+{unpriced} unpriced)" if unpriced else text


class RichReporter:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self.totals = Totals()
        self._overall: TaskID | None = None
        self._jobs: dict[str, TaskID] = {}

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()

    def _overall_text(self) -> str:
        totals = self.totals
        failed = f"[red]{totals.failed} failed[/red]" if totals.failed else "0 failed"
        return f"[bold]batch[/bold] {totals.images} images · {failed} · {format_cost(totals)}"

    def begin(self, items: list[BatchItem]) -> None:
        self.totals = Totals(jobs=len(items))
        self._overall = self.progress.add_task(self._overall_text(), total=len(items))

    def _job(self, item: BatchItem) -> TaskID:
        task = self._jobs.get(item.id)
        if task is None:
            task = self.progress.add_task(escape(item.id), total=item.images)
            self._jobs[item.id] = task
        return task

    def status(self, item: BatchItem, status: str) -> None:
        self.progress.update(self._job(item), description=f"{escape(item.id)} {status}")

    def image_saved(self, item: BatchItem) -> None:
        self.progress.advance(self._job(item))

    def finished(self, item: BatchItem, outcome: Outcome) -> None:
        task = self._jobs.pop(item.id, None)
        if task is not None:
            self.progress.remove_task(task)
        self.totals.add(item, outcome)
        if not outcome.ok:
            self.progress.console.print(
                f"[red]{escape(item.id)} failed:[/red] {escape(outcome.error or '')}"
            )
        if self._overall is not None:
            self.progress.update(self._overall, advance=1, description=self._overall_text())
