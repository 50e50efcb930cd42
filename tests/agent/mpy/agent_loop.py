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
