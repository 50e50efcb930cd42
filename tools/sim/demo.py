"""The demo story (`make demo`, `fleetflow demo`): a whole fleetflow on one machine.

1. an MQTT broker (Mosquitto if installed, else amqtt in-process), MQTT over
   TLS with a private CA made for the run (plain only with --plain-mqtt);
2. the cloud (`fleetflow serve`) on SQLite;
3. 20 simulated devices, each a MicroPython unix-port process running the real
   firmware on its own LittleFS image, provisioned through the API;
4. the example flow published as v1 and rolled out to all 20 at once;
5. v2, with a typo that fails every run, rolled out canary first: the cloud
   rehearses it on simulated twins fed with the readings the fleet recorded,
   catches the failing node before any device gets it, and quarantines v2;
6. the same v2 forced past the rehearsal (what a twin cannot see still
   reaches the canary): the canary devices roll themselves back and the
   deployment rolls the fleet back;
7. v3, the fix, rolled out in batches of 5 to all 20.

Every outcome is checked against the API as it is narrated; `run_story`
returns whether all of them held (`fleetflow demo --exit` exits 0 only then).
"""

from __future__ import annotations

import copy
import json
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tools.cli import deploy_progress
from tools.cli.client import ApiError
from tools.sim.fleet import Fleet
from tools.infra.stack import Stack

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "temperature-alert.json"
VAR = REPO / "var" / "demo"
# Quick health gate so the story fits in minutes: 2 good runs and 3 s on trial.
HEALTH = {"runs": 2, "seconds": 3, "max_error_rate": 0.25}


class DemoFailed(Exception):
    """A step did not come out as narrated."""


@dataclass
class Narrator:
    out: object = sys.stdout
    t0: float = field(default_factory=time.monotonic)
    checks: list = field(default_factory=list)
    step_no: int = 0
    steps: int = 6

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def step(self, text: str) -> None:
        self.step_no += 1
        self._say(f"\n[{time.monotonic() - self.t0:6.1f}s] {self.step_no}/{self.steps}  {text}")

    def note(self, text: str) -> None:
        self._say(f"{'':17}{text}")

    def check(self, ok: bool, text: str, detail: str = "") -> None:
        self.checks.append((ok, text, detail))
        self._say(f"{'':17}{'ok ' if ok else 'NOT'} {text}" + (f"  ({detail})" if detail else ""))
        if not ok:
            raise DemoFailed(text + (f": {detail}" if detail else ""))


def variant(flow: dict, *, typo: bool = False, threshold: int | None = None) -> dict:
    """The example flow, optionally broken (a typo in a field name) or re-tuned."""
    out = copy.deepcopy(flow)
    for node in out["definition"]["nodes"]:
        if typo and node["type"] == "change":
            node["config"]["property"] = "temperatur"  # no such field: the node raises on every run
    if threshold is not None:
        for var in out["definition"]["variables"]:
            if var["name"] == "threshold":
                var["value"] = str(threshold)
    return out


def wait_for(pred, timeout_s: float, every_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while True:
        value = pred()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every_s)


