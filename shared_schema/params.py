"""Param values against the catalog's param specs, durations, variable references.

Pure functions. A checker returns `(normalized_value, None)` when the value
fits, or `(None, message)` saying what is wrong and what would be right.
Param types and their bounds: docs/node-catalog.md.
"""

from __future__ import annotations

import math
import re
from typing import Any

from shared_schema.problems import describe

VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
VAR_TYPES = ("number", "integer", "string", "boolean")


class RefError(ValueError):
    """A string that starts with `$` but names no variable."""


def var_ref(value: Any) -> str | None:
    """The variable a config value refers to (`"$threshold"` -> `threshold`), else None.

    `"$$text"` is the literal string `"$text"` (the program format's escape).
    """
    if not isinstance(value, str) or not value.startswith("$") or value.startswith("$$"):
        return None
    name = value[1:]
    if not VAR_NAME.match(name):
        raise RefError(
            f"{value!r} starts with '$' but {name!r} is not a variable name (letters, digits, '_'); "
            f"write {'$' + value!r} for a literal string"
        )
    return name


def duration_text_ms(text: str, bare_unit: str) -> float | None:
    """Milliseconds from "500ms", "2s", "5m", "1h", "1d" or a bare number in
    `bare_unit` (node params count in ms, deployment settings in s); None
    when `text` is no duration. The one duration grammar of the host."""
    m = _DURATION.match(text)
    return float(m.group(1)) * UNIT_MS[m.group(2) or bare_unit] if m else None


