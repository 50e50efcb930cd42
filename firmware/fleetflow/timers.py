# Timers of a running flow: delay continuations and pulse ends, fired from
# Interpreter.poll() when due. Imported by the interpreter only when the
# program has a node that sets timers (TIMERS = True: delay, gpio_out).
import time

from fleetflow.runner import deliver, err_text

_ticks_us = time.ticks_us
_diff = time.ticks_diff


def fire(it, now_ms, t0, budget):
    for t in it.timers:   # nothing due (most calls): return without allocating
        if _diff(now_ms, t[0]) >= 0:
            break
    else:
        return 0
    done = 0
    due = [t for t in it.timers if _diff(now_ms, t[0]) >= 0]
    if not due:
        return 0
    it.timers = [t for t in it.timers if _diff(now_ms, t[0]) < 0]
    for k in range(len(due)):
        t = due[k]
        if _diff(_ticks_us(), t0) > budget:
            it.timers.extend(due[k:])       # still due next time
            break
        if t[1] is not None:
            it.in_timer = True     # a log line from here goes to the console
            try:
                t[1](t[2])
            except Exception as e:
                it.errors += 1
                it.last_error = "timer: " + err_text(e)
            it.in_timer = False
            continue
        idx, msg = t[2]
        deliver(it.inbox, it.prog.targets(idx, 0), msg)
        it.execute("delay:" + it.prog.ids[idx], idx + 1, None, t[3], t[4], now_ms)
        done += 1
    return done
