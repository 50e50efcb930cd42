"""Per-run overrides of an execution (`{"vars": {...}, "params": {node id: {...}}}`),
checked on the host before any device sees them.

The device checks them too (firmware `fleetflow/overrides.py`) and refuses a
run with bad ones, but only after the round trip, once per device. Here the
flow is validated *with* the overrides applied, against the target board, and
every problem points into the request's `overrides`.
"""

from __future__ import annotations

import copy
from typing import Any

from shared_schema.boards import Board
from shared_schema.catalog import param_specs
from shared_schema.models import normalize_type, step_id
from shared_schema.params import RefError, coerce_var, infer_var_type, var_ref
from shared_schema.problems import Problem, join
from shared_schema.validate import validate_flow

BASE = "/overrides"


def _nodes(body: dict) -> tuple[list[dict], str, str, str]:
    """(nodes, pointer of the node list, type key, config key) of either form."""
    if isinstance(body.get("definition"), dict):
        return body["definition"].get("nodes") or [], "/definition/nodes", "type", "config"
    return body.get("steps") or [], "/steps", "node", "params"


def _variables(body: dict) -> tuple[list[dict], str]:
    if isinstance(body.get("definition"), dict):
        return body["definition"].get("variables") or [], "/definition/variables"
    return body.get("variables") or [], "/variables"


def override_problems(body: dict, overrides: dict[str, Any], board: Board | str) -> list[Problem]:
    """Every problem of running `body` (a valid, published flow) with
    `overrides` on `board`, pointed at `/overrides/...`; [] when they fit."""
    ov_vars, ov_params = overrides.get("vars") or {}, overrides.get("params") or {}
    nodes, nodes_ptr, type_key, cfg_key = _nodes(body)
    variables, vars_ptr = _variables(body)
    ids = [n.get("id") or (step_id(i) if nodes_ptr == "/steps" else "") for i, n in enumerate(nodes)]
    declared = [v.get("name") for v in variables]
    problems = []
    for name in ov_vars:
        if name not in declared:
            problems.append(Problem(join(BASE, "vars", name), f"the flow declares no variable {name!r}"
                                    f" (declared: {', '.join(declared) or 'none'})"))
    for nid, params in ov_params.items():
        if nid not in ids:
            problems.append(Problem(join(BASE, "params", nid), f"the flow has no node {nid!r} (nodes: {', '.join(ids)})"))
            continue
        specs = param_specs(normalize_type(str(nodes[ids.index(nid)].get(type_key) or "")))
        for key in params:
            if (specs.get(key) or {}).get("type") == "pin":
                problems.append(Problem(join(BASE, "params", nid, key), "a pin cannot be overridden per run"))
    if problems:
        return problems

    # Apply them, validate, and point each problem back at the override at fault.
    merged = copy.deepcopy(body)
    m_nodes, _, _, _ = _nodes(merged)
    m_vars, _ = _variables(merged)
    where: dict[str, str] = {}
    for i, var in enumerate(m_vars):
        if var.get("name") in ov_vars:
            var["value"] = ov_vars[var["name"]]
            where[join(vars_ptr, i, "value")] = join(BASE, "vars", var["name"])
    for nid, params in ov_params.items():
        i = ids.index(nid)
        m_nodes[i][cfg_key] = {**(m_nodes[i].get(cfg_key) or {}), **params}
        for key in params:
            where[join(nodes_ptr, i, cfg_key, key)] = join(BASE, "params", nid, key)
    out, direct = [], set()
    for p in validate_flow(merged, board):
        if p.pointer in where:
            out.append(Problem(where[p.pointer], p.message))
            direct.add(where[p.pointer])
            continue
        # A param that reads an overridden variable ("$threshold") and no longer fits.
        used = _var_ref(_at(merged, p.pointer))
        target = join(BASE, "vars", used) if used in ov_vars else BASE
        if target not in direct:  # not the knock-on of a variable already reported
            out.append(Problem(target, f"with these overrides, {p.pointer}: {p.message}"))
    return out


def normalized(body: dict, overrides: dict[str, Any]) -> dict[str, Any]:
    """The overrides as the device takes them: each variable's value coerced
    to its declared type (`"25"` -> 25 for a number), as the compiler does
    for the flow's own values. Call once `override_problems` found none."""
    variables, _ = _variables(body)
    types = {v.get("name"): v.get("type") or infer_var_type(v.get("value")) for v in variables}
    ov_vars = {name: coerce_var(types[name], value) if value is not None else value
               for name, value in (overrides.get("vars") or {}).items()}
    return {"vars": ov_vars, "params": dict(overrides.get("params") or {})}


def _var_ref(value: Any) -> str | None:
    try:
        return var_ref(value)
    except RefError:
        return None


def _at(doc: Any, pointer: str) -> Any:
    for part in pointer.split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        elif isinstance(doc, dict) and part in doc:
            doc = doc[part]
        else:
            return None
    return doc
