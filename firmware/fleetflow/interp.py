# The flow interpreter: runs a checked Program (fleetflow.program).
#
# Rules (docs/program-format.md):
# - a run starts at a trigger: a source's poll interval, a GPIO edge, boot,
#   a delay continuation, or run_now() (every root once, with overrides);
# - nodes run in program order, each once per message delivered to it; a
#   router (switch) delivers on one port and whatever only the other port
#   reaches is skipped;
# - guardrails per run: at most `steps` node runs and `run_ms` of wall time;
#   a node error fails the run unless the node says on_failure "continue";
#   a failing node is retried `retries` times with doubling backoff, but
#   never past the run's time budget; delay and pulse use timers, so no
#   node holds the device loop;
# - every run leaves a record in the RunBuffer.
# Everything is precomputed at construction; the hot loop is list indexing.
import gc
import time
from micropython import const

from fleetflow.errors import FFError
from fleetflow.records import RunBuffer, to_dict

LEVELS = ("debug", "info", "warning", "error")

_PLAIN = const(0)
_ROUTER = const(1)
_SOURCE = const(2)
_EMPTY = {}            # the message a root gets on exec; nodes never change messages

_ticks_us = time.ticks_us
_diff = time.ticks_diff


def _print_publish(topic, payload, qos, retain):
    print("publish out/%s qos=%d retain=%s %s" % (topic, qos, retain, payload))


def _err_text(e):
    if isinstance(e, OSError) and e.args and e.args[0] == 110:
        return "OSError: ETIMEDOUT"
    return "%s: %s" % (type(e).__name__, e)


class Device:
    """The device state maintenance nodes act on (the agent reads it too)."""

    def __init__(self, records=None):
        self.log_level = "info"
        self.features = {}
        self.records = records

    def clear_cache(self):
        n = self.records.clear() if self.records is not None else 0
        gc.collect()
        return n


class Ctx:
    """What a node sees of the device while it runs."""

    def __init__(self, interp, hal, dev, publish):
        self.now_ms = 0
        self.hal = hal
        self.dev = dev
        self.publish = publish
        self._interp = interp
        self._rows = None
        self._logs = None

    def log(self, level, text):
        lv = LEVELS.index(level) if level in LEVELS else 1
        if lv < LEVELS.index(self.dev.log_level):
            return
        if self._logs is None:      # outside a run (a timer)
            print("[%s] %s" % (LEVELS[lv], text))
        elif len(self._logs) < self._interp.max_logs:
            # the row this node will get: rows are appended after the node ran
            self._logs.append((LEVELS[lv], len(self._rows), text))

    def later(self, ms, fn, arg):
        """Call fn(arg) after ms, from poll(); never blocks."""
        self._interp._timers.append([time.ticks_add(self.now_ms, ms), fn, arg, None, None])

    def resume(self, ms, idx, msg):
        """Deliver msg to the successors of node idx after ms, as a new run."""
        it = self._interp
        it._timers.append([time.ticks_add(self.now_ms, ms), None, (idx, msg), it._exec, it._cfgs])


