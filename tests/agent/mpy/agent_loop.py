# Agent.safe_step, the body of the device loop, under MicroPython: whatever
# step() raises is caught, counted and logged, and the loop goes on; only a
# deliberate exit (KeyboardInterrupt, SystemExit) passes. One JSON line per case.
import json
from fleetflow.agent import Agent
from fleetflow.errors import FFError


def out(name, ok, got):
    print(json.dumps({"case": "loop: " + name, "ok": ok, "got": got}))


class _Steps:
    # stands in for the agent: safe_step only needs step() and loop_errors
    def __init__(self, exc):
        self.exc = exc
        self.loop_errors = 0
        self.steps = 0

    def step(self):
        self.steps += 1
        if self.exc is not None:
            raise self.exc


class _BadStr(Exception):
    def __str__(self):
        raise MemoryError  # even the log line can fail


# (name, exception step() raises, counted)
CAUGHT = (
    ("a clean step counts nothing", None, 0),
    ("FFError", FFError("x"), 1),
    ("ValueError", ValueError("bad"), 1),
    ("OSError", OSError(110), 1),
    ("MemoryError", MemoryError(), 1),
    ("KeyError", KeyError("k"), 1),
    ("an error whose text fails", _BadStr(), 1),
)
for name, exc, want in CAUGHT:
    a = _Steps(exc)
    try:
        Agent.safe_step(a)
        Agent.safe_step(a)  # the loop goes on: a second step runs
        out(name, a.loop_errors == 2 * want and a.steps == 2, [a.loop_errors, a.steps])
    except BaseException as e:
        out(name, False, "escaped: " + type(e).__name__)

for name, exc in (("KeyboardInterrupt passes", KeyboardInterrupt()), ("SystemExit passes", SystemExit(0))):
    a = _Steps(exc)
    try:
        Agent.safe_step(a)
        out(name, False, "swallowed")
    except BaseException as e:
        out(name, type(e) is type(exc) and a.loop_errors == 0, type(e).__name__)


# flush with a record whose JSON the heap can't hold (a runaway flow's): the
# record is dropped and counted, not retried on every step, and health and
# the records after it still go out.
import gc
from fleetflow.records import RunBuffer
from fleetflow.runsmsg import PIECE


class _Link:
    connected = True

    def __init__(self):
        self.sent = []

    def publish(self, suffix, payload, qos, retain=False):
        if suffix == "runs":
            payload.whole()       # written out, as the link would
        self.sent.append(suffix)
        return True


class _Clock:
    def stamp(self, now):
        return '"synced":false,"time":null,"t_ms":%d,' % now


class _Flushing:
    # the agent's state flush reads
    def __init__(self):
        self.link = _Link()
        self.net = _Clock()
        self._status_due = False
        self.outbox = []
        self.records = RunBuffer(4)
        self._runs_ship = 1
        self._last_runs = 0
        self._next_health = 0
        self.cfg = {"runs_batch": 4, "health_interval_s": 1, "heap_log": False}
        self._piece = bytearray(PIECE)
        self.dev = "d1"

    def health(self):
        return {"dropped": self.records.dropped}


a = _Flushing()
a.records.append({"run": 1, "status": "failed", "nodes": [{"id": "x", "out": "v" * 30000}]})
gc.collect()
ballast = []
while gc.mem_free() > 40000:      # room for the record, not for its JSON twice
    ballast.append(bytearray(512))
steps = 0
try:
    for steps in range(1, 4):
        Agent.flush(a, 0)
        if "health" in a.link.sent:
            break
    ballast = None
    a.records.append({"run": 2, "status": "completed", "nodes": []})
    Agent.flush(a, 5000)
    got = [a.link.sent, a.records.dropped, len(a.records), steps]
    out("a record too big for the heap is dropped, counted, and health goes on",
        got == [["health", "runs", "health"], 1, 0, 2], got)
except BaseException as e:
    out("a record too big for the heap is dropped, counted, and health goes on", False,
        "escaped: " + type(e).__name__)
