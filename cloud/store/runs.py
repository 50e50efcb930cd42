"""Run reports from the devices, stored in bulk: the bridge hands over the
batches it heard as soon as no other message waits (at the latest after
half a second), one transaction per hand-over, and acks them once it has
committed (cloud/bridge.py)."""

from __future__ import annotations

from peewee import SqliteDatabase

from cloud.db import get_by_pk
from cloud.errors import NotFound
from cloud.models import Device, NodeRecord, RunRecord
from cloud.store import paging
from cloud.timefmt import iso

_RUN_COLUMNS = ("device", "run", "flow", "ver", "exec", "trigger", "status", "t_ms", "us", "logs", "received_at", "err")
_NODE_COLUMNS = ("record", "device", "run", "node", "type", "us", "port", "out", "err")
_SQL: dict = {}
OUT_MAX = 200  # characters of a node's output summary kept
ERR_MAX = 500  # characters of a run's error kept


def _sql(model, columns) -> str:
    db = model._meta.database
    key = (model, db.param)  # the text depends on the database's parameter style
    sql = _SQL.get(key)
    if sql is None:
        q = db.quote  # the database's identifier quotes, e.g. '""'
        names = ", ".join(f"{q[0]}{c}{q[1]}" for c in columns)
        marks = ", ".join([db.param] * len(columns))
        sql = _SQL[key] = f"INSERT INTO {q[0]}{model._meta.table_name}{q[1]} ({names}) VALUES ({marks})"
    return sql


def _insert_runs(rows: list[tuple]) -> list[int]:
    """Insert run records; returns their ids in order."""
    db = RunRecord._meta.database
    if isinstance(db.obj if hasattr(db, "obj") else db, SqliteDatabase):
        # One prepared INSERT for every row (executemany): peewee's insert_many
        # builds SQL text per batch, which costs more than SQLite's own work.
        # Inside the transaction this is the only writer, and rowids of an
        # INTEGER PRIMARY KEY table are handed out one after the other.
        dump = RunRecord.logs.db_value  # executemany bypasses the field's conversion
        cursor = db.cursor()
        cursor.executemany(_sql(RunRecord, _RUN_COLUMNS), [r[:9] + (dump(r[9]),) + r[10:] for r in rows])
        last = db.execute_sql("SELECT last_insert_rowid()").fetchone()[0]
        return list(range(last - len(rows) + 1, last + 1))
    ids = []
    for i in range(0, len(rows), 100):
        chunk = [dict(zip(_RUN_COLUMNS, r)) for r in rows[i:i + 100]]
        ids += [r[0] for r in RunRecord.insert_many(chunk).returning(RunRecord.id).tuples().execute()]
    return ids


def ingest(batches: list[tuple[str, dict, float]]) -> int:
    """Store (device_id, RunsBatch as dict, received_at) batches; returns the
    number of node records stored."""
    runs, node_lists = [], []
    for device_id, batch, now in batches:
        for rec in batch.get("runs") or ():
            runs.append((device_id, rec["run"], rec.get("flow"), rec.get("ver"), rec.get("exec"), rec.get("trigger"),
                         rec["status"], rec.get("t_ms"), rec.get("us") or 0, rec.get("logs") or None, now,
                         _text(rec.get("err"), ERR_MAX)))
            node_lists.append(rec.get("nodes") or ())
    if not runs:
        return 0
    ids = _insert_runs(runs)
    nodes = []
    for record_id, run, node_list in zip(ids, runs, node_lists):
        for node in node_list:
            out = node.get("out")
            nodes.append((record_id, run[0], run[1], node["id"], node.get("type"), node.get("us") or 0,
                          node.get("port"), out[:OUT_MAX] if isinstance(out, str) else out, node.get("err")))
    if nodes:
        NodeRecord._meta.database.cursor().executemany(_sql(NodeRecord, _NODE_COLUMNS), nodes)
    return len(nodes)


def _text(value, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def nodes_of(record_id: int) -> list[dict]:
    return [{"id": n.node, "type": n.type, "us": n.us, "port": n.port, "out": n.out, "err": n.err}
            for n in NodeRecord.select().where(NodeRecord.record == record_id).order_by(NodeRecord.id)]


def recent_runs(device_id: str, limit: int = 20, cursor: str | None = None) -> tuple[list[dict], str | None]:
    """One page of a device's run records, newest first (as received; in a
    batch, the later run first)."""
    if get_by_pk(Device, device_id) is None:
        raise NotFound(f"no device {device_id!r}")
    got = paging.page(RunRecord.select().where(RunRecord.device == device_id), "runs",
                      (RunRecord.received_at, RunRecord.id), limit, cursor, descending=True)
    out = []
    for r in got.rows:
        nodes = nodes_of(r.id)
        out.append({"run": r.run, "flow": r.flow, "ver": r.ver, "exec": r.exec, "trigger": r.trigger,
                    "status": r.status, "err": r.err, "t_ms": r.t_ms, "us": r.us, "logs": r.logs,
                    "nodes": nodes, "received_at": iso(r.received_at)})
    return out, got.cursor
