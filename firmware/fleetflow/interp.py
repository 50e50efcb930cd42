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
# - every run leaves a record in the RunBuffer (fleetflow.records).
#
# Speed: everything is precomputed here, so the hot loop (fleetflow/runner.py)
# is list indexing. Code for what a program may never need -- retries,
# fan-in, timers -- is imported only for programs that have them.
#
# Modules: this one imports runner (the hot loop), and retry, fanin, timers
# when a program needs them; they use the Interpreter through its public
# members (documented where __init__ sets them) and import nothing from
# here. What both sides share: FAIL, err_text and deliver() in runner,
# record() in fleetflow.records.
import gc
import time
from micropython import const

from fleetflow.errors import FFError
from fleetflow.records import RunBuffer, to_dict, record
from fleetflow.runner import FAIL, err_text, runner

LEVELS = ("debug", "info", "warning", "error")

# node kinds in _nx (the same in fleetflow/runner.py; a hop is the next node's index, > 0)
_NOHOP = const(-1)     # deliver through the inbox
_ROUTER = const(-2)
_SOURCE = const(-3)
_EDGE_MS = const(5)    # GPIO inputs are sampled this often (nodes/gpio_in.py)
_EMPTY = {}            # the message a root gets on exec; nodes never change messages

_ticks_us = time.ticks_us
_diff = time.ticks_diff


def _print_publish(topic, payload, qos, retain):
    print("publish out/%s qos=%d retain=%s %s" % (topic, qos, retain, payload))


def _wrap(run, i, ctx):
    # nodes that log (LOGS = True) get their index set, so the log line
    # names them; the others pay nothing for it
    def w(cfg, mem, msg, c):
        ctx.i = i
        return run(cfg, mem, msg, c)
    return w


def _sets_timers(mod, cfg):
    # TIMERS: True, or a function of the node's cfg (gpio_out: only in pulse mode)
    t = getattr(mod, "TIMERS", False)
    return t(cfg) if callable(t) else t


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


