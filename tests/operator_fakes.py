"""A recording Cluster for operator tests: objects in a dict, every write kept in order."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from operators.cluster import _contains


@dataclass
class Write:
    """One write a reconcile made."""

    verb: str  # create, patch, delete, status, event
    kind: str
    name: str
    body: dict[str, Any]


@dataclass
class FakeCluster:
    """Holds objects by (kind, namespace, name); `fail_next` makes the next write of a verb raise."""

    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    writes: list[Write] = field(default_factory=list)
    fail_next: dict[str, BaseException] = field(default_factory=dict)

    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Put an object in place as if it had been applied before."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("generation", 1)
        meta.setdefault("uid", f"uid-{meta['name']}")
        self.objects[(obj["kind"], meta["namespace"], meta["name"])] = obj
        return obj

    def body(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        """The object as a handler would receive it now (a copy)."""
        return copy.deepcopy(self.objects[(kind, namespace, name)])

    def _maybe_fail(self, verb: str) -> None:
        if verb in self.fail_next:
            raise self.fail_next.pop(verb)

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def apply(self, obj: dict[str, Any]) -> str:
        self._maybe_fail("apply")
        meta = obj["metadata"]
        key = (obj["kind"], meta["namespace"], meta["name"])
        live = self.objects.get(key)
        if live is not None and _contains(live, obj):
            return "unchanged"
        merged = copy.deepcopy(obj)
        if live is not None:
            merged["status"] = live.get("status", {})
        self.objects[key] = merged
        verb = "create" if live is None else "patch"
        self.writes.append(Write(verb, obj["kind"], meta["name"], copy.deepcopy(obj)))
        return "created" if live is None else "patched"

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        self._maybe_fail("delete")
        gone = self.objects.pop((kind, namespace, name), None)
        self.writes.append(Write("delete", kind, name, {}))
        return gone is not None

    def patch_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        self._maybe_fail("status")
        # The API server takes strict JSON only: a NaN in a status is a 400 there (seen on a
        # real one), so the fake refuses it too.
        json.dumps(status, allow_nan=False)
        obj = self.objects[(kind, namespace, name)]
        obj["status"] = {**obj.get("status", {}), **copy.deepcopy(status)}
        self.writes.append(Write("status", kind, name, copy.deepcopy(status)))

    def event(self, body: dict[str, Any], kind: str, reason: str, message: str) -> None:
        self.writes.append(
            Write(
                "event",
                body["kind"],
                body["metadata"]["name"],
                {"type": kind, "reason": reason, "message": message},
            )
        )

    def taken(self) -> list[Write]:
        """The writes since the last call."""
        out, self.writes = self.writes, []
        return out
