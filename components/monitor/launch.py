"""Starting retraining runs: a local process (the embedded default) or a KFP run on a cluster.

Both are idempotent by run id: starting a run that already exists returns it, so a monitor
that crashed between recording a run and starting it can simply start it again.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from components.common.kfp_client import RETRAINING_PIPELINE, experiment_id, pipeline_version
from components.common.store import NotFoundError, Store

OUTCOME_FILE = "retraining.json"
"""Written under runs/<run_id>/ when a local retraining run ends: its state and version."""


class LocalLauncher:
    """Runs `kubeloop retrain` as a background process on this machine."""

    def __init__(
        self, store: Store, model: str, config_path: str, overrides: list[str], log_dir: Path
    ) -> None:
        """Args: the store, the model, the config file and overrides the run gets, where its output goes."""
        self.store, self.model, self.config_path = store, model, config_path
        self.overrides, self.log_dir = overrides, log_dir

    def _record(self, run_id: str) -> str:
        return f"monitor/{self.model}/runs/{run_id}/process.json"

    def start(self, run_id: str, evidence: dict[str, Any]) -> str:
        """Start the run unless a process was started for it already; returns its log file."""
        log = self.log_dir / f"{run_id}.log"
        if self.store.exists(self._record(run_id)):
            return str(log)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "cli",
            "retrain",
            "--config",
            self.config_path,
            "--run-id",
            run_id,
            "--trigger",
            "drift",
            "--evidence",
            json.dumps(evidence),
            *self.overrides,
        ]
        with log.open("ab") as out:
            process = subprocess.Popen(  # noqa: S603 - our own CLI, no shell
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.store.write_json(
            self._record(run_id), {"pid": process.pid, "host": socket.gethostname(), "log": str(log)}
        )
        return str(log)

    def status(self, run_id: str) -> str:
        """succeeded or failed once the run wrote its outcome; running while its process lives."""
        try:
            return str(self.store.read_json(f"runs/{run_id}/{OUTCOME_FILE}")["state"])
        except NotFoundError:
            pass
        try:
            record = self.store.read_json(self._record(run_id))
        except NotFoundError:
            return "failed"
        if record.get("host") != socket.gethostname():
            return "running"  # another machine's process: nothing here can tell
        return "running" if _alive(int(record["pid"])) else "failed"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a finished child not reaped yet is a zombie: not running
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return True
    return state != "Z"


RUNNING_STATES = {"PENDING", "RUNNING", "CANCELING", "PAUSED", "RUNTIME_STATE_UNSPECIFIED"}


class KfpLauncher:
    """Creates runs of the registered retraining pipeline through the KFP API (kfp.Client)."""

    def __init__(self, client: Any, experiment: str, version_id: str | None = None) -> None:
        """Args: a kfp.Client, the experiment runs go to, a pinned pipeline version (default: the newest)."""
        self.client, self.experiment, self.version_id = client, experiment, version_id

    def _find(self, run_id: str) -> Any | None:
        flt = json.dumps(
            {"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": run_id}]}
        )
        runs = self.client.list_runs(filter=flt, page_size=1).runs or []
        return runs[0] if runs else None

    def start(self, run_id: str, evidence: dict[str, Any]) -> str:
        """Create the run (named `run_id`) unless one by that name exists; returns the KFP run id.

        Raises:
            ValueError: The retraining pipeline is not registered, or has no version.
        """
        existing = self._find(run_id)
        if existing is not None:
            return str(existing.run_id)
        pipeline_id, version_id = pipeline_version(self.client, RETRAINING_PIPELINE, self.version_id)
        params = {"run_id": run_id, "evidence": json.dumps(evidence), "trigger": "drift"}
        run = self.client.run_pipeline(
            experiment_id(self.client, self.experiment),
            run_id,
            params=params,
            pipeline_id=pipeline_id,
            version_id=version_id,
        )
        return str(run.run_id)

    def status(self, run_id: str) -> str:
        """running, succeeded or failed, from the run's KFP state."""
        run = self._find(run_id)
        if run is None:
            return "failed"
        state = str(run.state or "RUNTIME_STATE_UNSPECIFIED")
        if state in RUNNING_STATES:
            return "running"
        return "succeeded" if state == "SUCCEEDED" else "failed"