class Interpreter:
    def __init__(self, program, hal, records=None, publish=None, device=None, max_logs=16):
        p = program
        self.prog = p
        self.records = records if records is not None else RunBuffer(16)
        if device is None:
            device = Device(self.records)
        elif device.records is None:
            device.records = self.records
        self.dev = device
        self.max_logs = max_logs
        self.ctx = Ctx(self, hal, device, publish or _print_publish)
        self.runs = 0
        self.errors = 0
        self.last_error = None
        n = len(p.ids)
        self._n = n
        self._fns = [m.run for m in p.mods]
        self._succ = p.succ
        self._succ0 = [s[0] for s in p.succ]
        self._inbox = [None] * n
        self._mems = [None] * n
        self._cont = p.continue_on
        self._kinds = [_PLAIN] * n
        self._trig = [None] * n
        self._polls = []      # [idx, every_ms, next_due_ms]
        self._edges = []      # (idx, edge fn)
        self._boots = []
        self._timers = []     # [due_ms, fn | None (continuation), arg, exec_id, cfgs]
        self._roots = [i for i in range(n) if p.indeg[i] == 0]
        self._run_no = 0
        self._exec = None
        self._cfgs = p.cfgs
        self._stopped = False
        for i in range(n):
            mod = p.mods[i]
            if mod.PORTS > 1:
                self._kinds[i] = _ROUTER
            setup = getattr(mod, "setup", None)
            if setup is not None:
                try:
                    self._mems[i] = setup(p.cfgs[i], hal, i)
                except Exception as e:
                    raise FFError("%s: setup failed: %s" % (p.ids[i], _err_text(e)))
            if mod.KIND != "source":
                continue
            self._kinds[i] = _SOURCE
            every = p.params[i].get("every", 0)
            if mod.TRIGGER == "edge":
                self._edges.append((i, mod.edge))
                self._trig[i] = "edge:" + p.ids[i]
            elif every:
                self._polls.append([i, every, 0])
                self._trig[i] = "poll:" + p.ids[i]
            else:
                self._boots.append(i)
                self._trig[i] = "boot:" + p.ids[i]

    # -- triggers ---------------------------------------------------------

    def start(self, now_ms):
        """Fire the boot triggers; polled sources become due now. Returns runs done."""
        for ent in self._polls:
            ent[2] = now_ms
        done = 0
        for i in self._boots:
            self._source_run(i, now_ms)
            done += 1
        return done

    def poll(self, now_ms):
        """Run what is due: timers, GPIO edges, polled sources. Returns runs done.

        Stops starting new runs once the run budget is used up; what is
        left stays due for the next call.
        """
        if self._stopped:
            return 0
        t0 = _ticks_us()
        budget = self.prog.run_ms * 1000
        done = 0
        if self._timers:
            done += self._fire_timers(now_ms, t0, budget)
        mems = self._mems
        cfgs = self.prog.cfgs
        for i, edge in self._edges:
            if _diff(_ticks_us(), t0) > budget:
                return done
            if edge(cfgs[i], mems[i], now_ms):
                self._source_run(i, now_ms)
                done += 1
        for ent in self._polls:
            if _diff(now_ms, ent[2]) < 0:
                continue
            if _diff(_ticks_us(), t0) > budget:
                break
            nxt = time.ticks_add(ent[2], ent[1])
            # after a stall, don't run the missed polls in a burst
            ent[2] = nxt if _diff(nxt, now_ms) > 0 else time.ticks_add(now_ms, ent[1])
            self._source_run(ent[0], now_ms)
            done += 1
        return done

    def run_now(self, overrides=None, exec_id=None, now_ms=None):
        """Run every root once (on demand) with overrides; returns the record as a dict."""
        if now_ms is None:
            now_ms = time.ticks_ms()
        try:
            cfgs = self.prog.cfgs_for(overrides)
        except FFError as e:
            self._run_no += 1
            rec = [self._run_no, "exec", exec_id, "failed", now_ms, 0, [], [],
                   "bad overrides: " + e.args[0], self.prog]
            self.records.append(rec)
            return to_dict(rec)
        inbox = self._inbox
        for i in self._roots:
            inbox[i] = _EMPTY
        return to_dict(self._execute("exec", self._roots[0], exec_id, cfgs, now_ms))

    def cancel(self, exec_id):
        """Drop the pending continuations (delays) of an execution; returns how many."""
        keep = [t for t in self._timers if t[3] is None or t[3] != exec_id]
        n = len(self._timers) - len(keep)
        self._timers = keep
        if n:
            self._run_no += 1
            self.records.append([self._run_no, "cancel", exec_id, "cancelled", None, 0, [], [],
                                 "cancelled: %d pending continuation(s) dropped" % n, self.prog])
        return n

    def stop(self):
        self._stopped = True
        self._timers = []
        p = self.prog
        for i in range(self._n):
            td = getattr(p.mods[i], "teardown", None)
            if td is not None:
                try:
                    td(p.cfgs[i], self._mems[i])
                except Exception:
                    pass

    # -- internals --------------------------------------------------------

    def _source_run(self, i, now_ms):
        self._inbox[i] = _EMPTY
        return self._execute(self._trig[i], i, None, self.prog.cfgs, now_ms)

    def _fire_timers(self, now_ms, t0, budget):
        done = 0
        due = [t for t in self._timers if _diff(now_ms, t[0]) >= 0]
        if not due:
            return 0
        self._timers = [t for t in self._timers if _diff(now_ms, t[0]) < 0]
        for k in range(len(due)):
            t = due[k]
            if _diff(_ticks_us(), t0) > budget:
                self._timers.extend(due[k:])       # still due next time
                break
            if t[1] is not None:
                try:
                    t[1](t[2])
                except Exception as e:
                    self.errors += 1
                    self.last_error = "timer: " + _err_text(e)
                continue
            idx, msg = t[2]
            inbox = self._inbox
            for j in self._succ0[idx]:
                x = inbox[j]
                if x is None:
                    inbox[j] = msg
                elif x.__class__ is list:
                    x.append(msg)
                else:
                    inbox[j] = [x, msg]
            self._execute("delay:" + self.prog.ids[idx], idx + 1, t[3], t[4], now_ms)
            done += 1
        return done

    def _retry(self, i, cfg, m, e, t_run):
        p = self.prog
        n = p.retries[i]
        back = p.backoff_ms[i]
        budget = p.run_ms * 1000
        ctx = self.ctx
        for a in range(n):
            if back:
                if _diff(_ticks_us(), t_run) + back * 1000 > budget:
                    ctx.log("warning", "no retry: backoff %d ms would pass the run budget" % back)
                    break
                time.sleep_ms(back)
            ctx.log("warning", "%s; retry %d/%d" % (_err_text(e), a + 1, n))
            back *= 2
            try:
                return self._fns[i](cfg, self._mems[i], m, ctx), None
            except Exception as e2:
                e = e2
        return None, _err_text(e)

    def _execute(self, trig, start, exec_id, cfgs, now_ms):
        self._run_no += 1
        self._exec = exec_id
        self._cfgs = cfgs
        ctx = self.ctx
        ctx.now_ms = now_ms
        rows = []
        logs = []
        ctx._rows = rows
        ctx._logs = logs
        inbox = self._inbox
        fns = self._fns
        mems = self._mems
        kinds = self._kinds
        succ0 = self._succ0
        n = self._n
        max_steps = self.prog.steps
        budget = self.prog.run_ms * 1000
        steps = 0
        err = None
        t_run = t = _ticks_us()
        i = start
        while i < n:
            m = inbox[i]
            if m is None:
                i += 1
                continue
            if m.__class__ is list:         # several messages (fan-in): one at a time
                q = m
                m = q.pop(0)
                if not q:
                    inbox[i] = None
            else:
                inbox[i] = None
            steps += 1
            if steps > max_steps:
                err = "step budget: more than %d node runs" % max_steps
                break
            try:
                r = fns[i](cfgs[i], mems[i], m, ctx)
                e = None
            except Exception as ex:
                r, e = self._retry(i, cfgs[i], m, ex, t_run)
            t1 = _ticks_us()
            k = kinds[i]
            if e is not None:
                rows.append((i, _diff(t1, t), None, None, e))
                if not self._cont[i]:
                    err = "%s: %s" % (self.prog.ids[i], e)
                    break
            elif r is None:
                rows.append((i, _diff(t1, t), None, None, None))
            else:
                if k == _ROUTER:
                    rows.append((i, _diff(t1, t), m, r, None))
                    targets = self._succ[i][r]
                    r = m
                elif k == _SOURCE and r.__class__ is str:
                    rows.append((i, _diff(t1, t), r, None, None))   # failure as data
                    targets = ()
                else:
                    rows.append((i, _diff(t1, t), r, 0, None))
                    targets = succ0[i]
                for j in targets:
                    x = inbox[j]
                    if x is None:
                        inbox[j] = r
                    elif x.__class__ is list:
                        x.append(r)
                    else:
                        inbox[j] = [x, r]
            if _diff(t1, t_run) > budget:
                err = "time budget: run passed %d ms" % self.prog.run_ms
                break
            t = _ticks_us()
        if err is not None:
            for j in range(n):
                inbox[j] = None
            self.errors += 1
            self.last_error = err
        self.runs += 1
        ctx._rows = None
        ctx._logs = None
        self._exec = None
        self._cfgs = self.prog.cfgs
        rec = [self._run_no, trig, exec_id, "failed" if err else "completed", now_ms,
               _diff(_ticks_us(), t_run), rows, logs, err, self.prog]
        self.records.append(rec)
        return rec
