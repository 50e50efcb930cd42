# The interpreter's hot loop: every run of an Interpreter goes through the
# one generator made here (see Interpreter.execute). What it does per run
# is in fleetflow/interp.py's header; how, here:
# - a node whose only successor is the next node, with no other input,
#   hands its output straight on (a "hop"); other messages go through the
#   inbox, which is scanned forward for the next node to run;
# - per node the loop stores the tick it finished at and its output; the
#   record turns them into durations and summaries when it is read;
# - the run record is one list (ticks, then a header), recycled through
#   the RunBuffer, so a steady flow allocates no record lists.
#
# It uses the interpreter through the members documented public there
# (inbox, retry, node_err, fanin, run_no, exec_id, run_calls, logs, gen)
# and imports nothing from fleetflow.interp. What the interpreter and its
# cold paths (fleetflow/retry.py, fanin.py, timers.py) share with it is
# defined here, loaded only with an interpreter: FAIL, err_text, deliver.
import time
from micropython import const

from fleetflow.records import new_record, nones, record

# node kinds in Interpreter's calls (a hop is the index of the next node, > 0)
_ROUTER = const(-2)
_SOURCE = const(-3)
_FAILED = const(-4)    # set when a node failed for good

# record header fields (the same as fleetflow.records)
_H = const(14)
_RUN = const(-14)
_TRIG = const(-13)
_EXEC = const(-12)
_STATUS = const(-11)
_T_MS = const(-10)
_T0 = const(-9)
_T_END = const(-8)
_OUTS = const(-7)
_PORTS = const(-6)
_ERRS = const(-5)
_EXTRA = const(-4)
_LOGS = const(-3)
_ERR = const(-2)
_PROG = const(-1)

_ticks_us = time.ticks_us
_diff = time.ticks_diff
_PERIOD = time.ticks_add(0, -1) + 1     # the tick counter wraps here


FAIL = object()     # a node's result when it failed for good (Interpreter.retry)


def err_text(e):
    """An exception as the one line a run record or log carries."""
    if isinstance(e, OSError) and e.args and e.args[0] == 110:
        return "OSError: ETIMEDOUT"
    return "%s: %s" % (type(e).__name__, e)


def deliver(inbox, targets, msg):
    """Put msg in the inbox of each target: one message, or a list of
    them when several reach a node (fan-in, fleetflow/fanin.py)."""
    for j in targets:
        x = inbox[j]
        if x is None:
            inbox[j] = msg
        elif x.__class__ is list:
            x.append(msg)
        else:
            inbox[j] = [x, msg]


