"""Keeps step output readable: drops kfp's executor-input dumps and tracebacks, or all but progress lines."""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO


class ExecutorDumpFilter:
    """A stdout wrapper that skips the JSON kfp's executor prints after 'Got executor_input:',
    and the frames of a failed step's traceback.

    The JSON (hundreds of lines per step) ends at its closing brace, indented like the line
    that announced it. A traceback's frames are indented deeper than its 'Traceback' line;
    the exception line that ends it (what failed and why) is kept, with a pointer to
    --verbose. Everything the steps print (progress, decisions) passes unchanged.
    """

    START = "Got executor_input:"
    TRACEBACK = "Traceback (most recent call last):"

    def __init__(self, target: TextIO) -> None:
        self.target = target
        self.pending = ""
        self.end: str | None = None
        self.traceback_indent: str | None = None

    def write(self, text: str) -> int:
        """Buffer to whole lines, then pass on the lines outside a dump or a traceback."""
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            indent = line[: len(line) - len(line.lstrip())]
            if self.end is not None:
                if line.rstrip() == self.end:
                    self.end = None
                continue
            if self.traceback_indent is not None:
                if len(indent) > len(self.traceback_indent) or not line.strip():
                    continue  # a frame, its source line, or a blank inside the traceback
                self.traceback_indent = None
                self.target.write(line + "  (traceback hidden; --verbose shows it)\n")
                continue
            if line.strip() == self.TRACEBACK:
                self.traceback_indent = indent
                continue
            self.target.write(line + "\n")
            if self.START in line:
                self.end = indent + "}"
        return len(text)

    def flush(self) -> None:
        """Flush the wrapped stream (a partial line stays buffered)."""
        self.target.flush()

    def isatty(self) -> bool:
        """Whether the wrapped stream is a terminal."""
        return self.target.isatty()


@contextlib.contextmanager
def quiet_executor_dumps(enabled: bool = True) -> Iterator[None]:
    """Filter sys.stdout for the duration of a local run."""
    if not enabled:
        yield
        return
    original = sys.stdout
    wrapper = ExecutorDumpFilter(original)
    sys.stdout = wrapper
    try:
        yield
    finally:
        if wrapper.pending:
            original.write(wrapper.pending)
        sys.stdout = original


PROGRESS = re.compile(
    r"^\s*(epoch\s+\d+/\d+|training on |early stop|smoke test passed|Task \S+ finished with status)"
)
"""Lines of a step's output that say how far it got (the rest goes to the log file only)."""
COLOUR = re.compile(r"\x1b\[[0-9;]*m")


class ProgressFilter:
    """A stdout wrapper that writes every line to a log file and only progress lines on."""

    def __init__(self, target: TextIO, log: TextIO, say: Callable[[str], None]) -> None:
        self.target, self.log, self.say = target, log, say
        self.pending = ""

    def write(self, text: str) -> int:
        """Log whole lines; pass progress lines to `say`, stripped of colour and indentation."""
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            plain = COLOUR.sub("", line)
            self.log.write(plain + "\n")
            if PROGRESS.search(plain.split(" - INFO - ")[-1]):
                self.say(plain.split(" - INFO - ")[-1].strip())
        return len(text)

    def flush(self) -> None:
        """Flush the log."""
        self.log.flush()

    def isatty(self) -> bool:
        """Never a terminal: steps print plain lines."""
        return False


@contextlib.contextmanager
def progress_only(log_path: Path, say: Callable[[str], None]) -> Iterator[None]:
    """Send a local run's output to `log_path`, and its progress lines to `say`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    original = sys.stdout
    with log_path.open("a", encoding="utf-8") as log:
        wrapper = ProgressFilter(original, log, say)
        sys.stdout = wrapper

        def to_terminal(line: str) -> None:
            sys.stdout = original
            try:
                say(line)
            finally:
                sys.stdout = wrapper

        wrapper.say = to_terminal
        try:
            yield
        finally:
            if wrapper.pending:
                log.write(wrapper.pending)
            sys.stdout = original
