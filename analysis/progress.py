"""Progress on a terminal, quiet in logs and CI: the one gate (:func:`wanted`) and the one bar (:func:`bar`)
that every long command draws (``fit``, ``demo``, ``train``, ``simulate-network``, ``report``, ``sweep submit
--wait``). rich is imported only when a bar is drawn.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


def wanted() -> bool:
    """Bars only when stderr is a terminal and ``DIFFBRAIN_NO_PROGRESS`` is unset (or ``0``)."""
    return os.environ.get("DIFFBRAIN_NO_PROGRESS", "") in ("", "0") and sys.stderr.isatty()


class Bar:
    """One progress bar (a no-op when progress is not wanted). Calling it, ``bar(fraction, message)``, is the
    ``progress`` callback of :class:`diffbrain.context.RunContext` and of the fitting methods."""

    def __init__(self, progress=None, task=None):
        self._progress, self._task = progress, task

    def update(self, completed: float | None = None, description: str | None = None, note: str | None = None) -> None:
        if self._progress is None:
            return
        fields = {} if note is None else {"note": note}
        self._progress.update(self._task, completed=completed, description=description, **fields)

    def advance(self, steps: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, steps)

    @contextlib.contextmanager
    def step(self, description: str) -> Iterator[None]:
        """A step of a counted bar: shown while it runs, counted once it ends."""
        self.update(description=description)
        yield
        self.advance()

    def __call__(self, fraction: float, message: str = "") -> None:
        self.update(completed=fraction, note=message)


@contextlib.contextmanager
def bar(description: str, total: float = 1.0, counted: bool = False, transient: bool = True) -> Iterator[Bar]:
    """A rich bar on stderr while the block runs: a percentage of ``total`` (1.0: fractions), or with
    ``counted`` "done/total" steps. Yields a :class:`Bar`; a silent one when :func:`wanted` is False."""
    if not wanted():
        yield Bar()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    amount = MofNCompleteColumn() if counted else TextColumn("{task.percentage:>3.0f}%")
    columns = (TextColumn("{task.description}"), BarColumn(), amount, TimeElapsedColumn(),
               TextColumn("{task.fields[note]}"))
    with Progress(*columns, console=Console(stderr=True), transient=transient) as progress:
        yield Bar(progress, progress.add_task(description, total=total, note=""))
