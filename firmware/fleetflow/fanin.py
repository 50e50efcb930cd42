# Fan-in: a node that several messages reach in one run runs once per
# message. Imported by the interpreter only when some node of the program has
# more than one input.
import time

from fleetflow.interp import _FAIL, _deliver

_ticks_us = time.ticks_us
_diff = time.ticks_diff


def run(it, i, q, calls, extra, t_run, steps_left):
    """Run node i once per queued message (several inputs delivered);
    rows go to `extra`. Returns (run error or None, steps left)."""
    p = it.prog
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
            r = it._retry(i, fn, cfg, mem, m, ex, t_run)
        t1 = _ticks_us()
        if r is _FAIL:
            extra.append((i, _diff(t1, t0), None, None, it._err))
            if not p.continue_on(i):
                return "%s: %s" % (p.ids[i], it._err), steps_left
        elif router:
            extra.append((i, _diff(t1, t0), m, r, None))
            _deliver(it._inbox, p.targets(i, r), m)
        elif r is not None and r.__class__ is not str:
            extra.append((i, _diff(t1, t0), r, 0, None))
            _deliver(it._inbox, p.targets(i, 0), r)
        else:
            extra.append((i, _diff(t1, t0), r, None, None))
        if _diff(t1, t_run) > it._budget_us:
            return "time budget: run passed %d ms" % p.run_ms, steps_left
    return None, steps_left
