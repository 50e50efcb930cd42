"""rollout: devices updated per minute through the real cloud (budget 100,000/min at 100,000 devices, 2 cores).

The whole cloud (HTTP API, rollout engine, MQTT bridge, SQLite) and
Mosquitto, with protocol-level simulated devices: one MQTT client in its own
process answers every device's `deploy` command with `received`, `applied`
and `healthy` acks, as the firmware does. Devices are provisioned straight
into the database (provisioning is not what is measured); the deployment is
created, started and watched through the API. Prints devices_per_min from
`start` to `completed`, the cloud process's peak RSS during the rollout
(`rss_bytes`, sampled from /proc) and the CPU seconds it used
(`cloud_cpu_s`), with the CPU seconds the simulated fleet and the broker
used meanwhile (`fleet_cpu_s`, `broker_cpu_s`, and `postgres_cpu_s`, the
server's with its backends: which side limits).
`--postgres` runs the cloud on a throwaway PostgreSQL cluster (tools/infra/pgcluster.py) instead of SQLite.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import shutil
import ssl
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
BUDGET_PER_MIN = 100_000
FLOW = {"name": "bench", "definition": {
    "nodes": [{"id": "i", "type": "inject", "config": {"payload": 1, "every": "1s"}},
              {"id": "o", "type": "mqtt_out", "config": {"topic": "x"}}],
    "connections": [{"source": "i", "target": "o"}]}}


def add_arguments(parser) -> None:
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--strategy", default="all_at_once", choices=("all_at_once", "rolling"))
    parser.add_argument("--batch-size", type=int, default=1000, help="rolling only")
    parser.add_argument("--trace", action="store_true", help="print the target counts every half second")
    parser.add_argument("--resend-after", type=float, default=30.0,
                        help="the cloud's resend_after_s (its default 30): an unanswered command is sent again "
                             "this often")
    parser.add_argument("--postgres", action="store_true",
                        help="the cloud on a throwaway PostgreSQL cluster (initdb/pg_ctl) instead of SQLite")


def _fleet(host: str, port: int, password: str, ready, stop, ca_file: str | None = None) -> None:
    """The simulated devices: acks every deploy like the firmware does."""
    import logging

    import aiomqtt

    quiet = logging.getLogger("bench.fleet.mqtt")
    quiet.setLevel(logging.ERROR)

    async def main():
        from cloud.mqttio import batched

        tls = ssl.create_default_context(cafile=ca_file) if ca_file else None
        # No in-flight window of its own (0): with one, paho walks the window
        # on every PUBACK to find the next queued ack (300,000 acks queued
        # at 100,000 devices made the fleet the slow side); the broker takes
        # QoS 1 from a client without a limit anyway.
        client = batched(aiomqtt.Client(host, port, username="admin", password=password, identifier="bench-fleet",
                                        max_inflight_messages=0, logger=quiet, tls_context=tls))
        async with client:
            await client.subscribe("ff/+/cmd", qos=1)
            ready.set()
            paho = client._client  # noqa: SLF001 - queue the acks without waiting for each PUBACK
            queue = client._queue  # noqa: SLF001 - and answer every command waiting, not one a task
            async for message in client.messages:
                while True:
                    cmd = json.loads(message.payload)
                    if cmd.get("op") == "deploy":
                        topic = "ff/" + str(message.topic).split("/")[1] + "/ack"
                        for state in ("received", "applied", "healthy"):  # in order, as a device would
                            ack = {"id": cmd["id"], "op": "deploy", "state": state, "reason": None,
                                   "seq": cmd["seq"], "slot": "a"}
                            paho.publish(topic, json.dumps(ack), qos=1)
                    if queue.empty():
                        break
                    message = queue.get_nowait()
                if stop.is_set():
                    break

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


def _rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _cpu_s(pid: int | None, children: bool = False) -> float:
    """CPU seconds (user + system) used so far by another process (0 when
    unknown), and by its child processes alive now when `children`."""
    if not pid:
        return 0.0
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rpartition(")")[2].split()
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    if children:
        import psutil

        for child in psutil.Process(pid).children(recursive=True):
            try:
                total += _cpu_s(child.pid)
            except OSError:
                pass  # gone meanwhile
    return total


def _postmaster_pid() -> int:
    """The throwaway PostgreSQL server's postmaster (its backends are its children)."""
    from cloud.models import Device

    data_dir = Device._meta.database.execute_sql("SHOW data_directory").fetchone()[0]
    with open(os.path.join(data_dir, "postmaster.pid")) as fh:
        return int(fh.readline())


def _resent(dep_id: str) -> int:
    """Sends beyond the first of the deployment's commands (the outbox's resends)."""
    import peewee

    from cloud.models import Command

    total = (Command.select(peewee.fn.COALESCE(peewee.fn.SUM(Command.sent_count), 0), peewee.fn.COUNT(Command.id))
             .where(Command.deployment == dep_id).scalar(as_tuple=True))
    return int(total[0]) - int(total[1])


def _provision(db, box, count: int) -> None:
    """`count` devices straight into the database, in bulk (what the API's
    provisioning would store, minus the broker account: the bench fleet
    connects as one admin client)."""
    from cloud import secrets
    from cloud.db import insert_rows
    from cloud.models import Device
    from cloud.natural import natural_key

    now = time.time()
    for start in range(0, count, 5000):
        rows = [{"id": f"b{i:06d}", "natural_key": natural_key(f"b{i:06d}"), "board": "unix-sim", "tags": ["bench"],
                 "password_hash": secrets.hash_token(secrets.new_token()), "key_sealed": box.seal(os.urandom(32)),
                 "created_at": now} for i in range(start, min(count, start + 5000))]
        db.call(insert_rows, Device, rows)


