"""Compare two flow definitions node by node and connection by connection.

`diff_definitions(a, b)` takes two flow bodies (or bare `definition`
objects), in either shape, drafts included, and returns:

    {"nodes": {"added": [node, ...], "removed": [node, ...],
               "changed": [{"id": "n2", "fields": ["config.value", "name"],
                            "from": {"config.value": 30, "name": "A"},
                            "to":   {"config.value": 25, "name": "B"}}]},
     "connections": {"added": [{"source", "target", "port"}], "removed": [...]},
     "variables": {"added": [...], "removed": [...], "changed": [{"name", "fields", "from", "to"}]},
     "same": false}

Nodes are matched by id (step-form steps by their position, `s1`, `s2`...);
a node whose type changed is reported as changed (`type`). Config params are
compared one by one (`config.<param>`); `x`/`y` moves count as changes too.
"""

from __future__ import annotations

from typing import Any

from shared_schema.models import normalize_type, step_id

_MISSING = object()
_NODE_FIELDS = ("type", "name", "x", "y", "on_failure", "retries", "backoff_ms")


def _definition(body: Any) -> tuple[list[dict], list[dict], list[dict]]:
    """(nodes, connections, variables) of a body in either shape, tolerant of drafts."""
    if not isinstance(body, dict):
        return [], [], []
    if isinstance(body.get("definition"), dict):
        body = body["definition"]
    if isinstance(body.get("steps"), list):
        nodes = []
        for i, step in enumerate(body["steps"]):
            step = step if isinstance(step, dict) else {}
            node = {k: v for k, v in step.items() if k not in ("node", "params", "id")}
            node.update(id=step.get("id") or step_id(i), type=step.get("node"), config=step.get("params") or {})
            nodes.append(node)
        conns = [{"source": nodes[i]["id"], "target": nodes[i + 1]["id"], "port": 0} for i in range(len(nodes) - 1)]
        return nodes, conns, _list(body.get("variables"))
    return _list(body.get("nodes")), _list(body.get("connections")), _list(body.get("variables"))


def _list(v: Any) -> list[dict]:
    return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []


def _node_view(node: dict) -> dict[str, Any]:
    view = {f: node.get(f) for f in _NODE_FIELDS if node.get(f) is not None}
    if isinstance(view.get("type"), str):
        view["type"] = normalize_type(view["type"])
    config = node.get("config") if isinstance(node.get("config"), dict) else {}
    for key, value in config.items():
        view[f"config.{key}"] = value
    return view


def _changes(old: dict, new: dict) -> dict | None:
    fields = sorted(k for k in old.keys() | new.keys() if old.get(k, _MISSING) != new.get(k, _MISSING))
    if not fields:
        return None
    return {"fields": fields,
            "from": {k: old.get(k) for k in fields},
            "to": {k: new.get(k) for k in fields}}


def _by_key(items: list[dict], key: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for item in items:
        k = item.get(key)
        if isinstance(k, str) and k not in out:
            out[k] = item
    return out


def _conn_key(c: dict) -> tuple:
    port = c.get("port") or 0
    return (str(c.get("source")), str(c.get("target")), port)


def diff_definitions(a: Any, b: Any) -> dict:
    """What changed from flow `a` to flow `b` (see the module docstring for the shape)."""
    a_nodes, a_conns, a_vars = _definition(a)
    b_nodes, b_conns, b_vars = _definition(b)
    an, bn = _by_key(a_nodes, "id"), _by_key(b_nodes, "id")
    changed = []
    for nid in [i for i in an if i in bn]:
        delta = _changes(_node_view(an[nid]), _node_view(bn[nid]))
        if delta:
            changed.append({"id": nid, **delta})
    av, bv = _by_key(a_vars, "name"), _by_key(b_vars, "name")
    var_changed = []
    for name in [n for n in av if n in bv]:
        delta = _changes({k: v for k, v in av[name].items() if k != "name"}, {k: v for k, v in bv[name].items() if k != "name"})
        if delta:
            var_changed.append({"name": name, **delta})
    ac = {_conn_key(c): c for c in a_conns}
    bc = {_conn_key(c): c for c in b_conns}

    def conn(k: tuple) -> dict:
        return {"source": k[0], "target": k[1], "port": k[2]}

    result = {
        "nodes": {
            "added": [bn[i] for i in bn if i not in an],
            "removed": [an[i] for i in an if i not in bn],
            "changed": changed,
        },
        "connections": {
            "added": [conn(k) for k in bc if k not in ac],
            "removed": [conn(k) for k in ac if k not in bc],
        },
        "variables": {
            "added": [bv[n] for n in bv if n not in av],
            "removed": [av[n] for n in av if n not in bv],
            "changed": var_changed,
        },
    }
    result["same"] = not any(v for section in result.values() for v in section.values())
    return result
