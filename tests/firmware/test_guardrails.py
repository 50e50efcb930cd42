"""The interpreter's guardrails, under MicroPython: step and time budgets,
node errors and on_failure, retry with backoff inside the budget, delay
that never blocks, cancel, fan-in, exec over every root."""

import pytest

BODY = r'''
import time
from fleetflow.records import to_dict

def run(it, msg=None, now=0):
    return to_dict(it.run_from(0, msg if msg is not None else {"value": 1}, now))

# -- step budget: a ladder of diamonds doubles the runs at each level
# (fan-in: a node runs once per message), so a small program explodes
nodes = [("inject", {})]
edges = []
prev = 0
for k in range(8):
    a, b, c = len(nodes), len(nodes) + 1, len(nodes) + 2
    nodes += [("counter", {}), ("counter", {}), ("counter", {})]
    edges += [(prev, 0, a), (prev, 0, b), (a, 0, c), (b, 0, c)]
    prev = c
it, hal = interp(nodes, edges, limits={"steps": 30, "run_ms": 5000})
r = it.run_now(now_ms=0)
OUT["steps"] = [r["status"], r["err"], len(r["nodes"]), it.errors, it.last_error]
it, hal = interp(nodes[:7], edges[:8], limits={"steps": 100})
r = it.run_now(now_ms=0)
OUT["fanin_ok"] = [r["status"], len(r["nodes"]), [n["id"] for n in r["nodes"]]]

# -- memory budget: the issue's runaway, 8 split-then-merge stages (25 nodes,
# default limits): x feeds two switches whose two ports both lead into the
# next stage's x, so the messages double per stage
def ladder(stages):
    nodes = [("inject", {})]
    edges = []
    prev = 0
    for k in range(stages):
        a, b, x = len(nodes), len(nodes) + 1, len(nodes) + 2
        nodes += [("switch", {"op": "ge"}), ("switch", {"op": "ge"}), ("counter", {})]
        edges += [(prev, 0, a), (prev, 0, b), (a, 0, x), (a, 1, x), (b, 0, x), (b, 1, x)]
        prev = x
    return nodes, edges
nodes, edges = ladder(8)
it, hal = interp(nodes, edges)
r = it.run_now(now_ms=0)
OUT["memory"] = [r["status"], r["err"], len(r["nodes"]), it.errors, all(x is None for x in it.inbox)]
r = it.run_now(now_ms=1)      # the same again: a budget, not a leak
OUT["memory_again"] = [r["status"], r["err"], len(it.records)]
nodes, edges = ladder(3)      # 2 + 4 + 8 + 4 + 8 = 26 fan-in runs: within the budget
it, hal = interp(nodes, edges)
r = it.run_now(now_ms=0)
OUT["memory_ok"] = [r["status"], len(r["nodes"])]

# -- the heap floor: the agent's own memory leaves 6 KB; the first fan-in run
# finds the heap under the floor and the run fails there, named
import gc
it, hal = interp(nodes, edges)
gc.collect()
ballast = []
while gc.mem_free() > 6144:
    ballast.append(bytearray(256))
r = it.run_now(now_ms=0, compact=True)
r = {"status": "failed" if r[-2] else "completed", "err": r[-2]}
ballast = None
gc.collect()
OUT["heap_floor"] = [r["status"], r["err"]]

# -- pending timers: a delay's continuations are bounded; the node that would
# set one too many fails the run
it, hal = interp([("inject", {}), ("delay", {"ms": 10000}), ("counter", {})], [(0, 0, 1), (1, 0, 2)])
st = [it.run_now(now_ms=k)["status"] for k in range(33)]
r = it.records.take()[-1]
OUT["timers"] = [st.count("completed"), st[-1], r["err"], it.pending()]

# -- time budget: a slow sensor read (30 ms) in a 10 ms budget
it, hal = interp([("dht", {"pin": 4}), ("counter", {})], [(0, 0, 1)], limits={"run_ms": 10},
                 sim={"dht": {"4": {"read_ms": 30}}})
t0 = time.ticks_ms()
r = it.run_now(now_ms=0)
OUT["time"] = [r["status"], r["err"], [n["id"] for n in r["nodes"]], r["us"]]

# -- a node error fails the run; the untaken rest is skipped
it, hal = interp([("inject", {}), ("switch", {"property": "nope"}), ("counter", {})], [(0, 0, 1), (1, 0, 2)])
r = it.run_now(now_ms=0)
OUT["fail"] = [r["status"], r["err"], [[n["id"], n["err"]] for n in r["nodes"]], it.errors, it.last_error]

# -- on_failure continue: the run completes, the failed node's branch is skipped, others go on
nodes = [("inject", {}),
         {"id": "n2", "type": "switch", "params": {"property": "nope"}, "on_failure": "continue"},
         ("counter", {}), ("counter", {})]
it, hal = interp(nodes, [(0, 0, 1), (1, 0, 2), (0, 0, 3)])
r = it.run_now(now_ms=0)
OUT["continue"] = [r["status"], r["err"], [[n["id"], n["err"] is not None] for n in r["nodes"]], it.errors]

# -- retry with backoff: a flaky output pin fails twice, the third try works
nodes = [("inject", {}), {"id": "n2", "type": "gpio_out", "params": {"pin": 5}, "retries": 2, "backoff_ms": 5}]
it, hal = interp(nodes, [(0, 0, 1)], limits={"run_ms": 200})
hal.pin(5).fail_writes = 2
t0 = time.ticks_ms()
r = it.run_now(now_ms=0)
took = time.ticks_diff(time.ticks_ms(), t0)
OUT["retry_ok"] = [r["status"], hal.pin(5).value(), [l[2] for l in r["logs"]], took >= 15]
# too few retries: the run fails with the pin's error
hal.pin(5).fail_writes = 5
r = it.run_now(now_ms=1)
OUT["retry_fail"] = [r["status"], r["err"]]
# backoff that would pass the budget is not slept: 3 retries of 40, 80, 160 ms in a 100 ms budget
nodes = [("inject", {}), {"id": "n2", "type": "gpio_out", "params": {"pin": 5}, "retries": 3, "backoff_ms": 40}]
it, hal = interp(nodes, [(0, 0, 1)], limits={"run_ms": 100})
hal.pin(5).fail_writes = 10
t0 = time.ticks_ms()
r = it.run_now(now_ms=0)
took = time.ticks_diff(time.ticks_ms(), t0)
OUT["retry_budget"] = [r["status"], took < 100, [l[2] for l in r["logs"]]]

# -- delay never blocks: the run ends at once, the rest runs from poll() when due
pub = []
it, hal = interp([("inject", {}), ("delay", {"ms": 1000}), ("mqtt_out", {"topic": "late"})],
                 [(0, 0, 1), (1, 0, 2)], published=pub)
t0 = time.ticks_ms()
r = it.run_now(exec_id="e1", now_ms=5000)
took = time.ticks_diff(time.ticks_ms(), t0)
first = [r["status"], [n["id"] for n in r["nodes"]], took < 50, it.pending(), len(pub)]
polls = [it.poll(5500), it.poll(6000), it.poll(6001)]
recs = it.records.take()
OUT["delay"] = [first, polls, len(pub), recs[-1]["trigger"], recs[-1]["exec"], [n["id"] for n in recs[-1]["nodes"]]]
# cancel drops what an execution still has pending
it.run_now({"params": {"n2": {"ms": 300}}}, exec_id="e2", now_ms=7000)
it.run_now(exec_id="e3", now_ms=7000)
cancelled = it.cancel("e2")
it.poll(8000)
recs = it.records.take()
OUT["cancel"] = [cancelled, it.cancel("nope"), [[r["exec"], r["status"], r["trigger"]] for r in recs]]

# -- the step form: maintenance steps in order, every root runs on exec
it, hal = interp([("clear_cache", {}), ("toggle_feature", {"name": "x"}), ("set_log_level", {"level": "error"})])
r = it.run_now(now_ms=0)
OUT["roots"] = [r["status"], [n["id"] for n in r["nodes"]], it.dev.features, it.dev.log_level]

# -- poll() stops starting runs when its budget is spent
it, hal = interp([("dht", {"pin": 4, "every": 2000}), ("dht", {"pin": 16, "every": 2000}),
                  ("dht", {"pin": 17, "every": 2000})], limits={"run_ms": 15},
                 sim={"dht": {"4": {"read_ms": 10}, "16": {"read_ms": 10}, "17": {"read_ms": 10}}})
it.start(0)
OUT["poll_budget"] = [it.poll(0), it.poll(1), it.poll(2), it.poll(3)]

# -- stop(): no more runs
it, hal = interp([("inject", {"every": 100})])
it.start(0)
it.stop()
OUT["stop"] = it.poll(100)
'''


