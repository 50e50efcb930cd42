"""The live progress display of a deployment: pure renderers and a watcher.

`summarize(dep)` reduces a deployment as the API returns it
(`GET /api/v1/deployments/:id`) to phase, batch and per-status counts;
`render(...)` makes the two summary lines; `device_rows(...)` a line per
device: its status, the acks it sent (received -> staged -> applied ->
healthy) and, on trial, where it stands against the health rule
("on trial: 2 of 3 healthy runs, 18 s left", `trial_text`). `watch(...)`
follows the deployment's live event stream (`GET .../stream`: metadata,
update, sync, complete; `apply` merges each update into the document),
reconnecting when dropped, until it is finished. On a terminal rich redraws
it in place four times a second (so the trial counts down while no event
comes); on a pipe or a log it prints a block per step and a line per device
change. Without a stream it polls.

Only the HTTP API is used: the statuses below are the API's, not imported
from the cloud's code. While a device is on trial, its run records
(`GET /devices/:id/runs`) say how many runs the new version has made.
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import datetime, timezone

FINISHED = frozenset({"completed", "failed", "rolled_back", "cancelled"})
TARGET_STATES = ("pending", "deploying", "success", "failed", "rolled_back", "skipped")
ACK_ORDER = ("received", "staged", "applied", "healthy")
TRIAL_DEVICES_MAX = 8  # devices whose runs are read on trial each second
DEVICE_ROWS_MAX = 20  # devices shown one by one; more are summed up by status


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
        "rate": dep.get("rate_per_minute"),  # rate control's current rate, None when unlimited
        "total": dep.get("total_targets") or sum(counts.values()),
        "counts": counts,
        "done": counts["success"] + counts["failed"] + counts["rolled_back"] + counts["skipped"],
        "rehearsal": dep.get("rehearsal"),
    }


def rehearsal_text(r: dict | None) -> str | None:
    """The rehearsal on simulated twins in words (pure); None when the deployment has none."""
    if not r:
        return None
    status = r.get("status")
    if status == "pending":
        return "rehearsal: on simulated twins when it starts"
    if status == "running":
        return "rehearsing on simulated twins: this version and the one the targets run, fed with their recorded readings"
    boards = r.get("boards") or []
    runs = sum((b.get("runs") or {}).get("candidate") or 0 for b in boards)
    readings = sum(b.get("readings_replayed") or 0 for b in boards)
    diffs = sum(1 for b in boards for f in b.get("findings", ()) if f.get("kind") == "output_diff")
    where = ", ".join(b["board"] for b in boards) or "no board"
    if status == "passed":
        return (f"rehearsal passed: {runs} runs on twins of {where}, {readings} recorded readings replayed, "
                f"no new errors" + (f", {diffs} node(s) with different outputs" if diffs else ""))
    return f"rehearsal failed: {r.get('reason') or 'see its findings'}"


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
    if s.get("rate"):
        head += f"  {s['rate']:g} a minute"
    counts = "  ".join(f"{k} {v}" for k, v in s["counts"].items() if v or k in ("pending", "success", "failed"))
    lines = [head, f"{_bar(s)} {s['done']}/{s['total']}  {counts}  {elapsed_s:5.1f}s"]
    said = rehearsal_text(s.get("rehearsal"))
    return lines + [said] if said else lines


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


def health_words(rule: dict | None, health_check: bool = True) -> str:
    """The health rule as a sentence: what a device must do on trial to be kept."""
    if not health_check:
        return "health check off: a device is kept once it has applied the version"
    rule = rule or {}
    runs, seconds, rate = rule.get("runs", 3), rule.get("seconds", 30), rule.get("max_error_rate", 0.25)
    return (f"kept after {runs} run{'s' if runs != 1 else ''} with at most {rate:.0%} failing "
            f"and {seconds:g} s on trial; rolled back when more fail")


def trial_text(rule: dict | None, runs_ok: int | None, runs_failed: int, on_trial_s: float) -> str:
    """Where a device on trial stands: 'on trial: 2 of 3 healthy runs, 18 s left' (pure)."""
    rule = rule or {}
    need, seconds = rule.get("runs", 3), rule.get("seconds", 30)
    left = max(0.0, seconds - on_trial_s)
    text = "on trial"
    if runs_ok is not None:
        text += f": {min(runs_ok, need)} of {need} healthy run{'s' if need != 1 else ''}"
        if runs_failed:
            text += f", {runs_failed} failed"
    text += f", {left:.0f} s left" if left > 0 else ", time is up"
    if left <= 0 and runs_ok is not None and runs_ok + runs_failed < need:
        text += f", waiting for {need - runs_ok - runs_failed} more run{'s' if need - runs_ok - runs_failed != 1 else ''}"
    return text


def acks_text(ack: str | None, status: str) -> str:
    """The acks a device has sent so far, in protocol order: 'received > staged > applied'."""
    if not ack:
        return ""
    if ack in ACK_ORDER:
        return " > ".join(ACK_ORDER[:ACK_ORDER.index(ack) + 1])
    return ack  # failed, rolled_back, rejected


def device_rows(dep: dict, trials: dict | None = None, now: float | None = None) -> list[list[str]]:
    """[device, status, acks, note] for each target (pure; `trials` maps a
    device to (applied_at monotonic, runs_ok, runs_failed) as TrialWatch keeps it)."""
    trials = trials or {}
    now = time.monotonic() if now is None else now
    rule = (dep.get("settings") or {}).get("health")
    rows = []
    for t in dep.get("targets") or []:
        note = t.get("reason") or ""
        trial = trials.get(t["device_id"])
        if t["status"] == "deploying" and t.get("ack") == "applied" and trial:
            note = trial_text(rule, trial[1], trial[2], now - trial[0])
        elif t["status"] == "deploying" and not t.get("ack"):
            note = f"sent {t.get('step') or 'deploy'}, waiting for the device"
        rows.append([t["device_id"], t["status"], acks_text(t.get("ack"), t["status"]), note])
    return rows


def doc_time(text: str | None) -> float | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None
    except ValueError:
        return None


class TrialWatch:
    """For each device on trial (ack `applied`): when it was seen applied, and
    how many runs of the deployed version it has reported since (its run records)."""

    def __init__(self, api):
        self.api = api if hasattr(api, "get") else None
        self.trials: dict[str, tuple[float, int | None, int]] = {}
        self._wall: dict[str, float] = {}

    def update(self, dep: dict) -> None:
        on_trial = {t["device_id"] for t in dep.get("targets") or []
                    if t["status"] == "deploying" and t.get("ack") == "applied"}
        for device in list(self.trials):
            if device not in on_trial:
                del self.trials[device]
                self._wall.pop(device, None)
        for device in on_trial:
            if device not in self.trials:
                self.trials[device] = (time.monotonic(), None, 0)
                self._wall[device] = time.time()

    def poll(self, dep: dict) -> None:
        """Read the runs of up to TRIAL_DEVICES_MAX devices on trial."""
        from tools.cli.client import ApiError

        if self.api is None:
            return
        for device in sorted(self.trials)[:TRIAL_DEVICES_MAX]:
            try:
                runs = self.api.get(f"/devices/{device}/runs", limit=50)["runs"]
            except (ApiError, OSError, KeyError):  # the display goes on without the counts
                return
            since = self._wall.get(device, 0) - 2  # the cloud's clock may differ a little
            mine = [r for r in runs if r.get("flow") == dep.get("flow_id") and r.get("ver") == dep.get("version")
                    and not r.get("exec") and (doc_time(r.get("received_at")) or 0) >= since]
            ok = sum(1 for r in mine if r.get("status") == "completed")
            if device in self.trials:
                self.trials[device] = (self.trials[device][0], ok, len(mine) - ok)


class _Display:
    def __init__(self, out, live: bool, api=None):
        self.out, self.live = out, live
        self.start = time.monotonic()
        self.doc: dict = {}
        self.last_key = None
        self.last_rows: dict[str, list[str]] = {}
        self.trials = TrialWatch(api)
        self.lock = threading.Lock()
        self.screen = None
        self._stop = threading.Event()
        self._ticker = None

    # -- rendering --
    def lines(self) -> list[str]:
        s = summarize(self.doc)
        return render(s, time.monotonic() - self.start)

    def renderable(self):
        from rich.console import Group
        from rich.text import Text

        from tools.cli import ui

        with self.lock:
            doc = self.doc
            head = self.lines()
            rows = device_rows(doc, self.trials.trials)
        parts = [Text(line) for line in head]
        settings = doc.get("settings") or {}
        if settings:
            parts.append(Text("health rule: " + health_words(settings.get("health"),
                                                              settings.get("health_check", True)), style="dim"))
        if rows:
            shown = rows[:DEVICE_ROWS_MAX]
            parts.append(ui.table(("device", "status", "acks", ""), shown))
            if len(rows) > len(shown):
                parts.append(Text(f"... and {len(rows) - len(shown)} more devices"))
        return Group(*parts)

    # -- life cycle --
    def begin(self) -> None:
        if self.live:
            from rich.live import Live

            from tools.cli import ui

            self.screen = Live(get_renderable=self.renderable, console=ui.console(file=self.out),
                               refresh_per_second=4, transient=False)
            self.screen.start()
        self._ticker = threading.Thread(target=self._tick, name="deploy-trial-watch", daemon=True)
        self._ticker.start()

    def end(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
        if self.screen is not None:
            self.screen.stop()
            self.screen = None

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            with self.lock:
                doc = self.doc
            if self.trials.trials:
                self.trials.poll(doc)
                if not self.live:
                    self._log_devices()

    def show(self, dep: dict) -> str:
        with self.lock:
            self.doc = dep
            self.trials.update(dep)
        if self.live:
            if self.screen is not None:
                self.screen.refresh()
        else:
            # a log gets a block per step (status, phase, batch) and per failure, and a line per device change
            s = summarize(dep)
            c = s["counts"]
            key = (s["status"], s["phase"], s["batch"], c["failed"], c["rolled_back"], c["skipped"])
            if key != self.last_key:
                lines = self.lines()
                with self.lock:
                    self.out.write(lines[0] + "\n  " + lines[1] + "\n")
                if self.last_key is None and dep.get("settings"):
                    settings = dep["settings"]
                    self.out.write("  health rule: " + health_words(settings.get("health"),
                                                                     settings.get("health_check", True)) + "\n")
                self.last_key = key
            self._log_devices()
        self.out.flush()
        return dep.get("status")

    def _log_devices(self) -> None:
        with self.lock:
            rows = device_rows(self.doc, self.trials.trials)
            if len(rows) > DEVICE_ROWS_MAX:
                return
            for device, status, acks, note in rows:
                # the countdown's seconds change every tick: a line only when the runs or the status do
                key = [status, acks, note.split(" s left")[0].rsplit(",", 1)[0] if "s left" in note else note]
                if self.last_rows.get(device) != key:
                    self.last_rows[device] = key
                    self.out.write(f"    {device}: {status}" + (f" ({acks})" if acks else "")
                                   + (f": {note}" if note else "") + "\n")
            self.out.flush()


# A cloud that restarts comes back within seconds; one gone this long is not
# coming back for this watch: say so rather than wait forever.
UNREACHABLE_GIVE_UP_S = 120.0


def watch(api, dep_id: str, interval_s: float = 0.5, timeout_s: float | None = None, out=None,
          live: bool | None = None, stream: bool = True, give_up_s: float = UNREACHABLE_GIVE_UP_S) -> dict:
    """Follow a deployment until it finishes (or `timeout_s`); show progress on `out`.
    Raises the client's ApiError once the cloud has been unreachable for `give_up_s`."""
    out = out or sys.stdout
    display = _Display(out, out.isatty() if live is None else live, api)
    display.begin()
    try:
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
    finally:
        display.end()


def _follow_stream(api, dep_id: str, display: _Display, timeout_s: float | None, give_up_s: float) -> dict | None:
    """Follow the event stream; None when the cloud has none (then the caller polls)."""
    from tools.cli.client import ApiError

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
