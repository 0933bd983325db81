"""Keeps step output readable: drops kfp's executor-input JSON dumps from the live log."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TextIO


class ExecutorDumpFilter:
    """A stdout wrapper that skips the JSON kfp's executor prints after 'Got executor_input:'.

    The JSON (hundreds of lines per step) ends at its closing brace, indented like the line
    that announced it; everything the steps print (progress, decisions) passes unchanged.
    """

    START = "Got executor_input:"

    def __init__(self, target: TextIO) -> None:
        self.target = target
        self.pending = ""
        self.end: str | None = None

    def write(self, text: str) -> int:
        """Buffer to whole lines, then pass on the lines outside a dump."""
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if self.end is not None:
                if line.rstrip() == self.end:
                    self.end = None
                continue
            self.target.write(line + "\n")
            if self.START in line:
                self.end = line[: len(line) - len(line.lstrip())] + "}"
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
