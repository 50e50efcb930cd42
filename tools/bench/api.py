"""api: fleetflow's API requests/s against a bare aiohttp handler's, under wrk (budget: at least 50 %).

Both servers run the same way, one at a time, in a process of their own
on this machine; the same C load generator (wrk, Debian package `wrk`:
`make setup` installs it) drives each in the same run, so the figure is the
servers', not a Python client's. The bare server answers a constant JSON
body; fleetflow answers `GET /api/v1/flows/{id}` with an API key (key check,
a database read, the flow document). Prints both rates, their ratio and
wrk's latency percentiles for each.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
BUDGET = 0.50


def add_arguments(parser) -> None:
    parser.add_argument("--seconds", type=float, default=5.0, help="load per server")
    parser.add_argument("--concurrency", type=int, default=32, help="wrk connections (one wrk thread)")


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
    flow = db.call(flows.create_flow, body, time.time())
    db.call(flows.publish_flow, flow["id"], {}, time.time())
    db.peewee.close()
    return key, flow["id"]


class WrkMissing(RuntimeError):
    pass


def _wait_up(url: str, headers: dict) -> None:
    import urllib.request

    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up")
        time.sleep(0.1)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    if m is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return round(float(m.group(1)) * _UNITS[m.group(2)], 3)


def parse_wrk(out: str) -> dict:
    """Requests/s, non-2xx answers and the latency percentiles (ms) from
    `wrk --latency`'s report."""
    rps = re.search(r"Requests/sec:\s*([0-9.]+)", out)
    if rps is None:
        raise RuntimeError(f"wrk printed no Requests/sec:\n{out}")
    latency = {f"p{p}_ms": _ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", out, re.M)}
    bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"rps": float(rps.group(1)), "latency": latency,
            "errors": (int(bad.group(1)) if bad else 0) + (sum(map(int, errors.groups())) if errors else 0)}


def _wrk(url: str, headers: dict, seconds: float, concurrency: int) -> dict:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise WrkMissing("wrk is not installed: `apt-get install wrk` (Debian), or `make setup` as root")
    cmd = [wrk, "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--latency"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip() or out.stdout.strip()}")
    return parse_wrk(out.stdout)


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(target, args_, url: str, headers: dict, seconds: float, concurrency: int) -> dict:
    """wrk's figures for one server, and the server's CPU time per request
    (a figure the other loads on a shared machine hardly move)."""
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=target, args=args_, daemon=True)
    proc.start()
    try:
        _wait_up(url, headers)
        cpu0 = _cpu_s(proc.pid)
        got = _wrk(url, headers, seconds, concurrency)
        requests = got["rps"] * max(1, round(seconds))
        got["cpu_us_per_request"] = round((_cpu_s(proc.pid) - cpu0) / requests * 1e6, 1) if requests else None
        return got
    finally:
        proc.terminate()
        proc.join(10)


def run(args) -> dict:
    seconds = getattr(args, "seconds", 5.0)
    concurrency = getattr(args, "concurrency", 32)
    command = f"fleetflow bench api --seconds {seconds:g} --concurrency {concurrency}"
    if shutil.which("wrk") is None:
        return {"ok": False, "error": "wrk is not installed: `apt-get install wrk` (Debian), or `make setup` as root "
                                      "(tools/infra/setup_system.sh installs it)", "command": command}
    (REPO / "var").mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-api-", dir=REPO / "var"))
    try:
        db_url = str(workdir / "cloud.db")
        key, flow_id = _prepare(db_url)
        port = _free_port()
        bare = _measure(_serve_bare, (port,), f"http://127.0.0.1:{port}/api/v1/flows/{flow_id}", {},
                        seconds, concurrency)
        port = _free_port()
        ours = _measure(_serve_cloud, (port, db_url), f"http://127.0.0.1:{port}/api/v1/flows/{flow_id}",
                        {"x-api-key": key}, seconds, concurrency)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    ratio = ours["rps"] / bare["rps"] if bare["rps"] else 0.0
    errors = bare["errors"] + ours["errors"]
    return {
        "load_generator": "wrk", "bare_rps": round(bare["rps"]), "fleetflow_rps": round(ours["rps"]),
        "ratio": round(ratio, 3), "budget_ratio": BUDGET, "bare_latency": bare["latency"],
        "fleetflow_latency": ours["latency"], "bare_cpu_us_per_request": bare["cpu_us_per_request"],
        "fleetflow_cpu_us_per_request": ours["cpu_us_per_request"], "errors": errors, "ok": ratio >= BUDGET and errors == 0,
        "command": command,
    }
