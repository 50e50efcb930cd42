"""Per-run overrides of an execution (`{"vars": {...}, "params": {node id: {...}}}`),
checked on the host before any device sees them.

The device checks them too (firmware `fleetflow/overrides.py`) and refuses a
run with bad ones, but only after the round trip, once per device. Here the
flow is validated *with* the overrides applied, against the target board, and
every problem points into the request's `overrides`.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from shared_schema.boards import Board
from shared_schema.catalog import param_specs
from shared_schema.compiler import compile_program
from shared_schema.models import normalize_type, step_id
from shared_schema.params import RefError, var_ref
from shared_schema.problems import Problem, join
from shared_schema.validate import validate_flow

BASE = "/overrides"


def _nodes(body: dict) -> tuple[list[dict], str, str, str]:
    """(nodes, pointer of the node list, type key, config key) of either form."""
    if isinstance(body.get("definition"), dict):
        return body["definition"].get("nodes") or [], "/definition/nodes", "type", "config"
    return body.get("steps") or [], "/steps", "node", "params"


def _ids(nodes: list[dict], nodes_ptr: str) -> list[str]:
    """Node ids as the program has them (a step without one is s1, s2, ...)."""
    return [n.get("id") or (step_id(i) if nodes_ptr == "/steps" else "") for i, n in enumerate(nodes)]


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
    ids = _ids(nodes, nodes_ptr)
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
    merged, where = _merged(body, overrides)
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


def _merged(body: dict, overrides: dict[str, Any]) -> tuple[dict, dict[str, str]]:
    """`body` with the overrides applied, and where each overridden value sits
    in it -> its pointer in the request. Node ids and variables must exist."""
    ov_vars, ov_params = overrides.get("vars") or {}, overrides.get("params") or {}
    merged = copy.deepcopy(body)
    nodes, nodes_ptr, _, cfg_key = _nodes(merged)
    variables, vars_ptr = _variables(merged)
    ids = _ids(nodes, nodes_ptr)
    where: dict[str, str] = {}
    for i, var in enumerate(variables):
        if var.get("name") in ov_vars:
            var["value"] = ov_vars[var["name"]]
            where[join(vars_ptr, i, "value")] = join(BASE, "vars", var["name"])
    for nid, params in ov_params.items():
        i = ids.index(nid)
        nodes[i][cfg_key] = {**(nodes[i].get(cfg_key) or {}), **params}
        for key in params:
            where[join(nodes_ptr, i, cfg_key, key)] = join(BASE, "params", nid, key)
    return merged, where


def normalized(body: dict, overrides: dict[str, Any], board: Board | str) -> dict[str, Any]:
    """The overrides as the device takes them: each value as the compiler
    writes it into a program (`"25"` -> 25 for a number variable, `"5s"` ->
    5000 for a duration param). Call once `override_problems` found none."""
    ov_vars, ov_params = overrides.get("vars") or {}, overrides.get("params") or {}
    merged, _ = _merged(body, overrides)
    program = json.loads(compile_program(merged, board, "overrides", 1).data)
    compiled = {node["id"]: node["params"] for node in program["nodes"]}
    return {"vars": {name: program["vars"][name] for name in ov_vars},
            "params": {nid: {key: compiled[nid][key] for key in params} for nid, params in ov_params.items()}}


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