async def _measure(args, workdir: Path, db_url: str) -> dict:
    from aiohttp import ClientSession, web

    from cloud.app import init_app
    from cloud.appkeys import BOX, DB
    from cloud.config import Config
    from cloud.store import keys as key_store
    from tools.infra.broker import start_broker

    broker = start_broker(workdir / "broker", users={"cloud": "cloudpw", "admin": "adminpw"})
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    fleet = ctx.Process(target=_fleet, args=(broker.host, broker.port, "adminpw", ready, stop, str(broker.tls.ca)),
                        daemon=True)
    runner = None
    try:
        config = Config(db_url=db_url, mqtt_url=f"mqtts://cloud:cloudpw@{broker.host}:{broker.port}",
                        mqtt_ca_file=str(broker.tls.ca),
                        secret=b"bench-secret-bench-secret-32byte", engine_tick_s=0.5,
                        resend_after_s=args.resend_after)
        app = init_app(config)
        db, box = app[DB], app[BOX]
        key = db.call(key_store.create_key, "admin")["key"]

        t = time.perf_counter()
        _provision(db, box, args.devices)
        provision_s = time.perf_counter() - t

        fleet.start()
        if not ready.wait(30):
            raise RuntimeError("the simulated fleet did not connect")
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{port}/api/v1"
        headers = {"x-api-key": key}
        async with ClientSession(headers=headers) as http:
            async def call(method, path, body=None):
                async with http.request(method, base + path, json=body) as resp:
                    data = await resp.json(content_type=None)
                    if resp.status >= 400:
                        raise RuntimeError(f"{method} {path}: {resp.status} {data}")
                    return data
            flow = await call("POST", "/flows", FLOW)
            await call("POST", f"/flows/{flow['id']}/publish")
            cfg = {"health": {"runs": 1, "seconds": 0}, "timeout": "10m"}
            if args.strategy == "rolling":
                cfg.update(batch_size=args.batch_size, batch_delay=0)
            t = time.perf_counter()
            dep = await call("POST", "/deployments", {"flow_id": flow["id"], "strategy": args.strategy,
                                                      "target_tags": ["bench"], "config": cfg,
                                                      # the rollout's own speed is measured: no rehearsal first
                                                      "rehearse": False})
            create_s = time.perf_counter() - t
            others = {"fleet_cpu_s": fleet.pid, "broker_cpu_s": getattr(getattr(broker, "proc", None), "pid", None)}
            if args.postgres:
                others["postgres_cpu_s"] = db.call(_postmaster_pid)
            others0 = {k: _cpu_s(pid, k == "postgres_cpu_s") for k, pid in others.items()}
            t0, cpu0, rss = time.perf_counter(), sum(os.times()[:2]), _rss_bytes()
            await call("POST", f"/deployments/{dep['id']}/start")
            while True:
                await asyncio.sleep(0.5)
                rss = max(rss, _rss_bytes())
                got = await call("GET", f"/deployments/{dep['id']}")  # counts; targets only when small
                if args.trace:
                    print(round(time.perf_counter() - t0, 1), got["counts"], flush=True)
                if got["status"] not in ("running", "paused"):
                    break
                if time.perf_counter() - t0 > 600:
                    raise RuntimeError("the rollout took over 10 minutes")
            elapsed = time.perf_counter() - t0
            cpu = sum(os.times()[:2]) - cpu0
            others_cpu = {k: round(_cpu_s(pid, k == "postgres_cpu_s") - others0[k], 1) for k, pid in others.items()
                          if pid}
        rate = got["completed_targets"] / elapsed * 60
        resent = db.call(_resent, dep["id"])
        return {
            "devices": args.devices, "strategy": args.strategy, "status": got["status"],
            "completed_targets": got["completed_targets"], "rollout_s": round(elapsed, 2),
            "devices_per_min": round(rate), "budget_per_min": BUDGET_PER_MIN,
            "create_deployment_s": round(create_s, 2), "provision_s": round(provision_s, 2),
            "commands_resent": resent, "resend_after_s": args.resend_after,
            "rss_bytes": rss, "cloud_cpu_s": round(cpu, 1), **others_cpu, "broker": broker.kind,
            "database": "postgresql" if args.postgres else "sqlite",
            "ok": got["status"] == "completed" and rate >= BUDGET_PER_MIN,
            "command": f"fleetflow bench rollout --devices {args.devices} --strategy {args.strategy}"
                       + (f" --batch-size {args.batch_size}" if args.strategy == "rolling" else "")
                       + (" --postgres" if args.postgres else "")
                       + (f" --resend-after {args.resend_after:g}" if args.resend_after != 30 else ""),
        }
    finally:
        stop.set()
        if runner is not None:
            await runner.cleanup()
        if fleet.is_alive():
            fleet.terminate()
            fleet.join(5)
        broker.stop()


def run(args) -> dict:
    args.devices = getattr(args, "devices", 10_000)
    args.strategy = getattr(args, "strategy", "all_at_once")
    args.batch_size = getattr(args, "batch_size", 1000)
    args.trace = getattr(args, "trace", False)
    args.postgres = getattr(args, "postgres", False)
    args.resend_after = getattr(args, "resend_after", 30.0)
    (REPO / "var").mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-rollout-", dir=REPO / "var"))
    try:
        if args.postgres:
            from tools.infra.pgcluster import throwaway_postgres

            # A benchmark's throwaway cluster: durability off, as for any
            # scratch database (a real one keeps the defaults).
            with throwaway_postgres("fsync=off", "synchronous_commit=off", "full_page_writes=off") as url:
                return asyncio.run(_measure(args, workdir, url))
        return asyncio.run(_measure(args, workdir, str(workdir / "cloud.db")))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
