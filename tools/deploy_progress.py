"""The live progress display of a deployment: a pure renderer and a polling watcher.

`summarize(dep)` reduces a deployment as the API returns it
(`GET /api/v1/deployments/:id`) to phase, batch and per-status counts;
`render(...)` makes the lines shown; `watch(...)` polls until the deployment
is finished and redraws in place on a terminal (one line per change otherwise).
"""

from __future__ import annotations

import sys
import time

FINISHED = ("completed", "failed", "rolled_back", "cancelled")
TARGET_STATES = ("pending", "deploying", "success", "failed", "rolled_back", "skipped")


def summarize(dep: dict) -> dict:
    """Phase, batch (0-based, as the API counts), batch count and per-status counts."""
    counts = {s: 0 for s in TARGET_STATES}
    targets = dep.get("targets") or []
    for t in targets:
        counts[t["status"]] += 1
    if not targets:  # list documents carry the counts instead of the targets
        counts.update(dep.get("counts") or {})
    batches = 1 + max((t["batch"] for t in targets), default=-1) if targets else None
    return {
        "id": dep.get("id"),
        "strategy": dep.get("strategy"),
        "status": dep.get("status"),
        "phase": dep.get("phase"),
        "batch": dep.get("batch"),
        "batches": batches,
        "total": dep.get("total_targets") or sum(counts.values()),
        "counts": counts,
        "done": counts["success"] + counts["failed"] + counts["rolled_back"] + counts["skipped"],
    }


def _bar(s: dict, width: int = 20) -> str:
    total = max(s["total"], 1)
    ok = round(width * s["counts"]["success"] / total)
    bad = round(width * (s["counts"]["failed"] + s["counts"]["rolled_back"]) / total)
    busy = round(width * s["counts"]["deploying"] / total)
    ok, bad, busy = min(ok, width), min(bad, width - ok), min(busy, width - ok - bad)
    return "[" + "#" * ok + "x" * bad + ">" * busy + "." * (width - ok - bad - busy) + "]"


def render(s: dict, elapsed_s: float) -> list[str]:
    head = f"deployment {s['id']}  {s['strategy']}  {s['status']}"
    if s["phase"]:
        head += f"  phase: {s['phase']}"
    if s["batch"] is not None:  # the API counts batches from 0; people count from 1
        head += f"  batch {s['batch'] + 1}" + (f"/{s['batches']}" if s["batches"] else "")
    counts = "  ".join(f"{k} {v}" for k, v in s["counts"].items() if v or k in ("pending", "success", "failed"))
    return [head, f"{_bar(s)} {s['done']}/{s['total']}  {counts}  {elapsed_s:5.1f}s"]


def watch(api, dep_id: str, interval_s: float = 0.5, timeout_s: float | None = None, out=None,
          live: bool | None = None) -> dict:
    """Poll a deployment until it finishes (or `timeout_s`); show progress on `out`."""
    out = out or sys.stdout
    live = out.isatty() if live is None else live
    start = time.monotonic()
    shown: list[str] = []
    last_key = None
    while True:
        dep = api.deployment(dep_id)
        s = summarize(dep)
        lines = render(s, time.monotonic() - start)
        if out is not None and lines:
            if live:
                if shown:
                    out.write(f"\x1b[{len(shown)}F")  # back to the first line drawn
                out.write("".join(f"\x1b[2K{line}\n" for line in lines))
                out.flush()
                shown = lines
            else:
                key = (s["status"], s["phase"], s["batch"], tuple(s["counts"].values()))
                if key != last_key:
                    out.write(lines[0] + "\n  " + lines[1] + "\n")
                    out.flush()
                    last_key = key
        if s["status"] in FINISHED:
            return dep
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            return dep
        time.sleep(interval_s)
