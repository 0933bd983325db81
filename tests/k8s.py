"""Validating Kubernetes objects against the CRDs in ../shared/schemas (as a cluster would)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMAS = Path(__file__).resolve().parent.parent.parent / "shared" / "schemas"


_VALIDATORS: dict[int, Any] = {}


@functools.cache
def load_crds() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema of every served version of every shared CRD (parsed once;
    do not modify)."""
    found = {}
    for path in SCHEMAS.glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                if version.get("served", True):
                    key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                    found[key] = version["schema"]["openAPIV3Schema"]
    return found


def validate_object(obj: dict[str, Any], crds: dict[tuple[str, str], dict[str, Any]]) -> None:
    """Raise if `obj` has no matching CRD, no name, or breaks the CRD's schema."""
    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    if key not in crds:
        raise AssertionError(f"no CRD in {SCHEMAS} serves {key}")
    if not obj.get("metadata", {}).get("name"):
        raise AssertionError(f"{key} has no metadata.name")
    schema = crds[key]
    validator = _VALIDATORS.get(id(schema))
    if validator is None:  # checking a large CRD schema itself takes a second; do it once
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        validator = _VALIDATORS.setdefault(id(schema), cls(schema))
    error = jsonschema.exceptions.best_match(validator.iter_errors(obj))
    if error is not None:
        raise error