def runner(it, a, n, inbox, budget, p, rhop, routers):
    # Runs live in one generator that loops forever: a function with this
    # many locals would get a fresh heap frame on every call, a resumed
    # generator reuses its one frame (no allocation per run), and what
    # doesn't change between runs is passed in or fetched once, here: `a`
    # the six arguments of the next run (Interpreter.execute fills it), n
    # nodes, their inbox, the run's time budget (us), the program, the
    # routers' hops, whether the program has routers. Nothing escapes a
    # run; should something escape anyway (no memory left to even record
    # the failure), the next run starts a new generator.
    ctx = it.ctx
    records = it.records
    spare = records.spare
    empty = nones(n)
    tick = _ticks_us
    period = _PERIOD
    run_no = it.run_no
    rec = None
    try:
        while True:
            yield rec
            trig, i, m, exec_id, calls, now_ms = a
            try:
                run_no += 1
                it.run_no = run_no
                it.exec_id = exec_id
                it.run_calls = calls
                ctx.now_ms = now_ms
                # the record: a spare of this program's (its ticks cleared) or a new one;
                # outputs are written by every node that runs, so old ones needn't go
                tl = spare.pop() if spare else None
                if tl is not None and tl[_PROG] is p:
                    tl[0:n] = empty
                else:               # none, or another program's: let that one go
                    tl = new_record(n, routers)
                    tl[_PROG] = p
                outs = tl[_OUTS]
                errs = None
                extra = None
                err = None
                t_run = tick()
                # raw compare in the loop; when the tick counter could wrap during
                # this run, every node takes the exact check instead
                limit = t_run + budget
                if limit >= period:
                    limit = -1
                if m is None:
                    # a continuation: its messages are already in the inbox, one per node
                    while i < n and inbox[i] is None:
                        i += 1
                    if i < n:
                        m = inbox[i]
                        inbox[i] = None
                if m is not None and calls[i][3] == _ROUTER:
                    outs[n + i] = m     # the message a router routes (see OUTS in records.py)
                if m is not None:     # None only for a continuation that finds nothing to run
                    while True:
                        fn, cfg, mem, j = calls[i]
                        try:
                            r = fn(cfg, mem, m, ctx)
                        except Exception as ex:
                            r = it.retry(i, fn, cfg, mem, m, ex, t_run)
                            if r is FAIL:
                                j = _FAILED
                        t1 = tick()
                        tl[i] = t1
                        if j > 0:                       # hop: straight to the next node
                            outs[i] = r
                            if r is not None:
                                if t1 > limit and _diff(t1, t_run) > budget:
                                    err = "time budget: run passed %d ms" % p.run_ms
                                    break
                                m = r
                                i = j
                                continue
                        elif j == _ROUTER:
                            outs[i] = r     # the port; the message: outs[n + i] or the node before's
                            j = rhop[i][r]
                            if j > 0:
                                if t1 > limit and _diff(t1, t_run) > budget:
                                    err = "time budget: run passed %d ms" % p.run_ms
                                    break
                                i = j
                                continue
                            deliver(inbox, p.targets(i, r), m)
                        elif j == _FAILED:
                            outs[i] = None
                            if errs is None:
                                errs = {}
                            errs[i] = it.node_err
                            if not p.continue_on(i):
                                err = "%s: %s" % (p.ids[i], it.node_err)
                                break
                        else:
                            outs[i] = r
                            if r is not None and (j != _SOURCE or r.__class__ is not str):
                                deliver(inbox, p.targets(i, 0), r)     # (a str: failure as data)
                        if t1 > limit and _diff(t1, t_run) > budget:
                            err = "time budget: run passed %d ms" % p.run_ms
                            break
                        # the next node with something in its inbox; several inputs
                        # (fan-in) run there and then, one run each
                        m = None
                        i += 1
                        while i < n:
                            m = inbox[i]
                            if m is None:
                                i += 1
                                continue
                            inbox[i] = None
                            if m.__class__ is not list:
                                if calls[i][3] == _ROUTER:
                                    outs[n + i] = m
                                break
                            if extra is None:
                                extra = []
                                steps_left = p.steps - n    # beyond one run per node
                            err, steps_left = it.fanin(it, i, m, calls, extra, t_run, steps_left)
                            m = None
                            if err is not None:
                                break
                            i += 1
                        if err is not None:
                            break
                        if m is None:        # nothing left in the inbox
                            break
                t_end = tick()
                it.runs += 1
                it.exec_id = None
                # the header; fields left None are what a fresh or recycled record has
                tl[_RUN] = run_no
                tl[_TRIG] = trig
                tl[_EXEC] = exec_id
                tl[_T_MS] = now_ms
                tl[_T0] = t_run
                tl[_T_END] = t_end
                if ctx.logs is not None:
                    tl[_LOGS] = ctx.logs
                    ctx.logs = None
                if errs is not None:
                    tl[_ERRS] = errs
                if extra is not None:
                    tl[_EXTRA] = extra
                if err is not None:
                    tl[_ERR] = err
                    for k in range(n):
                        inbox[k] = None
                    it.errors += 1
                    it.last_error = err
                rec = tl
                # records.append(rec), without the call
                q = records.q
                if len(q) >= records.maxlen:
                    records.recycle(q.pop(0))
                    records.dropped += 1
                q.append(rec)
            except Exception as e:     # a bug, or no memory left: a failed run, not a crash
                it.exec_id = None
                ctx.logs = None
                for k in range(n):
                    inbox[k] = None
                it.runs += 1
                it.errors += 1
                it.last_error = "internal: " + err_text(e)
                rec = record(run_no, trig, exec_id, "failed", now_ms, it.last_error, p)
                records.append(rec)
    finally:
        it.gen = None
