# Per-node retry with doubling backoff, never past the run's time budget.
# Imported by the interpreter only when some node of the program has retries.
import time

from fleetflow.runner import FAIL, err_text

_ticks_us = time.ticks_us
_diff = time.ticks_diff


def retry(it, i, fn, cfg, mem, m, e, t_run):
    """Retry node i after an error; its output, or FAIL (reason in it.node_err)."""
    pol = it.prog.policy[i]
    n = pol[1] if pol else 0
    back = pol[2] if pol else 0
    ctx = it.ctx
    ctx.i = i
    for a in range(n):
        if back:
            if _diff(_ticks_us(), t_run) + back * 1000 > it.budget_us:
                ctx.log("warning", "no retry: backoff %d ms would pass the run budget" % back)
                break
            time.sleep_ms(back)
        ctx.log("warning", "%s; retry %d/%d" % (err_text(e), a + 1, n))
        back *= 2
        try:
            return fn(cfg, mem, m, ctx)
        except Exception as e2:
            e = e2
    it.node_err = err_text(e)
    return FAIL
