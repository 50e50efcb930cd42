# Commands from ff/<dev>/cmd (docs/device-protocol.md, "Commands").
#
# Rules:
#  - a command whose id was handled before is acked again with the state it
#    reached, and not applied again (the last _MAX_DONE ids are kept, and
#    the ones that changed the slots survive a reboot in ff_cmds.json);
#  - every refusal is a `rejected` ack with the reason (FFError text); the
#    running flow and the active slot are untouched by a refused command;
#  - a stage/deploy envelope is checked in the order signature, seq, size,
#    then the bytes (sha, then the program against board and node table)
#    before the slot is committed;
#  - chunk commands are deduplicated by the transfer (fleetflow.transfer),
#    not by id: a re-sent chunk is refused with the `next` wanted.
# Mixed into Agent (fleetflow.agent), which provides ack(), slots, it, ...
import gc
import json
from binascii import a2b_base64
from micropython import const

from fleetflow import gate
from fleetflow.errors import FFError
from fleetflow.transfer import Transfer

_MAX_DONE = const(16)
_PERSIST = ("stage", "deploy", "activate", "rollback")


class Commands:
    def __init__(self):
        self.xfer = None
        self.done = {}
        self._done_order = []
        try:
            with open(self.slots.path("cmds.json")) as f:
                for a in json.load(f):
                    self._keep(a)
        except (OSError, ValueError):
            pass

    def _keep(self, a):
        cid = a.get("id")
        if cid not in self.done:
            self._done_order.append(cid)
            if len(self._done_order) > _MAX_DONE:
                self.done.pop(self._done_order.pop(0), None)
        self.done[cid] = a

    def remember(self, cmd, a):
        if cmd.get("op") == "chunk" or cmd.get("id") is None:
            return
        if a["state"] == "received" and cmd.get("op") in ("stage", "deploy", "exec"):
            return  # not final: a repeat must reach the handler (transfer resume)
        self._keep(a)
        if cmd.get("op") in _PERSIST and a["state"] != "received":
            keep = [self.done[i] for i in self._done_order if self.done[i].get("op") in _PERSIST]
            try:
                self.slots._write_atomic("cmds.json", json.dumps(keep))
            except OSError as e:
                print("agent: can't persist command ids:", e)

    def command(self, raw):
        try:
            cmd = json.loads(raw)
            if type(cmd) is not dict:
                raise ValueError
        except ValueError:
            self.ack({"id": None, "op": None}, "rejected", "bad command: not a JSON object")
            return
        except MemoryError:
            # Too big to parse here: refuse it by the id we can still find.
            n = len(raw)
            cid = _peek_id(raw)
            raw = None
            gc.collect()
            self.ack({"id": cid, "op": None}, "rejected", "oversized: no memory for a %d-byte command" % n)
            return
        raw = None
        cid = cmd.get("id")
        prev = self.done.get(cid)
        if prev is not None:
            a = dict(prev)
            a["repeat"] = True
            self._queue("ack", json.dumps(a), 1)
            return
        fn = _OPS.get(cmd.get("op"))
        if cid is None or fn is None:
            self.ack(cmd, "rejected", "bad command: needs an id and a known op")
            return
        try:
            fn(self, cmd)
        except FFError as e:
            self.ack(cmd, "rejected", e.args[0], **self._next_of(cmd))
        except MemoryError:
            cmd.pop("prog", None)
            gc.collect()
            self.ack(cmd, "rejected", "out of memory handling %s" % cmd.get("op"))
        except Exception as e:  # a bad command must never crash the device
            self.ack(cmd, "rejected", "error: %s: %s" % (type(e).__name__, e))

    def _next_of(self, cmd):
        x = self.xfer
        if x is not None and cmd.get("op") == "chunk" and cmd.get("xfer") == x.cmd["id"]:
            return {"next": x.next}
        return {}

    # -- ops --
    def _ping(self, cmd):
        self.ack(cmd, "received")

    def _validator(self, hdr):
        def validate(prog):
            p = gate.load(prog, self.board, self.table)
            if p.flow != hdr["flow"] or p.ver != hdr["ver"]:
                raise FFError("corrupted: program is %s v%s, envelope says %s v%s" % (
                    p.flow, p.ver, hdr["flow"], hdr["ver"]))
        return validate

    def _stage(self, cmd):
        hdr = gate.header_of(cmd)
        x = self.xfer
        if x is not None and x.cmd["id"] == cmd["id"] and x.same(hdr):
            # the cloud re-sent the envelope after a reconnect: resume
            self.ack(cmd, "received", next=x.next)
            return
        gate.check_envelope(hdr, self.check_sig, self.slots.state["seq"],
                            self.board.get("program_max_bytes", 8192))
        if self.slots.state["trial"]:
            raise FFError("busy: a trial is running")
        if "prog" in cmd:
            prog = cmd["prog"]
            if type(prog) is str:
                prog = prog.encode()
            if len(prog) != hdr["size"]:
                raise FFError("truncated: %d of %d bytes" % (len(prog), hdr["size"]))
            self.ack(cmd, "received")
            self._abort_xfer()
            self.slots.stage_begin(hdr)
            self.slots.stage_write(prog)
            del prog
            self._staged(cmd, hdr)
        elif "chunks" in cmd:
            x = Transfer(cmd, hdr, cmd["chunks"], cmd.get("chunk_size"))
            self._abort_xfer()
            self.slots.stage_begin(hdr)
            self.xfer = x
            self.ack(cmd, "received", next=0)
        else:
            raise FFError("truncated: envelope has neither prog nor chunks")

    def _staged(self, cmd, hdr):
        self.slots.stage_finish(self._validator(hdr))
        a = self.ack(cmd, "staged")
        if cmd["op"] == "deploy":
            self._activate(cmd)
        return a

    def _abort_xfer(self):
        self.xfer = None
        self.slots.stage_abort()

    def _chunk(self, cmd):
        x = self.xfer
        if x is None or x.cmd["id"] != cmd.get("xfer"):
            raise FFError("no transfer %s in progress" % cmd.get("xfer"))
        try:
            data = a2b_base64(cmd.get("data") or "")
        except ValueError:
            raise FFError("corrupted: chunk %s is not base64" % cmd.get("i"))
        x.offer(cmd.get("i"), data)  # raises FFError: rejected with `next`
        self.slots.stage_write(data)
        del data
        done = x.wrote()
        self.ack(cmd, "received", next=x.next)
        if done:
            self.xfer = None
            try:
                self._staged(x.cmd, x.hdr)
            except FFError as e:
                self.ack(x.cmd, "rejected", e.args[0])

    def _activate(self, cmd):
        st = self.slots.state
        staged = st["staged"]
        if staged is None:
            raise FFError("nothing staged")
        hdr = self.slots.header(staged)
        want = cmd.get("seq")
        if cmd["op"] == "activate" and want is not None and hdr and hdr["seq"] != want:
            raise FFError("staged seq is %s, not %s" % (hdr["seq"], want))
        self.slots.activate({"rule": cmd.get("health"), "cmd": cmd["id"], "op": cmd["op"]})
        hdr, prog = self.slots.read_slot(staged)
        self.ack(cmd, "applied", seq=hdr["seq"], slot=staged)
        self._run_slot((staged, hdr, prog))

    def _rollback_cmd(self, cmd):
        reason = "command: %s" % (cmd.get("reason") or "rollback")
        self._rollback(reason)
        self.ack(cmd, "rolled_back", reason)

    def _exec(self, cmd):
        eid = cmd.get("exec") or cmd["id"]
        ov = cmd.get("overrides")
        if "prog" in cmd:
            # an inline program: verified like a stage (seq 0), run once, never stored
            hdr = gate.header_of(cmd)
            gate.check_envelope(hdr, self.check_sig, 0, self.board.get("program_max_bytes", 8192), True)
            prog = cmd["prog"].encode() if type(cmd["prog"]) is str else cmd["prog"]
            gate.check_sha(prog, hdr)
            from fleetflow.interp import Interpreter
            p = gate.load(prog, self.board, self.table)
            self.ack(cmd, "received")
            it = Interpreter(p, self.hal, self.records, self._publish_out, self.device)
            try:
                rec = it.run_now(ov, eid)
            finally:
                it.stop()
        else:
            if self.it is None:
                raise FFError("no active flow to run")
            self.ack(cmd, "received")
            rec = self.it.run_now(ov, eid)
        self.ack(cmd, "done", rec.get("err"), status=rec.get("status"), run=rec.get("run"), exec=eid)

    def _cancel(self, cmd):
        target = cmd.get("target")
        n = 0
        if self.xfer is not None and self.xfer.cmd["id"] == target:
            self._abort_xfer()
            n = 1
        if self.it is not None:
            n += self.it.cancel(target)
        self.ack(cmd, "received", cancelled=n)


def _peek_id(raw):
    # The "id" of a command we could not parse, found without parsing it.
    i = raw.find(b'"id"')
    if i < 0:
        return None
    i = raw.find(b'"', raw.find(b":", i) + 1)
    j = raw.find(b'"', i + 1)
    if i < 0 or j < 0 or j - i > 80:
        return None
    return raw[i + 1:j].decode()


_OPS = {
    "ping": Commands._ping,
    "stage": Commands._stage,
    "deploy": Commands._stage,
    "activate": Commands._activate,
    "rollback": Commands._rollback_cmd,
    "exec": Commands._exec,
    "cancel": Commands._cancel,
    "chunk": Commands._chunk,
}
