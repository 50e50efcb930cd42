# Fan-in: a node that several messages reach in one run runs once per
# message. Imported by the interpreter only when some node of the program has
# more than one input.
#
# The memory budget of a run lives here, since fan-in is the only way a run
# holds more than one message per node (docs/program-format.md, "Runs"):
# - at most MAX_RUNS fan-in runs (runs of nodes that got several messages)
#   per run: each keeps its record row and its message until the record is
#   shipped. Checked before a node's queue runs, so a run that would pass it
#   fails at that node, before its messages multiply further. The cloud
#   refuses a program whose worst case passes it (shared_schema.compiler);
# - the heap never drops below HEAP_FLOOR bytes free when a node's queue is
#   about to run: the agent needs that much for its own messages. Under it,
#   collect once and look again; still under it, the run fails. Looked at
#   once per queue, not per message: gc.mem_free() scans the heap's
#   allocation table (~10 us at 112 KB), and MAX_RUNS bounds what a queue adds.
import gc
import time
from micropython import const

from fleetflow.runner import FAIL, deliver

MAX_RUNS = const(32)     # shared_schema/compiler.py: FANIN_MAX
HEAP_FLOOR = const(8192)

_ticks_us = time.ticks_us
_diff = time.ticks_diff


def run(it, i, q, calls, extra, t_run, steps_left):
    """Run node i once per queued message (several inputs delivered);
    rows go to `extra`. Returns (run error or None, steps left)."""
    p = it.prog
    err = None
    k = len(extra) + len(q)
    if k > MAX_RUNS:
        err = "would make %d fan-in runs, more than %d in one run" % (k, MAX_RUNS)
    elif gc.mem_free() < HEAP_FLOOR:
        gc.collect()
        k = gc.mem_free()
        if k < HEAP_FLOOR:
            err = "heap down to %d bytes free" % k
    if err:
        # the run ends here: its queued messages go now, not with the record
        inbox = it.inbox
        for k in range(len(inbox)):
            inbox[k] = None
        gc.collect()
        return "memory budget: %s: %s" % (p.ids[i], err), 0
    ctx = it.ctx
    fn, cfg, mem, _ = calls[i]
    router = p.mods[i].PORTS > 1
    for m in q:
        if steps_left <= 0:
            return "step budget: more than %d node runs" % p.steps, 0
        steps_left -= 1
        t0 = _ticks_us()
        ctx.i = i
        try:
            r = fn(cfg, mem, m, ctx)
        except Exception as ex:
            r = it.retry(i, fn, cfg, mem, m, ex, t_run)
        t1 = _ticks_us()
        if r is FAIL:
            extra.append((i, _diff(t1, t0), None, None, it.node_err))
            if not p.continue_on(i):
                return "%s: %s" % (p.ids[i], it.node_err), steps_left
        elif router:
            extra.append((i, _diff(t1, t0), m, r, None))
            deliver(it.inbox, p.targets(i, r), m)
        elif r is not None and r.__class__ is not str:
            extra.append((i, _diff(t1, t0), r, 0, None))
            deliver(it.inbox, p.targets(i, 0), r)
        else:
            extra.append((i, _diff(t1, t0), r, None, None))
        if _diff(t1, t_run) > it.budget_us:
            return "time budget: run passed %d ms" % p.run_ms, steps_left
    return None, steps_left

