"""api: fleetflow's API requests/s against a bare aiohttp handler's (budget: at least 40 %).

Both servers run the same way, one at a time, in a process of their own
on this machine; the same load generator (aiohttp client, fixed
concurrency, fixed duration) drives each in the same run. The bare server
answers a constant JSON body; fleetflow answers `GET /api/v1/flows/{id}`
with an API key (key check, a database read on the database thread,
the flow document). Prints both rates and their ratio.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import shutil
import socket
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
BUDGET = 0.40


def add_arguments(parser) -> None:
    parser.add_argument("--seconds", type=float, default=5.0, help="load per server")
    parser.add_argument("--concurrency", type=int, default=32)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_bare(port: int) -> None:
    from aiohttp import web

    async def handler(request):
        return web.json_response({"id": "flow_0", "name": "bare", "status": "published"})

    app = web.Application()
    app.router.add_get("/api/v1/flows/{flow_id}", handler)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def _serve_cloud(port: int, db_url: str) -> None:
    from aiohttp import web

    from cloud.app import init_app
    from cloud.config import Config

    app = init_app(Config(db_url=db_url, mqtt_url=None, secret=b"bench-api-secret-bench-api-32byt"))
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def _prepare(db_url: str) -> tuple[str, str]:
    """A key and a published flow in a fresh database."""
    from cloud import migrations
    from cloud.db import Database
    from cloud.store import flows, keys

    db = Database(db_url)
    db.peewee.connect()
    migrations.migrate(db.peewee)
    key = db.call(keys.create_key, "viewer")["key"]
    body = {"name": "bench", "definition": {
        "nodes": [{"id": "n1", "type": "dht", "config": {"pin": 4}},
                  {"id": "n2", "type": "switch", "config": {"property": "temperature", "op": "gt", "value": 30}},
                  {"id": "n3", "type": "mqtt_out", "config": {"topic": "alert"}}],
        "connections": [{"source": "n1", "target": "n2"}, {"source": "n2", "target": "n3"}]}}
    flow = db.call(flows.create_flow, body)
    db.call(flows.publish_flow, flow["id"], {})
    db.peewee.close()
    return key, flow["id"]


async def _load(url: str, headers: dict, seconds: float, concurrency: int) -> tuple[float, int]:
    from aiohttp import ClientSession, TCPConnector

    async with ClientSession(connector=TCPConnector(limit=concurrency), headers=headers) as http:
        deadline = time.perf_counter() + 60
        while True:  # wait for the server
            try:
                async with http.get(url) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{url} did not come up")
            await asyncio.sleep(0.1)
        done = errors = 0
        end = time.perf_counter() + seconds

        async def worker():
            nonlocal done, errors
            while time.perf_counter() < end:
                async with http.get(url) as resp:
                    await resp.read()
                    if resp.status == 200:
                        done += 1
                    else:
                        errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - t0), errors


def _measure(target, args_, path: str, headers: dict, seconds: float, concurrency: int) -> tuple[float, int]:
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=target, args=args_, daemon=True)
    proc.start()
    try:
        return asyncio.run(_load(path, headers, seconds, concurrency))
    finally:
        proc.terminate()
        proc.join(10)


def run(args) -> dict:
    seconds = getattr(args, "seconds", 5.0)
    concurrency = getattr(args, "concurrency", 32)
    (REPO / "var").mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-api-", dir=REPO / "var"))
    try:
        db_url = str(workdir / "cloud.db")
        key, flow_id = _prepare(db_url)
        port = _free_port()
        bare, _ = _measure(_serve_bare, (port,), f"http://127.0.0.1:{port}/api/v1/flows/{flow_id}", {},
                           seconds, concurrency)
        port = _free_port()
        ours, errors = _measure(_serve_cloud, (port, db_url), f"http://127.0.0.1:{port}/api/v1/flows/{flow_id}",
                                {"x-api-key": key}, seconds, concurrency)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    ratio = ours / bare if bare else 0.0
    return {
        "bare_rps": round(bare), "fleetflow_rps": round(ours), "ratio": round(ratio, 3), "budget_ratio": BUDGET,
        "errors": errors, "ok": ratio >= BUDGET and errors == 0,
        "command": f"fleetflow bench api --seconds {seconds:g} --concurrency {concurrency}",
    }
