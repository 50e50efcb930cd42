"""ingest: node run records stored per second into SQLite, batched (budget 20,000/s).

The path a run report takes in the cloud after the broker: the JSON payload
of ff/<dev>/runs parsed, checked against shared_schema.messages.RunsBatch,
collected, and stored by cloud.store.runs.ingest in one transaction per
hand-over (the MQTT bridge hands over what it heard as soon as no other
message waits, so under load a hand-over holds many reports). Device batches
carry 8 runs of 5 nodes, like the firmware's default runs_batch.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
BUDGET = 20_000


def add_arguments(parser) -> None:
    parser.add_argument("--records", type=int, default=200_000, help="node records to store")
    parser.add_argument("--handover", type=int, default=5000, help="node records per transaction")


def _payloads(devices: int, batches: int) -> list[tuple[str, bytes]]:
    out = []
    run = 0
    for b in range(batches):
        dev = f"d{b % devices:04d}"
        runs = []
        for _ in range(8):
            run += 1
            runs.append({"run": run, "flow": "flow_bench", "ver": 3, "exec": None, "trigger": "poll:n1",
                         "status": "completed", "t_ms": run * 2000, "us": 900,
                         "nodes": [{"id": f"n{i}", "type": "switch", "us": 120 + i, "out": "{'value': 23.4}",
                                    "port": 0, "err": None} for i in range(5)],
                         "logs": []})
        out.append((dev, json.dumps({"dev": dev, "runs": runs, "dropped": 0}).encode()))
    return out


def run(args) -> dict:
    from shared_schema.messages import RunsBatch

    from cloud import migrations
    from cloud.db import Database
    from cloud.store.runs import ingest

    records = getattr(args, "records", 200_000)
    handover = getattr(args, "handover", 5000)
    (REPO / "var").mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=REPO / "var"))
    try:
        db = Database(str(workdir / "cloud.db"))
        db.peewee.connect()
        migrations.migrate(db.peewee)
        payloads = _payloads(200, max(1, records // 40))
        stored = 0
        pending, pending_nodes = [], 0
        t0 = time.perf_counter()
        for dev, payload in payloads:
            batch = RunsBatch.model_validate(json.loads(payload)).model_dump(mode="json")
            pending.append((dev, batch, time.time()))
            pending_nodes += 40
            if pending_nodes >= handover:
                stored += db.call(ingest, pending)
                pending, pending_nodes = [], 0
        if pending:
            stored += db.call(ingest, pending)
        elapsed = time.perf_counter() - t0
        db.peewee.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rate = stored / elapsed
    return {"node_records": stored, "seconds": round(elapsed, 2), "node_records_per_s": round(rate),
            "budget_per_s": BUDGET, "ok": rate >= BUDGET,
            "command": f"fleetflow bench ingest --records {records} --handover {handover}"}
