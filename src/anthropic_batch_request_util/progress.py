"""Progress for the Python API: a Rich bar on a terminal and in Jupyter (Rich renders in
both), nothing elsewhere or with ``progress=False``, or the caller's own function, called
with a `Status` at every look the runner takes at the store."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self

import rich.progress
from rich.console import Console

from .store.jobs import Snapshot
from .views import Status, status_of

__all__ = ["ProgressHook", "ProgressOption", "ProgressShown", "RichBar", "job_columns"]

#: a function given every new `Status` of a job while it is driven
ProgressHook = Callable[[Status], object]
#: what `progress=` takes: True (a bar where one can be seen), False (none), or a hook
ProgressOption = bool | ProgressHook


def job_columns(description: str = "{task.description}") -> list[rich.progress.ProgressColumn]:
    """The columns of a job's bar: `description` (a Rich format of the task's), the bar,
    requests done of all, time elapsed, and the detail line."""
    return [
        rich.progress.TextColumn(description),
        rich.progress.BarColumn(),
        rich.progress.MofNCompleteColumn(),
        rich.progress.TimeElapsedColumn(),
        rich.progress.TextColumn("{task.fields[detail]}"),
    ]


class RichBar:
    """One Rich progress bar on `console` while the block runs, when `shown`; `bar` is
    None otherwise, and `show` must not be called then."""

    def __init__(
        self, shown: bool, console: Console, *columns: rich.progress.ProgressColumn
    ) -> None:
        self.shown = shown
        self.console = console
        self.columns = columns
        self.bar: rich.progress.Progress | None = None
        self.task: rich.progress.TaskID | None = None

    def __enter__(self) -> Self:
        if self.shown:
            self.bar = rich.progress.Progress(*self.columns, console=self.console)
            self.bar.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.bar is not None:
            self.bar.__exit__(kind, value, tb)

    def show(self, description: str, done: int, total: int, detail: str = "") -> None:
        assert self.bar is not None
        if self.task is None:
            self.task = self.bar.add_task(description, total=total, detail=detail)
        self.bar.update(self.task, completed=done, total=total, detail=detail)


class ProgressShown(RichBar):
    """A context in which `update` shows a job's progress the way `option` asks."""

    def __init__(self, option: ProgressOption, console: Console | None = None) -> None:
        self.hook: ProgressHook | None = option if callable(option) else None
        shown_on = console or Console(stderr=True)
        visible = shown_on.is_terminal or shown_on.is_jupyter
        super().__init__(
            option is True and visible, shown_on, *job_columns("[bold]{task.description}")
        )

    def update(self, current: Snapshot) -> None:
        """Show one look at the job (the runner's `on_progress`)."""
        if self.hook is None and self.bar is None:
            return
        status = status_of(current)
        if self.hook is not None:
            self.hook(status)
        if self.bar is not None:
            self._show(status, current.store_waiting)

    def _show(self, status: Status, store_waiting: str | None = None) -> None:
        cost = "" if status.cost_usd is None else f"${status.cost_usd:,.4f}"
        detail = " ".join(part for part in (status.status, cost) if part)
        if store_waiting is not None:  # the last look before the store went away
            detail += f" — waiting for the job store ({store_waiting}); retrying"
        self.show(status.job_id, status.done, status.total, detail)
