"""What a run says while it works: library messages through :mod:`logging`, and progress everywhere.

The library never prints: its messages go to the ``w2slab`` logger (:func:`echo`), and whoever runs it decides
where they go (the ``w2s`` command sends them to stdout with :func:`configure_logging`; a notebook or a batch
script can do the same or attach its own handler). Progress of a long loop (:func:`progress_bar`) is a rich bar
on a terminal, and off one (``nohup``, a batch scheduler, a pipe) a line every ``W2SLAB_PROGRESS_SECONDS``
(default 30) with the step, the status (e.g. the loss) and the time left; ``W2SLAB_QUIET`` silences both.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

logger = logging.getLogger("w2slab")
#: seconds between two progress lines when stdout is not a terminal
DEFAULT_PROGRESS_SECONDS = 30.0


def echo(*parts: object, **_print_kwargs: object) -> None:
    """``print``'s signature, ``logging``'s destination: the default ``RuntimeConfig.echo``."""
    logger.info(" ".join(str(part) for part in parts))


class _CurrentStdout(logging.Handler):
    """Writes to whatever ``sys.stdout`` is at the time (pytest's capture, a redirected stream), plain text;
    warnings and errors to ``sys.stderr``."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - logging's own convention: never raise from a handler
            self.handleError(record)


def configure_logging(level: int = logging.INFO) -> None:
    """Send the library's messages to stdout (warnings to stderr) as plain lines (what the CLI does; idempotent)."""
    if not any(isinstance(handler, _CurrentStdout) for handler in logger.handlers):
        handler = _CurrentStdout()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def progress_interval() -> float:
    try:
        return max(0.0, float(os.environ.get("W2SLAB_PROGRESS_SECONDS", DEFAULT_PROGRESS_SECONDS)))
    except ValueError:
        return DEFAULT_PROGRESS_SECONDS


@contextmanager
def progress_bar(description: str, total: int, *, start: int = 0) -> Iterator[Callable[..., None]]:
    """Yield ``advance(status="")``: a rich bar on a terminal, a line every few seconds elsewhere.

    ``start`` steps are already done (a resumed training): they count for the position, not for the ETA.
    """
    if os.environ.get("W2SLAB_QUIET"):
        yield lambda *_args, **_kwargs: None
        return
    if not sys.stderr.isatty():
        with _progress_lines(description, total, start) as advance:
            yield advance
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[status]}"))
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(description, total=total, status="", completed=start)

        def advance(status: str = "") -> None:
            progress.update(task, advance=1, status=status)

        yield advance


@contextmanager
def _progress_lines(description: str, total: int, start: int) -> Iterator[Callable[..., None]]:
    interval = progress_interval()
    began = last = time.monotonic()
    done = start

    def advance(status: str = "") -> None:
        nonlocal done, last
        done += 1
        now = time.monotonic()
        if now - last >= interval and done < total:
            last = now
            rate = (done - start) / max(now - began, 1e-9)
            eta = (total - done) / rate if rate > 0 else float("nan")
            logger.info(f"  {description}: step {done}/{total} ({done / max(total, 1):.0%})"
                        f"{'  ' + status if status else ''}  elapsed {format_seconds(now - began)}  "
                        f"ETA {format_seconds(eta) if eta == eta else '?'}")

    yield advance


class StageClock:
    """The sweep-level line: stage k of N, elapsed, and a rough ETA from the stages of each kind done so far."""

    def __init__(self, kinds: list[str]):
        self.kinds, self.began, self.spent = kinds, time.monotonic(), {}  # kind -> durations

    def line(self, index: int) -> str:
        """``stage k of N, elapsed`` and, once every kind still to come has run once, ``ETA ~`` (not before: a guess
        from other kinds would be off by minutes, a split takes a second, a training minutes)."""
        elapsed = time.monotonic() - self.began
        position = f"stage {index + 1} of {len(self.kinds)}, {format_seconds(elapsed)} elapsed"
        if any(kind not in self.spent for kind in self.kinds[index:]):
            return position
        remaining = sum(sum(self.spent[k]) / len(self.spent[k]) for k in self.kinds[index:])
        return f"{position}, ETA ~{format_seconds(remaining)}"

    def record(self, kind: str, seconds: float) -> None:
        self.spent.setdefault(kind, []).append(seconds)


def quiet_libraries() -> None:
    """Keep the output to our own progress and results (transformers prints a bar per model load)."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
