"""Broker accounts: Mosquitto CPU per device provisioning, by accounts held.

Mosquitto 2.0's dynamic security plugin writes its whole JSON file after
every change, on the broker's one thread, so one provisioning costs the
broker time in proportion to the accounts it holds, and all MQTT traffic
waits meanwhile. This fills a real Mosquitto (tools/infra/broker.py) with device
accounts in batches, then times `--probe` single provisionings at each size:
the broker's CPU (utime + stime from /proc) and the wall time of the whole
round trip (connect, command, answer). Figures: docs/BENCHMARKS.md.
"""

from __future__ import annotations

import os
import tempfile
import time

from cloud import dynsec


def add_arguments(p) -> None:
    p.add_argument("--accounts", default="100,1000,3000", help="sizes to measure at, comma-separated, rising")
    p.add_argument("--probe", type=int, default=10, help="single provisionings timed at each size")


def _cpu_s(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(args) -> dict:
    from tools.infra.broker import mosquitto_path, start_broker

    if not mosquitto_path():
        return {"ok": False, "error": "mosquitto is not installed"}
    sizes = [int(s) for s in str(args.accounts).split(",") if s.strip()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp, start_broker(tmp, prefer="mosquitto") as broker:
        pid, held = broker.proc.pid, 0
        for size in sizes:
            while held < size:
                batch = range(held, min(size, held + 500))
                broker._control([c for i in batch for c in dynsec.add_device(f"fill-{i:06d}", "pw")])
                held = batch[-1] + 1
            cpu0, wall0 = _cpu_s(pid), time.monotonic()
            for j in range(args.probe):
                broker.add_user(f"probe-{size}-{j}", "pw")
            held += args.probe
            rows.append({"accounts": size, "broker_cpu_ms": round((_cpu_s(pid) - cpu0) / args.probe * 1000, 1),
                         "wall_ms": round((time.monotonic() - wall0) / args.probe * 1000, 1),
                         "json_kb": round(broker.dynsec_file.stat().st_size / 1024)})
    return {"per_provisioning": rows, "command": f"fleetflow bench accounts --accounts {args.accounts} "
                                                  f"--probe {args.probe}"}
