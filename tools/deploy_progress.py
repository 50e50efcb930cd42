"""The live progress display of a deployment: a pure renderer and a polling watcher.

`summarize(dep)` reduces a deployment as the API returns it
(`GET /api/v1/deployments/:id`) to phase, batch and per-status counts;
`render(...)` makes the lines shown; `watch(...)` follows the deployment's
live event stream (`GET .../stream`: metadata, update, sync, complete;
`apply` merges each update into the document), reconnecting when dropped,
until it is finished, and redraws in place on a terminal (one line per change
otherwise). Without a stream it polls.
"""

from __future__ import annotations

import sys
import time

from cloud.engine.state import FINISHED, TARGET_STATUSES as TARGET_STATES


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


def apply(doc: dict, event: str, data: dict) -> dict:
    """The deployment document after one stream event (pure; `doc` is not changed)."""
    if event in ("metadata", "sync"):
        return data
    if event != "update":
        return doc
    out = {**doc, **data.get("deployment", {})}
    changed = {t["device_id"]: t for t in data.get("targets", [])}
    if changed:
        out["targets"] = [{**t, **changed.get(t["device_id"], {})} for t in doc.get("targets", [])]
    return out


class _Display:
    def __init__(self, out, live: bool):
        self.out, self.live = out, live
        self.start = time.monotonic()
        self.shown = 0
        self.last_key = None

    def show(self, dep: dict) -> str:
        s = summarize(dep)
        lines = render(s, time.monotonic() - self.start)
        if self.live:
            if self.shown:
                self.out.write(f"\x1b[{self.shown}F")  # back to the first line drawn
            self.out.write("".join(f"\x1b[2K{line}\n" for line in lines))
            self.shown = len(lines)
        else:
            # a log gets a line per step (status, phase, batch) and per failure, not per device
            c = s["counts"]
            key = (s["status"], s["phase"], s["batch"], c["failed"], c["rolled_back"], c["skipped"])
            if key != self.last_key:
                self.out.write(lines[0] + "\n  " + lines[1] + "\n")
                self.last_key = key
        self.out.flush()
        return s["status"]


# A cloud that restarts comes back within seconds; one gone this long is not
# coming back for this watch: say so rather than wait forever.
UNREACHABLE_GIVE_UP_S = 120.0


def watch(api, dep_id: str, interval_s: float = 0.5, timeout_s: float | None = None, out=None,
          live: bool | None = None, stream: bool = True, give_up_s: float = UNREACHABLE_GIVE_UP_S) -> dict:
    """Follow a deployment until it finishes (or `timeout_s`); show progress on `out`.
    Raises the client's ApiError once the cloud has been unreachable for `give_up_s`."""
    out = out or sys.stdout
    display = _Display(out, out.isatty() if live is None else live)
    if stream and hasattr(api, "stream"):
        dep = _follow_stream(api, dep_id, display, timeout_s, give_up_s)
        if dep is not None:
            return dep
    while True:  # no stream: poll
        dep = api.deployment(dep_id)
        if display.show(dep) in FINISHED:
            return dep
        if timeout_s is not None and time.monotonic() - display.start > timeout_s:
            return dep
        time.sleep(interval_s)


def _follow_stream(api, dep_id: str, display: _Display, timeout_s: float | None, give_up_s: float) -> dict | None:
    """Follow the event stream; None when the cloud has none (then the caller polls)."""
    from tools.client import ApiError

    doc: dict = {}
    last_id = None
    unreachable_since = None
    while True:
        try:
            for event_id, event, data in api.stream(f"/deployments/{dep_id}/stream", last_id,
                                                   timeout_s=min(timeout_s or 60, 60)):
                last_id, unreachable_since = event_id or last_id, None
                if event == "complete":
                    final = api.deployment(dep_id)
                    display.show(final)
                    return final
                if event == "error":
                    break  # dropped as too slow: reconnect with Last-Event-ID for a sync
                doc = apply(doc, event, data)
                display.show(doc)
        except ApiError as exc:
            if exc.status == 404 and not doc:
                return None
            if exc.status:
                raise
            now = time.monotonic()
            unreachable_since = unreachable_since or now
            if now - unreachable_since >= give_up_s:
                raise
        except OSError:  # the stream broke off (timeout, reset): reconnect
            pass
        if timeout_s is not None and time.monotonic() - display.start > timeout_s:
            return api.deployment(dep_id)
        time.sleep(0.5)  # the cloud may be restarting: try again shortly
