"""Load a config file, apply key=value overrides, and report every problem at once."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from components.common.config import KubeloopConfig, resolve_data_path

FIXES = {
    "missing": "add it",
    "int_type": "use a whole number",
    "int_parsing": "use a whole number",
    "float_type": "use a number",
    "float_parsing": "use a number",
    "bool_type": "use true or false",
    "bool_parsing": "use true or false",
    "string_type": "use a string",
    "list_type": "use a list, e.g. [a, b]",
    "dict_type": "use a mapping of key: value",
    "model_type": "use a mapping of key: value",
    "literal_error": "use one of the allowed values",
    "greater_than": "raise it",
    "greater_than_equal": "raise it",
    "less_than": "lower it",
    "less_than_equal": "lower it",
    "string_pattern_mismatch": "use lowercase letters, digits and '-'",
}


class ConfigError(ValueError):
    """A config that cannot be used; `problems` lists every one, each naming field and fix."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s) in the config:\n{listing}")


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split `training.epochs=3` into (['training', 'epochs'], 3); values are parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError("command line", [f"override '{text}' is not key=value (e.g. training.epochs=3)"])
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError("command line", [f"override '{text}': value is not valid YAML ({exc})"]) from exc
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each dotted key in a nested dict, creating sections as needed."""
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[path[-1]] = value
    return data


def _allowed_fields(loc: tuple[int | str, ...]) -> list[str]:
    """Field names of the config section at `loc` (for 'did you mean' hints)."""
    model: type[BaseModel] = KubeloopConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        candidates = getattr(annotation, "__args__", (annotation,))
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return []
        model = nested[0]
    return list(model.model_fields)


def _describe(error: Any) -> str:
    loc = tuple(error["loc"])
    where = ".".join(str(p) for p in loc) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_fields(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(allowed)}"
        return f"{where}: unknown field; remove it ({hint})"
    if kind == "value_error":
        return f"{where or 'config'}: {error['msg'].removeprefix('Value error, ')}"
    got = error.get("input")
    got_text = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
    fix = FIXES.get(kind, "correct it")
    return f"{where}: {error['msg']}{got_text}; {fix}"


def _dataset_problems(raw: dict[str, Any]) -> list[str]:
    """A local dataset file must exist unless a generator will create it."""
    dataset = raw.get("dataset")
    if not isinstance(dataset, dict) or not isinstance(dataset.get("path"), str):
        return []
    path = dataset["path"]
    if "://" in path or dataset.get("generator") or Path(path).exists():
        return []
    return [f"dataset.path: file '{path}' does not exist; fix the path or add dataset.generator"]


def load_config(path: str | Path, overrides: list[str] | None = None) -> KubeloopConfig:
    """Read, override, validate. Raises ConfigError listing every problem found.

    Args:
        path: YAML config file.
        overrides: `dotted.key=value` strings applied on top of the file.

    Returns:
        The validated config with dataset.path made absolute.
    """
    source = str(path)
    file = Path(path)
    if not file.is_file():
        raise ConfigError(source, [f"config file '{source}' not found; pass an existing --config"])
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"not valid YAML: {exc}"]) from exc
    if not isinstance(raw, dict):
        raise ConfigError(source, ["the top level must be a mapping (name:, dataset:, ...)"])
    raw = apply_overrides(raw, overrides or [])
    dataset = raw.get("dataset")
    if isinstance(dataset, dict) and isinstance(dataset.get("path"), str):
        dataset["path"] = resolve_data_path(dataset["path"], file.parent.resolve())
    training = raw.get("training")
    if isinstance(training, dict) and (training.get("model") or training.get("loss")):
        # A factory module beside the config imports from the config's folder.
        training["code_path"] = resolve_data_path(training.get("code_path") or ".", file.parent.resolve())
    return validate_mapping(raw, source)


def validate_mapping(raw: dict[str, Any], source: str) -> KubeloopConfig:
    """Validate a config already read (from a file, or a ConfigMap on the cluster).

    Raises:
        ConfigError: Every problem found, each naming its field and the fix.
    """
    problems = _dataset_problems(raw)
    try:
        config = KubeloopConfig.model_validate(raw)
    except ValidationError as exc:
        problems = [_describe(e) for e in exc.errors()] + problems
        raise ConfigError(source, problems) from None
    if problems:
        raise ConfigError(source, problems)
    return config
