"""The processes of a torchrun launch (from /proc, Linux) and its checkpoint, for tests that kill ranks."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import torch


def processes_of(spec_path: Path) -> dict[int, list[bytes]]:
    """PID -> environment of torchrun and its workers started for this spec (their DataLoader
    workers, started from a forkserver, run another command line: see `descendants`)."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:  # the process ended while we looked
            continue
        if b"components.train.worker" in cmdline and str(spec_path).encode() in cmdline:
            found[int(proc.name)] = environ
    return found


def parent_of(pid: int) -> int | None:
    """The parent PID (None once the process is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # the name in brackets may hold spaces


def running(pid: int) -> bool:
    """Whether the process exists and has not exited (a zombie waits only to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def descendants(pid: int) -> list[int]:
    """The PIDs of every process below `pid` (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and (parent := parent_of(int(proc.name))) is not None:
            children.setdefault(parent, []).append(int(proc.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        found.append(todo.pop())
        todo += children.get(found[-1], [])
    return found


def command_name(pid: int) -> str:
    """/proc/PID/comm: the executable's name, or the name a process gave itself ("" once gone)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def rank_processes(spec_path: Path, rank: int) -> tuple[int | None, list[int]]:
    """(PID of the torchrun worker of `rank` for this spec, PIDs of every process below it)."""
    worker = next(
        (pid for pid, env in processes_of(spec_path).items() if f"RANK={rank}".encode() in env), None
    )
    return worker, descendants(worker) if worker is not None else []


def kill_leftovers(spec_path: Path) -> None:
    """SIGKILL whatever of this spec's launch still runs (a failed or hung test leaves nothing)."""
    launched = list(processes_of(spec_path))
    for leftover in [*launched, *(pid for top in launched for pid in descendants(top))]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(leftover, signal.SIGKILL)


def checkpoint_epoch(path: Path) -> int:
    """The last epoch the checkpoint holds (0: none yet)."""
    return int(torch.load(path, weights_only=False)["epoch"]) if path.exists() else 0


def wait_for_epoch(path: Path, epoch: int, deadline: float) -> float:
    """Poll until the checkpoint holds `epoch`; returns when it was seen."""
    while time.monotonic() < deadline:
        if checkpoint_epoch(path) >= epoch:
            return time.monotonic()
        time.sleep(0.02)
    raise TimeoutError(f"no checkpoint of epoch {epoch} in time")