@pytest.fixture(scope="module")
def out(device):
    return device(BODY)


def test_step_budget_stops_a_fan_in_explosion(out):
    status, err, executed, errors, last = out["steps"]
    assert status == "failed" and err == "step budget: more than 30 node runs"
    assert executed <= 30 and errors == 1 and last == err


def test_memory_budget_ends_a_runaway_fan_out_at_the_node(out):
    status, err, rows, errors, inbox_empty = out["memory"]
    # stages 1-3 make 26 fan-in runs; stage 4's first switch would add 8
    assert status == "failed" and err == "memory budget: n11: would make 34 fan-in runs, more than 32 in one run"
    assert rows <= 25 + 32 and errors == 1 and inbox_empty
    assert out["memory_again"] == ["failed", err, 2]
    assert out["memory_ok"] == ["completed", 1 + 2 + 26]


def test_memory_budget_keeps_a_heap_floor(out):
    status, err = out["heap_floor"]
    assert status == "failed" and err.startswith("memory budget: n4: heap down to ") and err.endswith(" bytes free")
    assert int(err.split("heap down to ")[1].split()[0]) < 8192


def test_pending_timers_are_bounded(out):
    completed, last, err, pending = out["timers"]
    assert completed == 32 and last == "failed" and pending == 32
    assert err == "n2: MemoryError: memory budget: 32 timers pending"


