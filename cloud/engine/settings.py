"""Deployment settings: the defaults of each strategy (seed 001) and the
parsing of what a user sends in `config`.

Durations arrive as `"5m"`, `"30s"`, `"2h"`, `"500ms"` or a number of
seconds; percentages as `20` or `"20%"` (a bare number is always a
percentage, so `0.2` means 0.2 %, never 20 %). Everything is
resolved here into plain numbers (seconds, percent) before the engine sees
it, so `decide` never parses anything.
"""

from __future__ import annotations

import math

from cloud.errors import Invalid, Problem
from shared_schema.params import duration_text_ms

STRATEGIES = ("all_at_once", "rolling", "canary", "blue_green")

# The health rule a device applies on trial before it acks `healthy`
# (docs/device-protocol.md, "health rule").
HEALTH_DEFAULT = {"runs": 3, "seconds": 30, "max_error_rate": 0.25}

_COMMON = {"timeout": "duration", "auto_rollback": "bool", "health_check": "bool", "health": "health"}
# Rate control and the abort rule's sample, for the strategies that send
# deploys batch by batch (AWS IoT Jobs' maximumPerMinute, exponentialRate and
# abortConfig): at most `max_per_minute` deploys a minute; or a ramp from
# `base_per_minute`, multiplied by `increment_factor` after every
# `increment_after_successes` successes, up to max_per_minute; and
# `failure_threshold` judged over every target that finished, once at least
# `min_executed` have. Not for blue_green: its switch is all at once.
_PACING = {"max_per_minute": "rate", "base_per_minute": "rate", "increment_factor": "factor",
           "increment_after_successes": "count", "min_executed": "count"}
RAMP_DEFAULTS = {"increment_factor": 2.0, "increment_after_successes": 10}

# Setting -> kind, per strategy. A setting not listed for a strategy is
# refused: a canary with a batch_size is a mistake worth telling.
SCHEMA: dict[str, dict[str, str]] = {
    "all_at_once": {**_COMMON, "failure_threshold": "percent", **_PACING},
    "rolling": {**_COMMON, "batch_size": "count", "batch_delay": "duration", "failure_threshold": "percent",
                **_PACING},
    "canary": {**_COMMON, "canary_percentage": "percent", "canary_delay": "duration", "failure_threshold": "percent",
               **_PACING},
    "blue_green": {**_COMMON, "switch_delay": "duration"},
}

DEFAULTS: dict[str, dict] = {
    # all_at_once: any failed target fails the deployment (and rolls it back).
    "all_at_once": {"timeout": 1800, "auto_rollback": True, "health_check": True, "failure_threshold": 0},
    "rolling": {"timeout": 1800, "auto_rollback": True, "health_check": True,
                "batch_size": 10, "batch_delay": 300, "failure_threshold": 20},
    # canary: any canary failure rolls everything back; the rest after the
    # canary is held to failure_threshold like a rolling batch.
    "canary": {"timeout": 7200, "auto_rollback": True, "health_check": True,
               "canary_percentage": 10, "canary_delay": 1800, "failure_threshold": 20},
    "blue_green": {"timeout": 3600, "auto_rollback": True, "health_check": True, "switch_delay": 600},
}

MAX_DURATION_S = 30 * 86400


