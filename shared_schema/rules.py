"""Rules that tie one node's params together, beyond what the catalog can say.

The catalog describes each param on its own; a few nodes also check params
against each other when the device loads the program (the `prep` function of
firmware/fleetflow/nodes/<type>.py). The host repeats those checks so that a
flow that validates is never refused by the device. Each rule gets the
node's params (`$var` references already replaced by the variables' values)
and returns `(param, message)` pairs.
"""

from __future__ import annotations

from typing import Any, Callable


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _switch(p: dict) -> list[tuple[str, str]]:
    # firmware/fleetflow/nodes/switch.py prep(): ordering ops compare numbers
    op = p.get("op")
    if op not in ("gt", "lt", "ge", "le", "between"):
        return []
    if not _is_num(p.get("value")):
        return [("value", f"op {op!r} compares numbers: value must be a number, got {p.get('value')!r}")]
    if op == "between":
        if not _is_num(p.get("value2")):
            return [("value2", f"op 'between' needs a number value2 (the upper bound), got {p.get('value2')!r}")]
        if p["value2"] < p["value"]:
            return [("value2", f"op 'between' needs value2 >= value ({p['value2']} < {p['value']}): swap them")]
    return []


def _change(p: dict) -> list[tuple[str, str]]:
    # firmware/fleetflow/nodes/change.py prep()
    action, v = p.get("action"), p.get("value")
    if action in ("scale", "offset") and not _is_num(v):
        return [("value", f"action {action!r} needs a number value to {action} by, got {v!r}")]
    if action == "round" and (not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 6):
        return [("value", f"action 'round' needs value = decimal places, an integer 0..6, got {v!r}")]
    if action == "rename" and not p.get("to"):
        return [("to", "action 'rename' needs 'to', the new field name")]
    return []


RULES: dict[str, Callable[[dict], list[tuple[str, str]]]] = {"switch": _switch, "change": _change}


def node_rule_problems(node_type: str, params: dict) -> list[tuple[str, str]]:
    rule = RULES.get(node_type)
    return rule(params) if rule else []
