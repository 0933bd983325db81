"""The loop's view of step output: every line to a log file, only the progress lines to the terminal."""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

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