def parse_duration(value) -> float:
    """Seconds from `"5m"`, `"30s"`, `"1.5h"`, `"250ms"`, `"45"` or 45."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '5m'")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError("a duration is a finite number of seconds")
        if value < 0:
            raise ValueError("a duration cannot be negative")
        seconds = float(value)
    elif isinstance(value, str) and (ms := duration_text_ms(value, bare_unit="s")) is not None:
        seconds = ms / 1000
    else:
        raise ValueError("a duration is a number of seconds or a string like '30s', '5m', '2h'")
    if seconds > MAX_DURATION_S:
        # Nothing waits forever: a timeout of a thousand years is no timeout.
        raise ValueError(f"a duration is at most {MAX_DURATION_S // 86400} days ('{MAX_DURATION_S // 86400}d')")
    return seconds


def parse_percent(value) -> float:
    if isinstance(value, bool):
        raise ValueError("a percentage is a number from 0 to 100 or a string like '20%'")
    if isinstance(value, str):
        text = value.strip().removesuffix("%").strip()
        try:
            value = float(text)
        except ValueError:
            raise ValueError("a percentage is a number from 0 to 100 or a string like '20%'") from None
    if not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise ValueError("a percentage is a number from 0 to 100")
    return float(value)


def _parse_count(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("must be a whole number of devices, at least 1")
    return value


MAX_PER_MINUTE = 1_000_000
MAX_FACTOR = 5.0


def _parse_rate(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PER_MINUTE:
        raise ValueError(f"must be a whole number of devices a minute, from 1 to {MAX_PER_MINUTE:,}")
    return value


def _parse_factor(value) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or not 1 < value <= MAX_FACTOR):
        raise ValueError(f"must be a number above 1 and at most {MAX_FACTOR:g} (the rate is multiplied by it)")
    return float(value)


def _parse_bool(value) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _parse_runs(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("must be a whole number of good runs, 0 or more")
    return value


def _parse_error_rate(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError("must be a fraction from 0 to 1")
    return float(value)


_HEALTH_PARSERS = {"runs": _parse_runs, "seconds": parse_duration, "max_error_rate": _parse_error_rate}


def _parse_health(value, pointer: str) -> tuple[dict, list[Problem]]:
    """The health rule and the problems of `value`, each at its own key."""
    if not isinstance(value, dict):
        return {}, [Problem(pointer, "must be an object with runs, seconds, max_error_rate")]
    rule, problems = dict(HEALTH_DEFAULT), []
    for key, item in value.items():
        parser = _HEALTH_PARSERS.get(key)
        if parser is None:
            problems.append(Problem(f"{pointer}/{key}", f"unknown health setting {key!r} (runs, seconds, max_error_rate)"))
            continue
        try:
            rule[key] = parser(item)
        except ValueError as exc:
            problems.append(Problem(f"{pointer}/{key}", str(exc)))
    return rule, problems


_PARSERS = {"duration": parse_duration, "percent": parse_percent, "count": _parse_count, "bool": _parse_bool,
            "rate": _parse_rate, "factor": _parse_factor}


def resolve(strategy: str, config: dict | None, pointer: str = "/config") -> dict:
    """The full settings of a deployment: the strategy's defaults overridden
    by `config`, every value parsed. Raises `Invalid` listing every bad key."""
    if strategy not in SCHEMA:
        raise Invalid("unknown strategy", [Problem("/strategy", f"must be one of {', '.join(STRATEGIES)}")])
    config = config or {}
    if not isinstance(config, dict):
        raise Invalid("config must be an object", [Problem(pointer, "must be an object")])
    settings = dict(DEFAULTS[strategy])
    settings["health"] = dict(HEALTH_DEFAULT)
    problems = []
    for key, value in config.items():
        kind = SCHEMA[strategy].get(key)
        if kind is None:
            known = ", ".join(sorted(SCHEMA[strategy]))
            problems.append(Problem(f"{pointer}/{key}", f"not a setting of {strategy} (known: {known})"))
            continue
        if kind == "health":
            settings[key], health_problems = _parse_health(value, f"{pointer}/{key}")
            problems.extend(health_problems)
            continue
        try:
            settings[key] = _PARSERS[kind](value)
        except ValueError as exc:
            problems.append(Problem(f"{pointer}/{key}", str(exc)))
    problems += _pacing_problems(config, settings, pointer)
    if problems:
        raise Invalid("invalid deployment config", problems)
    if "base_per_minute" in settings:
        for key, value in RAMP_DEFAULTS.items():
            settings.setdefault(key, value)
    return settings


def _pacing_problems(config: dict, settings: dict, pointer: str) -> list[Problem]:
    """What the rate settings say that does not hold together."""
    problems = []
    if "base_per_minute" not in config:
        for key in RAMP_DEFAULTS:
            if key in config:
                problems.append(Problem(f"{pointer}/{key}", "a ramp needs base_per_minute, the rate it starts at"))
    base, top = settings.get("base_per_minute"), settings.get("max_per_minute")
    if isinstance(base, int) and isinstance(top, int) and base > top:
        problems.append(Problem(f"{pointer}/base_per_minute", f"{base} is above max_per_minute ({top})"))
    return problems
