# The device agent: the flow runs, the cloud talks to it over MQTT, and the
# A/B slot store keeps a verified flow to boot whatever happens.
#
# One loop, never blocking for long (Agent.step):
#   link.poll      connect when due (backoff), queue incoming commands, ping
#   commands       handled here, outside the MQTT callback; acks are queued
#   interpreter    runs what is due; an escaping exception on trial rolls back
#   health gate    on trial: confirm or roll back (fleetflow.health)
#   flush          acks/status/out (QoS 1) then run batches, heartbeat (QoS 0)
# then sleeps until the flow's next timer or polled source, at most 1 s, or
# until a message on the socket wakes it (Link.wait: select.poll).
# Nothing escapes step(): the device keeps running its flow without the
# cloud, and buffers what it has to say (bounded, drops counted).
#
# Heap: what runs all the time (this loop, the link, the interpreter, the
# run buffer) stays loaded; the cold code -- command handling, chunked
# transfers, the envelope and signature checks, the program loader -- is
# imported when a command or a slot switch needs it and let go after
# (_cool), so the steady heap holds none of it.
import gc
import json
import time
from binascii import unhexlify
from micropython import const

from fleetflow import VERSION
from fleetflow.cold import unload
from fleetflow.slots import SlotStore
from fleetflow.link import Link
from fleetflow.net import Net
from fleetflow.records import RunBuffer
from fleetflow.runsmsg import RunsBody, PIECE
from fleetflow.health import rule_of, judge, CONFIRM, ROLLBACK
from fleetflow.cmdlog import CommandLog

_MAX_OUTBOX = const(24)
_RUNS_EVERY_MS = const(1000)
_RUNS_MSG_BYTES = const(1024)  # a runs message takes no more records past this size
_MAX_SLEEP_MS = const(1000)  # the longest sleep between loop steps
_FLUSH_HOLD_MS = const(500)  # the longest the outgoing messages wait for a burst of incoming ones
# A run record holds a row per node (its tick and its output message: ~65 B a
# row on a 64-bit port, ~40 B on a 32-bit board) until it is shipped, and a
# row is ~80 B of JSON: records wait for a message-full of rows, not for a
# count, and the buffer is bounded in rows too (cfg runs_buffer_rows).
_RUNS_MSG_ROWS = const(12)
# what _cool unloads: modules only commands, slot switches and checks use
_COLD = ("commands", "transfer", "gate", "verify", "hmac256")


def _heap():
    gc.collect()
    return gc.mem_free()


def _heap_log(tag):
    # config "heap_log": free memory says nothing of fragmentation; the GC's
    # own summary has the largest free block ("max free sz", in blocks).
    gc.collect()
    print("heap:", tag)
    from micropython import mem_info
    mem_info()