class Interpreter:
    """Runs a Program. It is also the `ctx` its nodes get: now_ms, hal, dev
    (the Device), publish(topic, payload, qos, retain), log(level, text),
    later(ms, fn, arg), resume(ms, idx, msg).

    The members fleetflow.runner, fanin, retry and timers use are public
    too, each said where __init__ sets it; the rest is this class's own."""

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
        ctx = self.ctx = self
        self.now_ms = 0
        self.hal = hal
        self.publish = publish or _print_publish
        self.i = None          # the node running (set for nodes with LOGS)
        self.logs = None       # the running run's log lines [(level, i, text)]; the runner takes them
        self.in_timer = False  # True while a timer's fn runs (fleetflow.timers): log() prints
        self.runs = 0
        self.errors = 0
        self.last_error = None
        n = self._n = p.n
        self.budget_us = p.run_ms * 1000     # a run's time budget
        ids = p.ids
        self.inbox = [None] * n  # per node: None, the message waiting, or a list of them (fan-in)
        self._has_router = False
        fns = []
        mems = [None] * n
        nx = []                # next node to hop to, or _NOHOP / _ROUTER / _SOURCE
        self._rhop = [None] * n  # a router's hop per port (or -1)
        self._polls = []       # [idx, every_ms, next_due_ms, trigger]
        self._edges = []       # (idx, edge fn, trigger)
        self._boots = []       # (idx, trigger)
        # pending timers, fired by fleetflow.timers: [due_ms, fn | None (continuation), arg, exec_id, calls]
        self.timers = []
        self._roots = [i for i in range(n) if p.indeg[i] == 0]
        self.run_no = 0        # the number of the last run (the runner counts)
        self.exec_id = None    # the execution the running run belongs to (None: none)
        self.run_calls = None  # the running run's calls (its overrides applied), for resume()
        self.node_err = None   # why the last node that failed did (set with FAIL by retry())
        self._stopped = False
        for i in range(n):
            mod = p.mods[i]
            fns.append(_wrap(mod.run, i, ctx) if getattr(mod, "LOGS", False) else mod.run)
            nx.append(self._hop(i, 0))
            if mod.PORTS > 1:
                self._has_router = True
                nx[i] = _ROUTER
                self._rhop[i] = tuple(self._hop(i, k) for k in range(mod.PORTS))
            setup = getattr(mod, "setup", None)
            if setup is not None:
                try:
                    mems[i] = setup(p.cfgs[i], hal, i)
                except Exception as e:
                    raise FFError("%s: setup failed: %s" % (ids[i], err_text(e)))
            if mod.KIND != "source":
                continue
            nx[i] = _SOURCE
            if mod.TRIGGER == "edge":
                self._edges.append((i, mod.edge, "edge:" + ids[i]))
            elif p.every.get(i):
                self._polls.append([i, p.every[i], 0, "poll:" + ids[i]])
            else:
                self._boots.append((i, "boot:" + ids[i]))
        # per node (run fn, cfg, mem, next): one unpack in the hot loop
        self._calls = [(fns[i], p.cfgs[i], mems[i], nx[i]) for i in range(n)]
        # the cold paths, imported only when this program can take them;
        # fanin: fleetflow.fanin.run, which the runner calls for a node with
        # several messages waiting (None: the program has no fan-in)
        self._retrier = self.fanin = self._fire = None
        if any(pol and pol[1] for pol in p.policy):
            from fleetflow.retry import retry
            self._retrier = retry
        if any(d > 1 for d in p.indeg):
            from fleetflow.fanin import run
            self.fanin = run
        if any(_sets_timers(p.mods[i], p.cfgs[i]) for i in range(n)):
            from fleetflow.timers import fire
            self._fire = fire
        self._args = [None] * 6  # the next run's arguments, for the runner
        self.gen = None        # the runner (fleetflow.runner) every run goes through; None: start one
        self._start_runner()

    def _calls_for(self, cfgs):
        c = self._calls
        return [(c[i][0], cfgs[i], c[i][2], c[i][3]) for i in range(self._n)]

    def _hop(self, i, port):
        s = self.prog.targets(i, port)
        if len(s) == 1 and s[0] == i + 1 and self.prog.indeg[i + 1] == 1:
            return i + 1
        return _NOHOP

    # -- what nodes call (ctx) ----------------------------------------------

    def log(self, level, text):
        lv = LEVELS.index(level) if level in LEVELS else 1
        if lv < LEVELS.index(self.dev.log_level):
            return
        if self.in_timer:       # from a timer, outside any run
            print("[%s] %s" % (LEVELS[lv], text))
            return
        if self.logs is None:
            self.logs = []
        if len(self.logs) < self.max_logs:
            self.logs.append((LEVELS[lv], self.i, text))

    def later(self, ms, fn, arg):
        """Call fn(arg) after ms, from poll(); never blocks."""
        self.timers.append([time.ticks_add(self.now_ms, ms), fn, arg, None, None])

    def resume(self, ms, idx, msg):
        """Deliver msg to the successors of node idx after ms, as a new run."""
        self.timers.append([time.ticks_add(self.now_ms, ms), None, (idx, msg), self.exec_id, self.run_calls])

    # -- triggers ---------------------------------------------------------

    def start(self, now_ms):
        """Fire the boot triggers; polled sources become due now. Returns runs done."""
        for ent in self._polls:
            ent[2] = now_ms
        for i, trig in self._boots:
            self.execute(trig, i, _EMPTY, None, self._calls, now_ms)
        return len(self._boots)

    def poll(self, now_ms):
        """Run what is due: timers, GPIO edges, polled sources. Returns runs done.

        Stops starting new runs once the run budget is used up; what is
        left stays due for the next call.
        """
        if self._stopped:
            return 0
        t0 = _ticks_us()
        budget = self.budget_us
        done = 0
        if self.timers:
            if self._fire is None:      # a node set a timer without saying TIMERS
                from fleetflow.timers import fire
                self._fire = fire
            done += self._fire(self, now_ms, t0, budget)
        calls = self._calls
        for i, edge, trig in self._edges:
            if _diff(_ticks_us(), t0) > budget:
                return done
            c = calls[i]
            if edge(c[1], c[2], now_ms):
                self.execute(trig, i, _EMPTY, None, calls, now_ms)
                done += 1
        for ent in self._polls:
            if _diff(now_ms, ent[2]) < 0:
                continue
            if _diff(_ticks_us(), t0) > budget:
                break
            nxt = time.ticks_add(ent[2], ent[1])
            # after a stall, don't run the missed polls in a burst
            ent[2] = nxt if _diff(nxt, now_ms) > 0 else time.ticks_add(now_ms, ent[1])
            self.execute(ent[3], ent[0], _EMPTY, None, calls, now_ms)
            done += 1
        return done

    def idle_ms(self, now_ms, ms):
        """How long the device loop may sleep (at most ms) before poll() has
        something to do: the next timer or polled source; with GPIO edges to
        sample, no longer than _EDGE_MS."""
        if self._stopped:
            return ms
        if self._edges and ms > _EDGE_MS:
            ms = _EDGE_MS
        for ent in self._polls:
            d = _diff(ent[2], now_ms)
            if d < ms:
                ms = d
        for t in self.timers:
            d = _diff(t[0], now_ms)
            if d < ms:
                ms = d
        return ms if ms > 0 else 0

    def run_now(self, overrides=None, exec_id=None, now_ms=None, compact=False):
        """Run every root once (on demand) with overrides; returns the record as a
        dict, or compact (fleetflow.records; no dict per node: less heap, read it
        before the next run)."""
        if now_ms is None:
            now_ms = time.ticks_ms()
        try:
            cfgs = self.prog.cfgs_for(overrides)
        except FFError as e:
            self.run_no += 1
            rec = record(self.run_no, "exec", exec_id, "failed", now_ms,
                          "bad overrides: " + e.args[0], self.prog)
            self.records.append(rec)
            return rec if compact else to_dict(rec)
        calls = self._calls
        if cfgs is not self.prog.cfgs:
            calls = self._calls_for(cfgs)
        roots = self._roots
        for i in roots[1:]:
            self.inbox[i] = _EMPTY
        rec = self.execute("exec", roots[0], _EMPTY, exec_id, calls, now_ms)
        return rec if compact else to_dict(rec)

    def run_from(self, idx, msg, now_ms=0, trigger="inject", exec_id=None):
        """Deliver msg to node idx and run from there (tests, benchmarks); the compact record."""
        if self.gen is None:
            self._start_runner()
        a = self._args      # as execute, without a second frame
        a[0] = trigger
        a[1] = idx
        a[2] = msg
        a[3] = exec_id
        a[4] = self._calls
        a[5] = now_ms
        return self.gen.send(None)

    def cancel(self, exec_id):
        """Drop the pending continuations (delays) of an execution; returns how many."""
        keep = [t for t in self.timers if t[3] is None or t[3] != exec_id]
        n = len(self.timers) - len(keep)
        self.timers = keep
        if n:
            self.run_no += 1
            self.records.append(record(self.run_no, "cancel", exec_id, "cancelled", None,
                                        "cancelled: %d pending continuation(s) dropped" % n, self.prog))
        return n

    def pending(self):
        """How many timers (delay continuations, pulse ends) are waiting."""
        return len(self.timers)

    def stop(self):
        self._stopped = True
        self.timers = []
        p = self.prog
        for i in range(self._n):
            td = getattr(p.mods[i], "teardown", None)
            if td is not None:
                try:
                    td(p.cfgs[i], self._calls[i][2])
                except Exception:
                    pass

    # -- what the runner and the cold paths call ----------------------------

    def retry(self, i, fn, cfg, mem, m, e, t_run):
        """After node i failed: its output from a retry, or FAIL (reason in self.node_err)."""
        if self._retrier is not None and self.prog.policy[i] and self.prog.policy[i][1]:
            return self._retrier(self, i, fn, cfg, mem, m, e, t_run)
        self.node_err = err_text(e)
        return FAIL

    def execute(self, trig, i, m, exec_id, calls, now_ms):
        """One run from node i with message m (None: start from the inbox at i)."""
        # kept to few locals: a bigger frame would be a heap allocation per run
        if self.gen is None:
            self._start_runner()
        a = self._args
        a[0] = trig
        a[1] = i
        a[2] = m
        a[3] = exec_id
        a[4] = calls
        a[5] = now_ms
        return self.gen.send(None)

    # -- internals --------------------------------------------------------

    def _start_runner(self):
        self.gen = runner(self, self._args, self._n, self.inbox, self.budget_us, self.prog,
                          self._rhop, self._has_router)
        next(self.gen)
