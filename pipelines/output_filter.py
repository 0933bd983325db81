"""Keeps a local run's step output readable: drops kfp's executor-input dumps and tracebacks."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
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
