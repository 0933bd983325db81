"""Model registry on the artifact store: versions, stages (production, canary, shadow, archived).

Layout: `models/<name>/versions.json` (the index), `models/<name>/<version>/…` (files) and
`models/<name>/stages.json`. A version is allocated as `pending`, its files are written, then
it is marked `ready`: a reader never picks up a version whose files are still being written.
Index and stage updates are compare-and-swap loops, so concurrent writers never lose updates.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from components.common.artifacts import model_root, version_prefix
from components.common.store import ConflictError, NotFoundError, Store

Stage = Literal["production", "canary", "shadow", "archived"]
STAGES: tuple[Stage, ...] = ("production", "canary", "shadow", "archived")
SINGLE_STAGES: tuple[Stage, ...] = ("production", "canary", "shadow")
MAX_ATTEMPTS = 200


def now_iso() -> str:
    """Current UTC time, ISO 8601 with seconds."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _update(
    store: Store, key: str, empty: dict[str, Any], change: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Read-modify-write `key` until no other writer interferes; returns the written value."""
    for attempt in range(MAX_ATTEMPTS):
        try:
            data, version = store.read_versioned(key)
            value = json.loads(data)
            tag: str | None = version
        except NotFoundError:
            value, tag = json.loads(json.dumps(empty)), None
        change(value)
        try:
            store.write_if(key, json.dumps(value, indent=2, sort_keys=True).encode(), tag)
            return value
        except ConflictError:
            time.sleep(min(0.001 * 2**attempt, 0.05))
    raise ConflictError(f"{key}: gave up after {MAX_ATTEMPTS} conflicting updates")


class Registry:
    """Registered model versions and their stages, for every model in one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _index_key(self, name: str) -> str:
        return f"{model_root(name)}/versions.json"

    def _stages_key(self, name: str) -> str:
        return f"{model_root(name)}/stages.json"

    def version_prefix(self, name: str, version: str) -> str:
        """Store prefix holding a version's files."""
        return version_prefix(name, version)

    def models(self) -> list[str]:
        """Names of every model with at least one version."""
        return sorted({k.split("/")[1] for k in self.store.list("models") if k.endswith("/versions.json")})

    def register(
        self,
        name: str,
        files: Mapping[str, str | Path | bytes],
        info: dict[str, Any],
        versioned_files: Callable[[str], dict[str, bytes]] | None = None,
    ) -> str:
        """Write a new version and return its number as a string ('1', '2', ...).

        Args:
            name: Model name.
            files: File name in the version folder -> local path or bytes.
            info: Summary kept in the index (run id, metrics, parent run...).
            versioned_files: Builds files that must name their own version (the model card);
                called once the number is allocated, before the version becomes ready.
        """
        allocated: dict[str, str] = {}

        def allocate(index: dict[str, Any]) -> None:
            number = str(max((int(v) for v in index["versions"]), default=0) + 1)
            allocated["version"] = number
            index["versions"][number] = {**info, "state": "pending", "created": now_iso()}

        _update(self.store, self._index_key(name), {"versions": {}}, allocate)
        version = allocated["version"]
        prefix = self.version_prefix(name, version)
        if versioned_files is not None:
            files = {**files, **versioned_files(version)}
        for file_name, content in files.items():
            if isinstance(content, bytes):
                self.store.write_bytes(f"{prefix}/{file_name}", content)
            else:
                self.store.upload_file(f"{prefix}/{file_name}", content)

        def mark_ready(index: dict[str, Any]) -> None:
            index["versions"][version]["state"] = "ready"
            index["versions"][version]["files"] = sorted(files)

        _update(self.store, self._index_key(name), {"versions": {}}, mark_ready)
        return version

    def versions(self, name: str) -> dict[str, dict[str, Any]]:
        """Ready versions of `name` (number -> info), oldest first."""
        try:
            index = self.store.read_json(self._index_key(name))
        except NotFoundError:
            return {}
        ready = {v: i for v, i in index["versions"].items() if i.get("state") == "ready"}
        return dict(sorted(ready.items(), key=lambda item: int(item[0])))

    def stages(self, name: str) -> dict[str, Any]:
        """The stage map: production/canary/shadow -> version or None, archived -> list."""
        try:
            return dict(self.store.read_json(self._stages_key(name)))
        except NotFoundError:
            return self._empty_stages()

    @staticmethod
    def _empty_stages() -> dict[str, Any]:
        return {"production": None, "canary": None, "shadow": None, "archived": [], "history": []}

    def stage_of(self, name: str, version: str) -> str | None:
        """The stage holding `version`, or None."""
        stages = self.stages(name)
        for stage in SINGLE_STAGES:
            if stages.get(stage) == version:
                return stage
        return "archived" if version in stages.get("archived", []) else None

    def set_stage(self, name: str, version: str, stage: Stage, reason: str = "") -> dict[str, Any]:
        """Move `version` to `stage`; a version holds one stage at a time.

        Promoting to production archives the previous production version.
        """
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; use one of {', '.join(STAGES)}")
        if version not in self.versions(name):
            raise ValueError(f"{name} has no ready version {version!r}; see `kubeloop models {name}`")

        def change(stages: dict[str, Any]) -> None:
            for single in SINGLE_STAGES:
                if stages.get(single) == version:
                    stages[single] = None
            archived = [v for v in stages.get("archived", []) if v != version]
            if stage == "production" and stages.get("production") not in (None, version):
                archived.append(stages["production"])
            if stage == "archived":
                archived.append(version)
            else:
                stages[stage] = version
            stages["archived"] = archived
            stages.setdefault("history", []).append(
                {"time": now_iso(), "version": version, "stage": stage, "reason": reason}
            )

        return _update(self.store, self._stages_key(name), self._empty_stages(), change)

    def champion(self, name: str) -> str | None:
        """The production version of `name`, or None before the first promotion."""
        production = self.stages(name).get("production")
        return str(production) if production is not None else None