class Demo:
    def __init__(self, workdir: Path = VAR, devices: int = 20, out=sys.stdout, prefer_broker: str = "mosquitto",
                 plain_mqtt: bool = False):
        self.plain_mqtt = plain_mqtt
        self.workdir = Path(workdir)
        self.count = devices
        self.say = Narrator(out=out)
        self.prefer_broker = prefer_broker
        self.stack: Stack | None = None
        self.fleet: Fleet | None = None

    # -- helpers -------------------------------------------------------------------

    @property
    def api(self):
        return self.stack.api

    def _devices(self) -> dict[str, dict]:
        return {d["id"]: d for d in self.api.list_devices() if d["id"] in self.fleet.devices}

    def _versions(self) -> dict:
        vers: dict = {}
        for d in self._devices().values():
            vers[d.get("ver")] = vers.get(d.get("ver"), 0) + 1
        return vers

    def _all_on(self, ver: int, timeout_s: float = 20) -> dict:
        wait_for(lambda: self._versions() == {ver: self.count}, timeout_s)
        return self._versions()

    def _deploy(self, body: dict, timeout_s: float = 120) -> dict:
        dep = self.api.create_deployment(body)
        self.say.note(f"deployment {dep['id']}: {self.api.api_url('/deployments/' + dep['id'])}")
        self.api.deployment_action(dep["id"], "start")
        return deploy_progress.watch(self.api, dep["id"], interval_s=0.5, timeout_s=timeout_s,
                                     out=_Indented(self.say.out, 17), live=False)

    def _events(self, dep_id: str) -> None:
        """What happened, in order, as the cloud recorded it (skipped targets summed up)."""
        events = self.api.deployment_events(dep_id)
        self.say.note(f"what happened, in order: {self.api.api_url('/deployments/' + dep_id + '/events')}")
        for line in event_lines(events):
            self.say.note("  " + line)

    def _publish(self, flow_id: str, body: dict | None) -> int:
        if body is not None:
            self.api.restore_version(flow_id, 1, publish=False)  # published flows change only through a new draft
            self.api.update_flow(flow_id, {"definition": body["definition"]})
        return self.api.publish_flow(flow_id)["version"]

    # -- the story -----------------------------------------------------------------

    def start(self) -> None:
        say = self.say
        if self.workdir.exists():
            shutil.rmtree(self.workdir)  # a fresh fleet every run: running twice works
        say.step("Starting the MQTT broker (MQTT over TLS, a private CA) and the cloud "
                 "(the aiohttp app `fleetflow serve` runs, on SQLite)")
        self.stack = Stack(self.workdir / "stack", prefer_broker=self.prefer_broker, plain_mqtt=self.plain_mqtt,
                           log=say.note).start()
        say.note(f"API key (admin): {self.api.api_key}")
        say.note(f"look:  FLEETFLOW_API_KEY={self.api.api_key} fleetflow devices list --cloud {self.api.url}")
        say.note(f"dashboard: {self.api.url}/  (the first visitor creates the admin account; "
                 "or 'Use an API key instead' with the key above)")

        say.step(f"Booting {self.count} simulated devices: MicroPython unix-port processes running the real "
                 "firmware, each on its own LittleFS image, provisioned through the API")
        self.fleet = Fleet(self.workdir / "fleet", self.count, mqtt_host=self.stack.broker.host,
                           mqtt_port=self.stack.broker.port, provision=self.stack.provision, prefix="dev",
                           log=say.note)
        self.fleet.start()
        online = wait_for(lambda: [d for d, v in self._devices().items() if v.get("online")]
                          if len([v for v in self._devices().values() if v.get("online")]) == self.count
                          else None, 60)
        n = len([v for v in self._devices().values() if v.get("online")])
        say.check(bool(online), f"{n}/{self.count} devices online at the cloud", self.api.api_url("/devices"))

    def story(self) -> None:
        say = self.say
        base = json.loads(EXAMPLE.read_text())
        targets = list(self.fleet.ids)

        say.step(f"Publishing the example flow '{base['name']}' (DHT22 -> round -> threshold -> MQTT alert) "
                 f"and deploying v1 to all {self.count} at once")
        flow = self.api.create_flow(base)
        flow_id = flow["id"]
        v1 = self._publish(flow_id, None)
        say.note(f"flow {flow_id} v{v1}: {self.api.api_url('/flows/' + flow_id)}")
        dep = self._deploy({"flow_id": flow_id, "version": v1, "strategy": "all_at_once",
                            "target_devices": targets, "config": {"health": HEALTH}})
        c = dep["counts"]
        say.check(dep["status"] == "completed" and c["success"] == self.count,
                  f"v{v1} deployment completed: {c['success']}/{self.count} devices healthy", dep["status"])
        vers = self._all_on(v1)
        say.check(vers == {v1: self.count}, f"every device reports v{v1}", _fmt(vers))

        say.step("v2 has a typo: its Round node reads 'temperatur'. It validates (a message may carry any "
                 "field), but fails on every run. Deploying it canary first; before any device gets it, the "
                 "cloud rehearses it on simulated twins fed with the readings the fleet recorded under v1")
        v2 = self._publish(flow_id, variant(base, typo=True))
        canary = {"flow_id": flow_id, "version": v2, "strategy": "canary", "target_devices": targets,
                  "config": {"canary_percentage": 10, "canary_delay": "20s", "health": HEALTH}}
        dep = self._deploy(canary)
        r = dep.get("rehearsal") or {}
        twins = ", ".join(f"{b['board']}: {b['runs']['candidate']} runs of v{v2} and of the v{v1} it replaces, "
                          f"{b['readings_replayed']} recorded readings replayed" for b in r.get("boards", []))
        say.check(dep["status"] == "failed" and r.get("status") == "failed",
                  f"the rehearsal caught it: {dep.get('reason')}", f"{twins}; {r.get('seconds')} s")
        vers = self._all_on(v1)
        say.check(vers == {v1: self.count} and all(t["status"] == "skipped" for t in dep["targets"]),
                  f"no device received v{v2}; v{v2} is quarantined (deploying it needs force)", _fmt(vers))

        say.step(f"A twin cannot see everything (a sensor only the real board has, its wiring). The canary is "
                 f"the second line: forcing v{v2} past the quarantine without a rehearsal, 10% of the fleet first, "
                 "watched for up to 20 s")
        dep = self._deploy(dict(canary, force=True, rehearse=False))
        self._events(dep["id"])
        canary = [t for t in dep["targets"] if t["batch"] == 0]
        rest = [t for t in dep["targets"] if t["batch"] != 0]
        say.check(bool(canary) and all(t["status"] in ("rolled_back", "failed") for t in canary),
                  f"the canary failed: its {len(canary)} device(s) are back on v{v1} (rolled back by the "
                  "device itself, or by the cloud)")
        # rolled_back when the cloud had to switch a canary back itself; failed
        # when every canary had already rolled itself back (nothing left to undo)
        say.check(dep["status"] in ("rolled_back", "failed") and all(t["status"] == "skipped" for t in rest),
                  f"the deployment stopped and rolled back; the other {len(rest)} devices never received v{v2}",
                  f"deployment {dep['status']}: {dep.get('reason') or ''}")
        vers = self._all_on(v1)
        say.check(vers == {v1: self.count}, f"the whole fleet still runs v{v1}", _fmt(vers))

        say.step("v3 fixes the typo (and alerts from 28 C). Rolling it out in batches of 5, 2 s apart")
        v3 = self._publish(flow_id, variant(base, threshold=28))
        dep = self._deploy({"flow_id": flow_id, "version": v3, "strategy": "rolling", "target_devices": targets,
                            "config": {"batch_size": 5, "batch_delay": "2s", "health": HEALTH}})
        c = dep["counts"]
        batches = len({t["batch"] for t in dep["targets"]})
        say.check(dep["status"] == "completed" and c["success"] == self.count,
                  f"v{v3} rolled out in {batches} batches: {c['success']}/{self.count} devices healthy",
                  dep["status"])
        vers = self._all_on(v3)
        say.check(vers == {v3: self.count}, f"every device reports v{v3}", _fmt(vers))

    def stop(self) -> None:
        if self.fleet is not None:
            self.fleet.stop()
            self.fleet = None
        if self.stack is not None:
            self.stack.stop()
            self.stack = None


