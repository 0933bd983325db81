"""CRD properties and camelCase spec names derived from config sections, so neither is a copy.

A config section (a pydantic `Section`) is the one definition of a group of settings: its
fields' types, defaults, bounds (`Field(ge=..., lt=...)`, `pattern=`) and docstrings. The
OpenAPI schema a CRD declares for them, and the map from the spec's camelCase names back to
the config's snake_case ones, are computed here from those fields. A field whose config form is
a number of seconds but whose spec form is a duration string (`interval_seconds` as
`interval: 5m`) is named explicitly by the caller in `durations`.
"""

from __future__ import annotations

import types
from collections.abc import Collection, Mapping
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from components.common.monitoring_config import DURATION, duration_seconds

UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
"""Duration units, largest first."""


def camel(name: str) -> str:
    """The camelCase spec name of a snake_case config name (max_p50_ratio -> maxP50Ratio)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def duration_text(seconds: float) -> str:
    """A whole number of seconds as a duration in its largest exact unit (60 -> 1m).

    Raises:
        ValueError: `seconds` is not a positive whole number, which no duration string spells.
    """
    if seconds <= 0 or not float(seconds).is_integer():
        raise ValueError(f"{seconds} s is not a positive whole number of seconds")
    whole = int(seconds)
    unit, size = next((u, s) for u, s in UNITS if whole % s == 0)
    return f"{whole // size}{unit}"


def description(field: FieldInfo) -> str:
    """The field's docstring on one line (as the docs' config reference shows it)."""
    return " ".join((field.description or "").split())


def default_of(field: FieldInfo) -> Any:
    """The field's default value (a factory called), or None when it has none."""
    if field.is_required():
        return None
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return field.default


def _bounds(field: FieldInfo) -> dict[str, Any]:
    """OpenAPI v3.0 keywords of the field's constraints (exclusive bounds as booleans)."""
    out: dict[str, Any] = {}
    for item in field.metadata:
        if isinstance(item, annotated_types.Gt):
            out.update(exclusiveMinimum=True, minimum=item.gt)
        elif isinstance(item, annotated_types.Ge):
            out["minimum"] = item.ge
        elif isinstance(item, annotated_types.Lt):
            out.update(exclusiveMaximum=True, maximum=item.lt)
        elif isinstance(item, annotated_types.Le):
            out["maximum"] = item.le
        elif isinstance(item, annotated_types.MinLen):
            out["minItems"] = item.min_length
        elif isinstance(item, annotated_types.MaxLen):
            out["maxItems"] = item.max_length
        elif getattr(item, "pattern", None) is not None:
            out["pattern"] = item.pattern
    return out


def _optional(annotation: Any) -> tuple[Any, bool]:
    """(the type inside `X | None`, whether None was allowed)."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
        raise TypeError(f"{annotation} has no single OpenAPI type; declare its CRD property by hand")
    return annotation, False


def type_schema(annotation: Any) -> dict[str, Any]:
    """The OpenAPI type of a config annotation (None allowed: `nullable`).

    Raises:
        TypeError: A union of several types, or a type with no OpenAPI counterpart.
    """
    inner, nullable = _optional(annotation)
    origin = get_origin(inner)
    schema: dict[str, Any]
    if origin is Literal:
        values = list(get_args(inner))
        if not all(isinstance(v, str) for v in values):
            raise TypeError(f"{inner}: only string literals become an enum")
        schema = {"type": "string", "enum": values}
    elif inner is bool:
        schema = {"type": "boolean"}
    elif inner is int:
        schema = {"type": "integer"}
    elif inner is float:
        schema = {"type": "number"}
    elif inner is str:
        schema = {"type": "string"}
    elif origin is list:
        (item,) = get_args(inner)
        schema = {"type": "array", "items": type_schema(item)}
    elif origin is dict and get_args(inner)[0] is str:
        schema = {"type": "object", "additionalProperties": type_schema(get_args(inner)[1])}
    elif isinstance(inner, type) and issubclass(inner, BaseModel):
        schema = {"type": "object", "properties": section_properties(inner)}
    else:
        raise TypeError(f"{inner} has no OpenAPI counterpart; declare its CRD property by hand")
    if nullable:
        schema = {"type": schema["type"], "nullable": True, **schema}
    return schema


def _ordered(schema: dict[str, Any], text: str, default: Any, bounds: dict[str, Any]) -> dict[str, Any]:
    """type (and nullable), description, default, then the rest: the layout the CRDs use."""
    out: dict[str, Any] = {k: schema[k] for k in ("type", "nullable") if k in schema}
    out["description"] = text
    if isinstance(default, BaseModel):
        out["default"] = {}  # a nested section: the API server fills its fields' defaults
    elif default is not None:
        out["default"] = default
    out.update({k: v for k, v in schema.items() if k not in out})
    return {**out, **bounds}


def field_property(section: type[BaseModel], name: str) -> dict[str, Any]:
    """The CRD property of one config field: type, description, default and bounds.

    An optional field (default None) has no default: absent means unset, as in the config.
    """
    field = section.model_fields[name]
    return _ordered(type_schema(field.annotation), description(field), default_of(field), _bounds(field))


def duration_property(section: type[BaseModel], name: str) -> dict[str, Any]:
    """The CRD property of a seconds field written as a duration string (60.0 -> `1m`)."""
    field = section.model_fields[name]
    default = default_of(field)
    text = f"{description(field)} A duration such as 90s, 10m or 1h."
    schema = {"type": "string", "pattern": DURATION}
    return _ordered(schema, text, None if default is None else duration_text(default), {})


def section_properties(
    section: type[BaseModel], exclude: Collection[str] = (), durations: Mapping[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Every field's CRD property under its camelCase name, in field order.

    Args:
        section: The config section.
        exclude: Fields the spec does not carry.
        durations: Seconds fields spelt as duration strings in the spec: field -> spec name.
    """
    durations = durations or {}
    out = {}
    for name in section.model_fields:
        if name in exclude:
            continue
        if name in durations:
            out[durations[name]] = duration_property(section, name)
        else:
            out[camel(name)] = field_property(section, name)
    return out


def spec_names(
    section: type[BaseModel], exclude: Collection[str] = (), durations: Mapping[str, str] | None = None
) -> dict[str, str]:
    """spec name -> config field name, for every field `section_properties` declares."""
    durations = durations or {}
    return {durations.get(name, camel(name)): name for name in section.model_fields if name not in exclude}


def config_value(annotation: Any, value: Any) -> Any:
    """A spec value in the config's form: nested sections' camelCase keys become snake_case."""
    inner, _ = _optional(annotation)
    if value is None:
        return None
    if isinstance(inner, type) and issubclass(inner, BaseModel) and isinstance(value, Mapping):
        return section_values(inner, value)
    if get_origin(inner) is dict and isinstance(value, Mapping):
        return {k: config_value(get_args(inner)[1], v) for k, v in value.items()}
    if get_origin(inner) is list and isinstance(value, list):
        return [config_value(get_args(inner)[0], v) for v in value]
    return value


def section_values(
    section: type[BaseModel], spec: Mapping[str, Any], durations: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The config keys and values a spec object sets (unknown spec names left out).

    Raises:
        ValueError: A duration field is not like 90s, 10m, 1h or 7d.
    """
    durations = durations or {}
    out = {}
    for key, name in spec_names(section, durations=durations).items():
        if key not in spec:
            continue
        if name in durations:
            out[name] = float(duration_seconds(str(spec[key])))
        else:
            out[name] = config_value(section.model_fields[name].annotation, spec[key])
    return out
