"""Run reports from the devices, stored in bulk: the bridge collects the
batches it hears and hands them over every half second (or sooner when
many arrive), one transaction per hand-over."""

from __future__ import annotations

from cloud.db import get_by_pk
from cloud.errors import NotFound
from cloud.models import Device, NodeRecord, RunRecord
from cloud.timefmt import iso

_RUN_COLUMNS = ("device", "run", "flow", "ver", "exec", "trigger", "status", "t_ms", "us", "logs", "received_at")
_NODE_COLUMNS = ("device", "run", "node", "type", "us", "port", "out", "err")
_SQL: dict = {}
OUT_MAX = 200  # characters of a node's output summary kept


def _insert(model, columns, rows: list[tuple]) -> None:
    """One prepared INSERT run for every row (executemany): peewee's
    insert_many builds SQL text per batch, which costs more than SQLite's
    own work here."""
    if not rows:
        return
    db = model._meta.database
    sql = _SQL.get(model)
    if sql is None:
        marks = ", ".join([db.param] * len(columns))
        q = db.quote  # the database's identifier quotes, e.g. '""'
        names = ", ".join(f"{q[0]}{c}{q[1]}" for c in columns)
        sql = _SQL[model] = f"INSERT INTO {q[0]}{model._meta.table_name}{q[1]} ({names}) VALUES ({marks})"
    db.cursor().executemany(sql, rows)


def ingest(batches: list[tuple[str, dict, float]]) -> int:
    """Store (device_id, RunsBatch as dict, received_at) batches; returns the
    number of node records stored."""
    runs, nodes = [], []
    dump = RunRecord.logs.db_value
    for device_id, batch, now in batches:
        for rec in batch.get("runs") or ():
            run = rec["run"]
            runs.append((device_id, run, rec.get("flow"), rec.get("ver"), rec.get("exec"), rec.get("trigger"),
                         rec["status"], rec.get("t_ms"), rec.get("us") or 0, dump(rec.get("logs") or None), now))
            for node in rec.get("nodes") or ():
                out = node.get("out")
                nodes.append((device_id, run, node["id"], node.get("type"), node.get("us") or 0, node.get("port"),
                              out[:OUT_MAX] if isinstance(out, str) else out, node.get("err")))
    _insert(RunRecord, _RUN_COLUMNS, runs)
    _insert(NodeRecord, _NODE_COLUMNS, nodes)
    return len(nodes)


def recent_runs(device_id: str, limit: int = 20) -> list[dict]:
    if get_by_pk(Device, device_id) is None:
        raise NotFound(f"no device {device_id!r}")
    rows = list(RunRecord.select().where(RunRecord.device == device_id)
                .order_by(RunRecord.received_at.desc(), RunRecord.run.desc()).limit(limit))
    out = []
    for r in rows:
        nodes = [{"id": n.node, "type": n.type, "us": n.us, "port": n.port, "out": n.out, "err": n.err}
                 for n in NodeRecord.select().where((NodeRecord.device == device_id) & (NodeRecord.run == r.run))
                 .order_by(NodeRecord.id)]
        out.append({"run": r.run, "flow": r.flow, "ver": r.ver, "exec": r.exec, "trigger": r.trigger,
                    "status": r.status, "t_ms": r.t_ms, "us": r.us, "logs": r.logs, "nodes": nodes,
                    "received_at": iso(r.received_at)})
    return out
