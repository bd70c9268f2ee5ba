"""Console output of the commands: messages printed verbatim (no rich markup is interpreted in
them, so ``[cpu]`` or a path holding ``[red]`` print as they are) and progress that works with and
without a terminal.

:func:`progress` draws a rich progress bar on a terminal; elsewhere (a log file, CI, ``nohup``) it
prints plain lines, ``description: 12/80 (15 %), 0:01:10 elapsed, ETA 0:06:30``, at most every
:data:`PLAIN_EVERY_S` seconds and at the end.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta

from rich.console import Console
from rich.text import Text

#: plain progress lines (no terminal): at most one per task this often
PLAIN_EVERY_S = 10.0


def stderr_console() -> Console:
    return Console(stderr=True)


def say(console: Console, message: str, label: str | None = None, style: str = "") -> None:
    """Print ``label: message`` with ``message`` verbatim (no markup, no highlighting)."""
    text = Text()
    if label:
        text.append(f"{label}:", style=style or "bold")
        text.append(" ")
    text.append(message)
    console.print(text, highlight=False, soft_wrap=True)


def print_error(message: str, console: Console | None = None) -> None:
    say(console or stderr_console(), message, "error", "bold red")


def note(message: str, console: Console | None = None, label: str = "note") -> None:
    say(console or stderr_console(), message, label, "yellow")


def _hms(seconds: float) -> str:
    return str(timedelta(seconds=int(max(seconds, 0))))


class PlainProgress:
    """The subset of :class:`rich.progress.Progress` the commands use, printing plain lines.

    ``fields`` formats extra task fields after the counts (``{"loss": "loss {}"}``: ``..., loss
    2.301``), as the bar's extra columns do on a terminal.
    """

    def __init__(self, console: Console, every_s: float = PLAIN_EVERY_S,
                 fields: Mapping[str, str] | None = None) -> None:
        self.console, self.every_s = console, every_s
        self.fields = dict(fields or {})
        self.tasks: dict[int, dict] = {}

    def add_task(self, description: str, total: float | None = None, completed: float = 0,
                 **fields: object) -> int:
        tid = len(self.tasks)
        self.tasks[tid] = {"description": description, "total": total, "completed": completed,
                           "start": time.monotonic(), "start_completed": completed, "printed": None,
                           "fields": dict(fields)}
        return tid

    def update(self, task_id: int, *, completed: float | None = None, total: float | None = None,
               advance: float | None = None, description: str | None = None, **fields: object) -> None:
        t = self.tasks[task_id]
        t["fields"].update(fields)
        if total is not None:
            t["total"] = total
        if description is not None:
            t["description"] = description
        if advance is not None:
            t["completed"] += advance
        if completed is not None:
            t["completed"] = completed
        now = time.monotonic()
        finished = t["total"] is not None and t["completed"] >= t["total"]
        if t["completed"] == t["start_completed"] and not finished:
            return  # nothing done yet in this run (a description or a field changed)
        if t["printed"] is None or now - t["printed"] >= self.every_s or finished:
            if finished and t.get("done"):
                return
            t["printed"], t["done"] = now, finished
            self._line(t, now)

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def _line(self, t: dict, now: float) -> None:
        done, total = t["completed"], t["total"]
        elapsed = now - t["start"]
        if total:
            rate_done = done - t["start_completed"]  # a resumed task's ETA counts this run only
            eta = elapsed / rate_done * (total - done) if rate_done > 0 else None
            msg = (f"{done:g}/{total:g} ({100 * done / total:.0f} %), {_hms(elapsed)} elapsed"
                   + (f", ETA {_hms(eta)}" if eta is not None else ""))
        else:
            msg = f"{done:g} done, {_hms(elapsed)} elapsed"
        extra = [fmt.format(t["fields"][name]) for name, fmt in self.fields.items()
                 if t["fields"].get(name) not in (None, "", "-")]
        say(self.console, ", ".join([msg, *extra]), t["description"], "bold")

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class NoProgress:
    """Progress that shows nothing (``--quiet``, JSON output, non-main ranks)."""

    def add_task(self, *_: object, **__: object) -> int:
        return 0

    def update(self, *_: object, **__: object) -> None:
        return None

    def advance(self, *_: object, **__: object) -> None:
        return None


@contextmanager
def progress(console: Console | None = None, *, every_s: float = PLAIN_EVERY_S,
             fields: Mapping[str, str] | None = None, enabled: bool = True) -> Iterator[object]:
    """A rich progress bar on a terminal, :class:`PlainProgress` lines otherwise (nothing when not
    ``enabled``). ``fields`` are extra task fields shown after the counts, each with its format
    (``{"loss": "loss {}"}``); pass them to ``add_task`` / ``update`` as keywords."""
    console = console or stderr_console()
    if not enabled:
        yield NoProgress()
    elif console.is_terminal:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        extra = [TextColumn(fmt.replace("{}", "{task.fields[" + name + "]}"), markup=False)
                 for name, fmt in (fields or {}).items()]
        with Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                      *extra, TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
                      transient=False) as prog:
            yield prog
    else:
        yield PlainProgress(console, every_s, fields)