class Agent(CommandLog):
    def __init__(self, cfg, root="", nt_hash=None):
        from fleetflow.nodetable import load_table, table_hash
        from fleetflow.hal import get_hal
        from fleetflow.interp import Device
        self.cfg = cfg
        self.dev = cfg["device_id"]
        self.board = cfg["board"]
        types = self.board["nodes"]
        self.table = load_table(types)
        self.types = sorted(self.table)
        self.nt_hash = nt_hash or table_hash(types)
        self.hal = get_hal(self.board["name"], cfg.get("sim"))
        self.key = unhexlify(cfg["key"])
        self.slots = SlotStore(root, self.check_sig)
        self.records = RunBuffer(cfg["runs_buffer"])
        self._runs_ship = cfg["runs_batch"]  # records that make a message (_fit_runs)
        self._piece = bytearray(PIECE)  # runs messages go through it (fleetflow.runsmsg)
        self.device = Device(self.records)
        self.net = Net(self.hal, cfg)  # Wi-Fi and the clock; before the link takes the CA
        self.link = Link(cfg, self._on_connect)
        self.outbox = []
        self.out_dropped = 0
        self.loop_errors = 0      # exceptions caught by safe_step
        self.it = None            # the interpreter of the active program
        self.hdr = None           # the active slot's header
        self.trial_t0 = 0
        self.t_boot = time.ticks_ms()
        self._next_health = 0
        self._last_runs = 0
        self._last_flush = 0
        self._status_due = True
        self._warm = False        # cold code may be loaded: _cool it
        self.xfer = None          # a chunked transfer in progress (fleetflow.transfer)
        self.staging = None       # (command, header) of a staged program to check
        self.execs = []           # inline executions whose delays are to come: (interpreter, cmd)
        CommandLog.__init__(self)

    def check_sig(self, hdr):
        """FFError unless the slot/envelope header carries this device's signature."""
        from fleetflow import verify  # cold: unloaded by _cool
        self._warm = True
        verify.check_signature(hdr, self.key, self.dev)

    def _cool(self):
        # Let the cold code go once nothing holds it: an execution waiting
        # for its delays does (commands.exec_step). A chunked transfer in
        # progress does not: its Transfer keeps what it needs, and each chunk
        # is parsed with the command code out of the heap (on a heap a long
        # run fragmented, parsing a chunk next to that code failed), then
        # the code is imported again to handle it.
        if not self.execs:
            unload(*_COLD)
            self._warm = False

    # -- boot --
    def boot(self):
        before = dict(self.slots.state)
        booted = self.slots.boot(self.hal.reset_cause())  # counts a trial boot (a watchdog reset too) before anything runs
        st = self.slots.state
        if before["trial"] and not st["trial"]:
            h = before.get("health") or {}
            reason = (st.get("failed") or {}).get("reason", "boot_loop")
            print("agent: rolled back at boot:", reason)
            self._trial_ack(h, "rolled_back", reason)
        if booted:
            self.run_slot(booted)
        self._cool()

    def _check_staged(self):
        # A stage/deploy whose bytes are all in: its program is parsed and
        # checked here, after the command returned and the command code was
        # let go -- that parse is a deploy's heap peak, next to the running
        # flow -- then the command code finishes it (acks, activation).
        cmd, hdr = self.staging
        self.staging = None
        self._cool()
        from fleetflow.gate import check_staged
        self._warm = True
        p, err = check_staged(self.slots, hdr, self.board, self.table)
        from fleetflow.commands import staged
        staged(self, cmd, p, err)

    def run_slot(self, booted, p=None):
        """Start the program of (slot, header), verified -- or p, its
        Program, when it was just checked; roll back if it can't."""
        if self.it is not None:
            self.it.stop()
            self.it = None
            gc.collect()
        self._status_due = True   # whatever happens next, the cloud hears of it
        if booted is None:
            self.hdr = None
            return
        slot, hdr = booted
        try:
            if p is None:
                from fleetflow.gate import load
                self._warm = True
                # parsed as it is read from the slot: the old flow is gone by
                # now, but a block the program's size may still not be free
                with self.slots.open_program(slot) as f:
                    p = load(f, self.board, self.table)
            from fleetflow.interp import Interpreter
            # with fan-in a record holds up to 32 more rows (fanin.MAX_RUNS)
            self._fit_runs(p.n + (32 if max(p.indeg) > 1 else 0))
            self.it = Interpreter(p, self.hal, self.records, self.publish_out, self.device)
            self.hdr = hdr
            self.trial_t0 = time.ticks_ms()
            self.it.start(self.trial_t0)
            if self.cfg["heap_log"]:
                _heap_log("load")
        except Exception as e:
            self.it = None
            self.hdr = None
            st = self.slots.state
            if st["trial"] or st["prev"] is not None:
                self.rollback("crash: %s: %s" % (type(e).__name__, e))
            else:
                print("agent: can't run slot", slot, e)

    def _fit_runs(self, n):
        # the run buffer's bound and the records per message, in rows of a
        # program of n nodes
        cfg = self.cfg
        n = n or 1
        self.records.maxlen = max(1, min(cfg["runs_buffer"], cfg["runs_buffer_rows"] // n))
        self._runs_ship = max(1, min(cfg["runs_batch"], _RUNS_MSG_ROWS // n))

    # -- the loop --
    def run(self):
        # The watchdog is armed before anything can hang, and fed only here,
        # after each turn of the loop: a step stuck anywhere resets the
        # board, and on trial that reset counts toward the boot loop.
        wdt = self.hal.watchdog(self.board.get("watchdog_ms", 8000))
        try:
            self.boot()
        except Exception as e:  # still come online, so the cloud can see and fix it
            print("agent: boot failed:", type(e).__name__, e)
        print("agent: booted, heap free", _heap())  # `fleetflow bench agent` reads it
        if self.cfg["heap_log"]:
            _heap_log("boot")
        while True:
            self.safe_step()
            wdt.feed()
            # Sleep until the flow's next timer or poll, at most 1 s: what the
            # agent and the link do on their own (pings, reconnects, run
            # batches, heartbeats) is a second or more apart, so due at most
            # that late. A message on the socket ends the sleep at once.
            ms = _MAX_SLEEP_MS
            try:
                now = time.ticks_ms()
                if self.it is not None:
                    ms = self.it.idle_ms(now, ms)
                for x in self.execs:
                    ms = x[0].idle_ms(now, ms)
            except Exception:  # never a reason to stop the loop: a short nap instead
                ms = 5
            self.link.wait(ms)

    def safe_step(self):
        """step(), with any Exception caught, counted (health: loop_errors) and
        logged; the loop goes on. KeyboardInterrupt/SystemExit (deliberate
        exits) are not Exceptions and pass."""
        try:
            self.step()
            return
        except Exception as e:  # never let anything end the device loop
            self.loop_errors += 1
            err = e
        try:
            if type(err) is MemoryError:
                gc.collect()
                print("agent: out of memory, free now", gc.mem_free())
                import sys
                sys.print_exception(err)  # where, so the budget can be fixed
            else:
                print("agent: step error:", type(err).__name__, err)
        except Exception:  # even the report failed (no memory to format it)
            try:
                print("<unprintable>")  # ends the half-written line; the count says the rest
            except Exception:
                pass
        err = None
        time.sleep_ms(100)

    def step(self):
        now = time.ticks_ms()
        if self.net.up(now):
            self.link.poll(now)
        elif self.link.connected:
            self.link.drop(self.net.why)
        if self.link.inbox:
            while self.link.inbox:
                self.command(self.link.inbox.pop(0)[1])
                if self.staging is not None:
                    self._check_staged()
            if self.cfg["heap_log"]:
                _heap_log("cmd")
        it = self.it
        if it is not None:
            try:
                it.poll(now)
            except Exception as e:
                self._crash(e)
        if self.execs:
            from fleetflow.commands import exec_step  # cold: kept loaded while executions wait
            exec_step(self, now)
        if self.slots.state["trial"] and self.it is not None:
            self._gate(now)
        # What we have to say waits while messages come in (one a step,
        # Link.poll), unless for long: the acks of a burst (a program's
        # chunks, sent back to back) go out after it, so the burst is read
        # one message at a time, not into the heap at once.
        if time.ticks_diff(now, self._last_flush) >= _FLUSH_HOLD_MS or not self.link.incoming():
            self._last_flush = now
            self.flush(now)
        if self._warm:
            self._cool()

    def _crash(self, e):
        reason = "crash: %s: %s" % (type(e).__name__, e)
        print("agent:", reason)
        if self.slots.state["trial"]:
            self.rollback(reason)

    def _gate(self, now):
        st = self.slots.state
        h = st.get("health") or {}
        it = self.it
        verdict, reason = judge(rule_of(h.get("rule")), it.runs, it.errors,
                                time.ticks_diff(now, self.trial_t0), self.link.connected)
        if verdict == CONFIRM:
            self.slots.confirm()
            self._trial_ack(h, "healthy", None)
            self._status_due = True
        elif verdict == ROLLBACK:
            # The root cause travels with the rate: the last failing node
            # and its error ("n2: KeyError: temperatur"), bounded.
            if it.last_error:
                reason += "; " + it.last_error[:120]
            self.rollback(reason)

    def rollback(self, reason):
        """Back to the previous slot (FFError if there is none)."""
        h = self.slots.state.get("health") or {}
        was_trial = self.slots.state["trial"]
        self.slots.rollback(reason)
        print("agent: rolled back:", reason)
        if was_trial:
            self._trial_ack(h, "rolled_back", reason)
        active = self.slots.state["active"]
        booted = None
        if active is not None:
            try:
                booted = (active, self.slots.verify(active))
            except Exception as e:
                print("agent: previous slot unusable:", e)
        self.run_slot(booted)

    def _trial_ack(self, h, state, reason):
        if h.get("cmd"):
            self.ack({"id": h["cmd"], "op": h.get("op", "activate")}, state, reason)

    # -- outgoing --
    def queue(self, suffix, payload, qos, retain=False):
        """Queue a message for ff/<dev>/<suffix>, sent by the next flush;
        the oldest is dropped (counted) when the outbox is full."""
        if len(self.outbox) >= _MAX_OUTBOX:
            self.outbox.pop(0)
            self.out_dropped += 1
        self.outbox.append((suffix, payload, qos, retain))

    def publish_out(self, topic, payload, qos, retain):
        """mqtt_out's publish (the interpreter's `publish`): called from
        inside a run, so only queued here."""
        self.queue("out/" + topic, payload, qos, retain)

    def ack(self, cmd, state, reason=None, **extra):
        st = self.slots.state
        a = {"id": cmd.get("id"), "op": cmd.get("op"), "state": state, "reason": reason,
             "seq": self.hdr["seq"] if self.hdr else st["seq"], "slot": st["active"]}
        for k in extra:
            a[k] = extra[k]
        text = json.dumps(a)
        self.remember(cmd, a, text)
        self.queue("ack", text, 1)
        return a

    def status(self):
        st = self.slots.state
        h = self.hdr or {}
        return self.net.report({"state": "online", "fw": VERSION, "board": self.board["name"], "nt_hash": self.nt_hash,
                "types": self.types, "slot": st["active"], "flow": h.get("flow"), "ver": h.get("ver"),
                "seq": st["seq"], "trial": st["trial"], "heap": _heap(),
                "failed": st.get("failed"), "reset": self.hal.reset_cause()})

    def health(self):
        it = self.it
        st = self.slots.state
        h = self.hdr or {}
        return self.net.report({"uptime_s": time.ticks_diff(time.ticks_ms(), self.t_boot) // 1000, "heap": _heap(),
                "runs": it.runs if it else 0, "errors": it.errors if it else 0,
                "last_error": it.last_error if it else None, "slot": st["active"], "trial": st["trial"],
                "flow": h.get("flow"), "ver": h.get("ver"), "dropped": self.records.dropped,
                "out_dropped": self.out_dropped, "reconnects": self.link.connects,
                "loop_errors": self.loop_errors})

    def _on_connect(self):
        # Called from link.poll (not from the MQTT callback): may publish.
        print("agent: online as", self.dev)
        self._status_due = True
        self._next_health = time.ticks_ms()

    def flush(self, now):
        link = self.link
        if not link.connected:
            return
        if self._status_due:
            if not link.publish("status", json.dumps(self.status()), 1, True):
                return
            self._status_due = False
        while self.outbox:
            suffix, payload, qos, retain = self.outbox[0]
            if not link.publish(suffix, payload, qos, retain):
                return
            self.outbox.pop(0)
        recs = self.records
        if len(recs) and (len(recs) >= self._runs_ship or
                          time.ticks_diff(now, self._last_runs) >= _RUNS_EVERY_MS):
            # The records' JSON is written straight from the compact records
            # (no dict per node row) onto the socket, through one 256-byte
            # buffer: no block the size of a message is ever needed.
            try:
                body = RunsBody(recs, self.dev, self._piece, _RUNS_MSG_BYTES, self.cfg["runs_batch"],
                                self.net.stamp(now))
            except MemoryError:
                # a record too big for the heap left: drop it (counted), or
                # it would block every message after it
                recs.discard(1)
                recs.dropped += 1
                return
            if not link.publish("runs", body, 1):
                return
            recs.discard(body.k)
            body = None
            self._last_runs = now
        if time.ticks_diff(now, self._next_health) >= 0:
            self._next_health = time.ticks_add(now, self.cfg["health_interval_s"] * 1000)
            link.publish("health", json.dumps(self.health()), 0)
            if self.cfg["heap_log"]:
                _heap_log("health")

    def shutdown(self):
        """A clean stop: say offline (the will covers unclean ones)."""
        if self.link.connected:
            self.link.publish("status", b'{"state":"offline"}', 1, True)
        self.link.close()
        if self.it is not None:
            self.it.stop()


def main(cfg, root="", nt_hash=None):
    agent = Agent(cfg, root, nt_hash)
    try:
        agent.run()
    except KeyboardInterrupt:
        agent.shutdown()