def test_fan_in_runs_a_node_once_per_message(out):
    status, executed, ids = out["fanin_ok"]
    # inject; diamond 1: two sides, the join runs twice (one run per message);
    # diamond 2 gets two messages: each side runs twice, the join four times
    assert status == "completed" and executed == 1 + 2 + 2 + 4 + 4


def test_time_budget_fails_a_slow_run(out):
    status, err, ids, us = out["time"]
    assert status == "failed" and err == "time budget: run passed 10 ms"
    assert ids == ["n1"] and us >= 25000     # the read itself (30 ms) is not cut short         # the slow read itself can't be cut short; nothing after it ran


def test_node_error_fails_the_run(out):
    status, err, rows, errors, last = out["fail"]
    assert status == "failed" and err.startswith("n2: KeyError")
    assert rows == [["n1", None], ["n2", rows[1][1]]] and rows[1][1].startswith("KeyError")
    assert errors == 1 and last == err


def test_on_failure_continue_skips_only_the_failed_branch(out):
    status, err, rows, errors = out["continue"]
    assert status == "completed" and err is None and errors == 0
    assert rows == [["n1", False], ["n2", True], ["n4", False]]


def test_retry_with_backoff_recovers(out):
    status, level, logs, waited = out["retry_ok"]
    assert status == "completed" and level == 1 and waited
    assert logs == ["OSError: [Errno 5] EIO; retry 1/2", "OSError: [Errno 5] EIO; retry 2/2"]
    status, err = out["retry_fail"]
    assert status == "failed" and err == "n2: OSError: [Errno 5] EIO"


def test_retry_backoff_never_passes_the_run_budget(out):
    status, fast, logs = out["retry_budget"]
    assert status == "failed" and fast
    # 40 ms slept, then 40 + 80 would pass 100: given up, not slept
    assert logs == ["OSError: [Errno 5] EIO; retry 1/3", "no retry: backoff 80 ms would pass the run budget"]


def test_delay_never_blocks_and_continues_from_poll(out):
    first, polls, published, trig, exec_id, ids = out["delay"]
    status, ran, quick, pending, pub_now = first
    assert status == "completed" and ran == ["n1", "n2"] and quick and pending == 1 and pub_now == 0
    assert polls == [0, 1, 0] and published == 1
    assert trig == "delay:n2" and exec_id == "e1" and ids == ["n3"]


def test_cancel_drops_an_executions_pending_continuations(out):
    cancelled, nothing, recs = out["cancel"]
    assert cancelled == 1 and nothing == 0
    assert ["e2", "cancelled", "cancel"] in recs
    assert ["e3", "completed", "delay:n2"] in recs
    assert not any(r[0] == "e2" and r[2] == "delay:n2" for r in recs)


def test_exec_runs_every_root_in_order(out):
    status, ids, features, level = out["roots"]
    assert status == "completed" and ids == ["n1", "n2", "n3"]
    assert features == {"x": True} and level == "error"


def test_poll_keeps_to_its_budget(out):
    # each read takes 10 ms of a 15 ms budget: one or two runs per poll, the rest stay due
    runs = out["poll_budget"]
    assert sum(runs) == 3 and max(runs) <= 2 and runs[0] >= 1


def test_stop_ends_polling(out):
    assert out["stop"] == 0