def parse_ms(value: Any) -> int:
    """Milliseconds from an integer or a duration string ("500ms", "2s", "5m", "1h")."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a duration")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    if isinstance(value, str):
        ms = duration_text_ms(value, bare_unit="ms")
        if ms is not None and ms == int(ms):
            return int(ms)
    raise ValueError(f"expected milliseconds as an integer or a duration like '500ms', '2s', '5m', got {describe(value)}")


def _bounds(spec: dict, what: str = "") -> str:
    lo, hi = spec.get("min"), spec.get("max")
    if lo is not None and hi is not None:
        return f" {what}between {lo} and {hi}"
    if lo is not None:
        return f" {what}at least {lo}"
    if hi is not None:
        return f" {what}at most {hi}"
    return ""


def _in_bounds(spec: dict, x) -> bool:
    lo, hi = spec.get("min"), spec.get("max")
    return (lo is None or x >= lo) and (hi is None or x <= hi)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _topic_problem(topic: str) -> str | None:
    for wildcard in ("+", "#"):
        if wildcard in topic:
            fixed = topic.replace("+", "x").replace("#", "all")
            return (f"topic {topic!r} contains the MQTT wildcard {wildcard!r}; a node publishes to one "
                    f"concrete topic below ff/<dev>/out/, e.g. {fixed!r}")
    if topic.startswith("$"):
        return f"topic {topic!r} starts with '$' (reserved by brokers); drop the '$'"
    if "\x00" in topic:
        return "topic contains a NUL character"
    if topic.startswith("/") or topic.endswith("/") or "//" in topic:
        return f"topic {topic!r} has an empty level; write levels joined by single '/', e.g. {'/'.join(p for p in topic.split('/') if p)!r}"
    return None


def check_value(spec: dict, value: Any) -> tuple[Any, str | None]:
    """Check one literal param value (not a `$ref`) against its spec."""
    kind = spec["type"]
    if value is None:
        if not spec.get("required") and spec.get("default", 0) is None:
            return None, None
        return None, f"null is not allowed; expected {expected(spec)}"
    if kind == "int":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if _is_int(value) and _in_bounds(spec, value):
            return value, None
    elif kind == "num":
        if _is_num(value) and _in_bounds(spec, value):
            return value, None
    elif kind == "ms":
        try:
            ms = parse_ms(value)
        except ValueError:
            return None, f"expected {expected(spec)}, got {describe(value)}"
        if _in_bounds(spec, ms):
            return ms, None
        return None, f"{ms} ms is out of bounds; expected milliseconds{_bounds(spec)}"
    elif kind == "bool":
        if isinstance(value, bool):
            return value, None
    elif kind == "enum":
        if isinstance(value, str) and value in spec["choices"]:
            return value, None
    elif kind in ("str", "topic"):
        if isinstance(value, str) and _in_bounds(spec, len(value)):
            if kind == "topic":
                problem = _topic_problem(value)
                if problem:
                    return None, problem
            return value, None
    elif kind == "pin":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if _is_int(value) and value >= 0:
            return value, None
    elif kind == "any":
        return value, None
    else:
        return None, f"the catalog gives this param an unknown type {kind!r}"
    return None, f"expected {expected(spec)}, got {describe(value)}"


def expected(spec: dict) -> str:
    """What a param wants, in words: 'an integer between 0 and 5'."""
    kind = spec["type"]
    if kind == "int":
        return "an integer" + _bounds(spec)
    if kind == "num":
        return "a number" + _bounds(spec)
    if kind == "ms":
        return "milliseconds (an integer, or '500ms', '2s', '5m')" + _bounds(spec)
    if kind == "bool":
        return "true or false"
    if kind == "enum":
        return "one of " + ", ".join(repr(c) for c in spec["choices"])
    if kind == "str":
        return "a string" + _bounds(spec, "of length ")
    if kind == "topic":
        return "an MQTT topic without wildcards" + _bounds(spec, "of length ")
    if kind == "pin":
        return f"a GPIO number usable as {spec.get('use', 'in')}, e.g. 4"
    return "any JSON value"


# Which declared variable types can feed which param types; the variable's
# current value is then checked like a literal (overrides are re-checked on
# the device at run time).
_VAR_FITS = {
    "int": {"integer", "number"},
    "num": {"integer", "number"},
    "ms": {"integer", "number"},
    "pin": {"integer", "number"},
    "bool": {"boolean"},
    "str": {"string"},
    "enum": {"string"},
    "topic": {"string"},
    "any": set(VAR_TYPES),
}


def var_fit_problem(spec: dict, name: str, var_type: str, var_value: Any) -> str | None:
    if var_type not in _VAR_FITS.get(spec["type"], set()):
        return (f"variable {name!r} is declared {var_type}, but param {spec['name']!r} needs "
                f"{expected(spec)}; declare a {' or '.join(sorted(_VAR_FITS.get(spec['type'], {'?'})))} variable or use a literal")
    if spec["type"] == "ms" and isinstance(var_value, str):
        return f"variable {name!r} must hold milliseconds as a number for param {spec['name']!r}"
    _, problem = check_value(spec, var_value)
    if problem:
        return f"variable {name!r} = {var_value!r} does not fit param {spec['name']!r}: {problem}"
    return None


def infer_var_type(value: Any) -> str:
    """The declared type a variable gets when it declares none."""
    if isinstance(value, bool):
        return "boolean"
    if _is_int(value):
        return "integer"
    return "number" if _is_num(value) else "string"


def coerce_var(var_type: str, value: Any) -> Any:
    """A variable's value as its declared type (`"30"` -> 30 for a number); ValueError if it can't be."""
    if var_type in ("number", "integer"):
        if isinstance(value, str):
            text = value.strip()
            try:
                value = int(text)
            except ValueError:
                try:
                    value = float(text)
                except ValueError:
                    raise ValueError(f"{value!r} is not a {var_type}; write e.g. 30") from None
        if not _is_num(value):
            raise ValueError(f"expected a {var_type}, got {describe(value)}")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if var_type == "integer" and not _is_int(value):
            raise ValueError(f"{value!r} is not a whole number; an integer variable needs e.g. 30")
        return value
    if var_type == "string":
        if isinstance(value, str):
            return value
        if _is_num(value):
            return str(value)
        raise ValueError(f"expected a string, got {describe(value)}")
    if var_type == "boolean":
        if isinstance(value, bool):
            return value
        words = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False, "on": True, "off": False}
        if isinstance(value, str) and value.strip().lower() in words:
            return words[value.strip().lower()]
        if _is_int(value) and value in (0, 1):
            return bool(value)
        raise ValueError(f"expected true or false, got {describe(value)}")
    raise ValueError(f"unknown variable type {var_type!r}; use one of {', '.join(VAR_TYPES)}")