def event_lines(events: list[dict]) -> list[str]:
    """A deployment's events as short lines, times relative to its start (pure)."""
    from datetime import datetime

    def t(e):
        return datetime.fromisoformat(e["at"].replace("Z", "+00:00")).timestamp()

    t0 = next((t(e) for e in events if e["kind"] == "start"), t(events[0]) if events else 0)
    lines, skipped = [], 0
    for e in events:
        d, who = e.get("detail") or {}, e.get("device_id") or "cloud"
        if e["kind"] == "target" and d.get("status") == "skipped":
            skipped += 1
            continue
        if e["kind"] == "send":
            what = f"sent {d.get('step')}"
        elif e["kind"] == "target" and d.get("status") != "deploying":
            what = f"{d.get('status')}" + (f": {d['reason']}" if d.get("reason") else "")
        elif e["kind"] == "status" and d.get("status") != "running":
            what = f"deployment {d.get('status')}" + (f": {d['reason']}" if d.get("reason") else "")
        else:
            continue
        lines.append(f"+{t(e) - t0:5.2f}s  {who:8} {what}")
    if skipped:
        lines.append(f"{'':8}{skipped} devices skipped: they never received this version")
    return lines


def _fmt(vers: dict) -> str:
    return ", ".join(f"{'no flow' if v is None else 'v' + str(v)}: {n}" for v, n in sorted(vers.items(), key=str))


class _Indented:
    """Progress lines indented under the narration."""

    def __init__(self, out, width: int):
        self.out, self.pad = out, " " * width

    def write(self, text: str) -> None:
        self.out.write("".join(self.pad + line if line.strip() else line for line in text.splitlines(True)))

    def flush(self) -> None:
        self.out.flush()

    def isatty(self) -> bool:
        return False


def run_story(workdir: Path = VAR, devices: int = 20, exit_after: bool = False, out=sys.stdout,
              prefer_broker: str = "mosquitto", plain_mqtt: bool = False) -> bool:
    """Tell the story; True when every step came out as narrated."""
    demo = Demo(workdir, devices, out, prefer_broker, plain_mqtt)
    say = demo.say
    print(f"fleetflow demo: {devices} devices, a broken update caught by a rehearsal and by a canary, a good one "
          "rolled out",
          file=out, flush=True)
    ok = False
    try:
        demo.start()
        demo.story()
        ok = True
        say._say(f"\n[{time.monotonic() - say.t0:6.1f}s] The story is complete: all {len(say.checks)} checks "
                 "held, each checked against the API.")
        if not exit_after:
            say._say(f"{'':17}The fleet keeps running. Look around in the dashboard: {demo.api.url}/")
            say._say(f"{'':17}(create the first account there, or use the key below) or the API: "
                     f"{demo.api.api_url('/deployments')}")
            say._say(f"{'':17}(x-api-key: {demo.api.api_key}); device logs in {demo.workdir / 'fleet'}")
            say._say(f"{'':17}Ctrl-C stops everything.")
            while True:
                time.sleep(1)
    except DemoFailed as exc:
        say._say(f"\nThe demo did not go as narrated: {exc}")
        say._say(f"Logs: {demo.workdir / 'stack' / 'cloud.log'}, {demo.workdir / 'fleet'}/<device>/<device>.log")
    except ApiError as exc:
        say._say(f"\nThe cloud refused a step: {exc} {exc.field_errors() or ''}")
        say._say(f"Log: {demo.workdir / 'stack' / 'cloud.log'}")
    except KeyboardInterrupt:
        say._say("\nCtrl-C: stopping")
    finally:
        main = threading.current_thread() is threading.main_thread()
        if main:  # a second Ctrl-C must not cut the clean-up short
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            demo.stop()
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
        say._say(f"[{time.monotonic() - say.t0:6.1f}s] stopped: devices, cloud and broker are down")
    return ok
