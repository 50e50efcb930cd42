# Commands from ff/<dev>/cmd (docs/device-protocol.md, "Commands").
#
# Rules:
#  - a command whose id was handled before is acked again with the state it
#    reached, and not applied again (the agent keeps the last ids, and the
#    ones that changed the slots survive a reboot in ff_cmds.json);
#  - every refusal is a `rejected` ack with the reason (FFError text); the
#    running flow and the active slot are untouched by a refused command;
#  - a stage/deploy envelope is checked in the order signature, seq, size,
#    then the bytes (sha, then the program against board and node table)
#    before the slot is committed;
#  - activate, rollback, exec and cancel are signed commands: signature, then
#    their cseq (used once), before anything else (fleetflow.cmdsig); an
#    unsigned, altered or replayed one is `rejected` and changes nothing. An
#    inline exec's program is signed with the command's cseq;
#  - chunk commands are deduplicated by the transfer (fleetflow.transfer),
#    not by id: a re-sent chunk is refused with the `next` wanted.
#
# Cold code: the agent parses a command, then imports this module to handle
# it and unloads it again once no transfer is in progress (fleetflow.cold),
# so the heap holds it only while a command is being handled. The functions
# take the agent (`ag`) and use its public side only: ack(), queue(),
# run_slot(), rollback(), publish_out(), check_sig(), and its key, slots,
# dev, it, xfer, execs, done, staging, board, table, hal, records, device.
import gc
import json
from binascii import a2b_base64

from fleetflow import gate
from fleetflow.cold import unload
from fleetflow.errors import FFError


def handle(ag, cmd):
    """Apply one parsed command (a dict); every outcome is acked."""
    cid = cmd.get("id")
    prev = ag.done.get(cid)     # (op, the ack's JSON)
    if prev is not None:
        a = json.loads(prev[1])
        a["repeat"] = True
        ag.queue("ack", json.dumps(a), 1)
        return
    fn = _OPS.get(cmd.get("op"))
    if cid is None or fn is None:
        ag.ack(cmd, "rejected", "bad command: needs an id and a known op")
        return
    if cmd["op"] in _SIGNED:
        if cmd["op"] == "exec" and _waiting(ag, cid):
            # a repeat while its delays wait (its cseq is taken): not run again
            ag.ack(cmd, "received")
            return
        fn = _signed
    _guarded(ag, cmd, fn)


def _guarded(ag, cmd, fn, *args):
    # fn(ag, cmd, *args), every failure acked as the command's refusal
    try:
        fn(ag, cmd, *args)
    except FFError as e:
        ag.ack(cmd, "rejected", e.args[0], **_next_of(ag, cmd))
    except MemoryError as e:
        cmd.pop("prog", None)
        gc.collect()
        try:  # where, in the device's log (as Agent.safe_step does)
            import sys
            sys.print_exception(e)
        except Exception:
            pass
        e = None
        ag.ack(cmd, "rejected", "out of memory handling %s" % cmd.get("op"))
    except Exception as e:  # a bad command must never crash the device
        ag.ack(cmd, "rejected", "error: %s: %s" % (type(e).__name__, e))


def _signed(ag, cmd):
    # fleetflow.cmdsig lets it in, and is gone again before the command runs
    from fleetflow import cmdsig
    try:
        cmdsig.open_command(cmd, ag.key, ag.dev, ag.slots)
    finally:
        unload("cmdsig")
    cmdsig = None
    _OPS[cmd["op"]](ag, cmd)


def _bytes_of(prog):
    # The program's bytes: a str's UTF-8 seen through a memoryview (its len
    # is in bytes; hashing, writing and parsing read it as they are), not
    # an encoded copy, which wanted a second block the program's size.
    return memoryview(prog) if type(prog) is str else prog


def _next_of(ag, cmd):
    x = ag.xfer
    if x is not None and cmd.get("op") == "chunk" and cmd.get("xfer") == x.cmd["id"]:
        return {"next": x.next}
    return {}


# -- ops --
def _ping(ag, cmd):
    ag.ack(cmd, "received")


def _stage(ag, cmd):
    hdr = gate.header_of(cmd)
    x = ag.xfer
    if x is not None and x.cmd["id"] == cmd["id"] and x.same(hdr):
        # the cloud re-sent the envelope after a reconnect: resume
        ag.ack(cmd, "received", next=x.next)
        return
    gate.check_envelope(hdr, ag.check_sig, ag.slots.state["seq"],
                        ag.board.get("program_max_bytes", 8192))
    if ag.slots.state["trial"]:
        raise FFError("busy: a trial is running")
    if "prog" in cmd:
        prog = _bytes_of(cmd.pop("prog"))  # this copy only: the acks need the id and op
        if len(prog) != hdr["size"]:
            raise FFError("truncated: %d of %d bytes" % (len(prog), hdr["size"]))
        ag.ack(cmd, "received")
        _abort_xfer(ag)
        ag.slots.stage_begin(hdr)
        ag.slots.stage_write(prog)
        del prog
        _staged(ag, cmd, hdr)
    elif "chunks" in cmd:
        from fleetflow.transfer import Transfer  # only chunked transfers need it
        x = Transfer(cmd, hdr, cmd["chunks"], cmd.get("chunk_size"))
        _abort_xfer(ag)
        ag.slots.stage_begin(hdr)
        ag.xfer = x
        ag.ack(cmd, "received", next=0)
    else:
        raise FFError("truncated: envelope has neither prog nor chunks")


def _staged(ag, cmd, hdr):
    # All the bytes are in: the agent checks the program as soon as this
    # command returns and its code is let go (Agent._check_staged), since
    # parsing the program is a deploy's heap peak; then staged() below.
    ag.staging = (cmd, hdr)


def staged(ag, cmd, p, err):
    """The end of a stage/deploy once the agent checked the staged program
    (fleetflow.gate.check_staged): p the Program, or err why it is refused."""
    if err is not None:
        ag.ack(cmd, "rejected", err)
        return
    ag.ack(cmd, "staged")
    if cmd["op"] == "deploy":
        _guarded(ag, cmd, _activate, p)


def _abort_xfer(ag):
    ag.xfer = None
    ag.slots.stage_abort()


def _chunk(ag, cmd):
    x = ag.xfer
    if x is None or x.cmd["id"] != cmd.get("xfer"):
        raise FFError("no transfer %s in progress" % cmd.get("xfer"))
    try:
        data = a2b_base64(cmd.get("data") or "")
    except ValueError:
        raise FFError("corrupted: chunk %s is not base64" % cmd.get("i"))
    x.offer(cmd.get("i"), data)  # raises FFError: rejected with `next`
    ag.slots.stage_write(data)
    del data
    done = x.wrote()
    ag.ack(cmd, "received", next=x.next)
    if done:
        ag.xfer = None
        _staged(ag, x.cmd, x.hdr)


def _activate(ag, cmd, p=None):
    # p: the staged slot's Program when a deploy checked it a moment ago
    # (not read and parsed again)
    st = ag.slots.state
    staged = st["staged"]
    if staged is None:
        raise FFError("nothing staged")
    hdr = ag.slots.header(staged)
    want = cmd.get("seq")
    if cmd["op"] == "activate" and want is not None and hdr and hdr["seq"] != want:
        raise FFError("staged seq is %s, not %s" % (hdr["seq"], want))
    ag.slots.activate({"rule": cmd.get("health"), "cmd": cmd["id"], "op": cmd["op"]})
    hdr = ag.slots.verify(staged) if p is None else ag.slots.header(staged)
    ag.ack(cmd, "applied", seq=hdr["seq"], slot=staged)
    ag.run_slot((staged, hdr), p)


def _rollback_cmd(ag, cmd):
    reason = "command: %s" % (cmd.get("reason") or "rollback")
    ag.rollback(reason)
    ag.ack(cmd, "rolled_back", reason)


def _exec(ag, cmd):
    eid = cmd.get("exec") or cmd["id"]
    ov = cmd.get("overrides")
    if "prog" in cmd:
        # the memory budget of waiting executions: each keeps its program and
        # interpreter (~9 KB for 20 nodes) until its delays have run
        if len(ag.execs) >= 2:
            raise FFError("memory budget: 2 inline executions wait for their delays")
        # an inline program: verified like a stage, run once, never stored;
        # signed with this command's cseq, so no other signed program (an
        # older exec's) can be put in its place
        hdr = gate.header_of(cmd)
        gate.check_envelope(hdr, ag.check_sig, 0, ag.board.get("program_max_bytes", 8192), True)
        if hdr["seq"] != cmd["cseq"]:
            raise FFError("replayed: program of seq %d in cseq %d" % (hdr["seq"], cmd["cseq"]))
        prog = _bytes_of(cmd.pop("prog"))
        gate.check_sha(prog, hdr)
        from fleetflow.interp import Interpreter
        p = gate.load(prog, ag.board, ag.table)
        # the text goes before the interpreter is made: next to the active
        # flow, its block may be the only one a run's frame fits in
        prog = None
        if ov:
            # this program runs only with them: applied once, now, before
            # its interpreter is made (it is set up with them too)
            try:
                p.cfgs = p.cfgs_for(ov)
                ov = None
            except FFError:
                pass  # refused again by run_now, as a failed run saying why
        gc.collect()
        ag.ack(cmd, "received")
        it = Interpreter(p, ag.hal, ag.records, ag.publish_out, ag.device)
        try:
            rec = it.run_now(ov, eid, compact=True)
        except BaseException:
            it.stop()
            raise
        if rec[-2] is None and it.pending():
            # delays to come: its interpreter runs on (exec_step), `done` once they ran
            ag.execs.append((it, cmd))
            return
        it.stop()
    else:
        if ag.it is None:
            raise FFError("no active flow to run")
        ag.ack(cmd, "received")
        rec = ag.it.run_now(ov, eid, compact=True)
    err = rec[-2]   # the compact record's ERR and RUN (fleetflow.records): failed when ERR is set
    run = rec[-14]
    it = p = rec = None
    gc.collect()    # what the run left (its messages) goes before the agent needs heap again
    ag.ack(cmd, "done", err, status="failed" if err else "completed", run=run, exec=eid)


def exec_step(ag, now):
    """Inline executions waiting for their delays (Agent.step): their timers
    run here; each is `done` once none is left or a run failed."""
    for x in ag.execs[:]:
        it, cmd = x
        it.poll(now)
        if it.errors or not it.pending():
            ag.execs.remove(x)
            it.stop()
            # its own interpreter: the run count is the last run's number
            ag.ack(cmd, "done", it.last_error, status="failed" if it.errors else "completed", run=it.runs,
                   exec=cmd.get("exec") or cmd["id"])


def _waiting(ag, target):
    # the waiting inline execution a command or execution id names
    for x in ag.execs:
        if target in (x[1]["id"], x[1].get("exec")):
            return x


def _cancel(ag, cmd):
    target = cmd.get("target")
    n = 0
    if ag.xfer is not None and ag.xfer.cmd["id"] == target:
        _abort_xfer(ag)
        n = 1
    if ag.it is not None:
        n += ag.it.cancel(target)
    x = _waiting(ag, target)
    if x:
        ag.execs.remove(x)
        n += x[0].pending()
        x[0].stop()
    ag.ack(cmd, "received", cancelled=n)


_SIGNED = ("activate", "rollback", "exec", "cancel")  # and stage/deploy: their envelope
_OPS = {
    "ping": _ping,
    "stage": _stage,
    "deploy": _stage,
    "activate": _activate,
    "rollback": _rollback_cmd,
    "exec": _exec,
    "cancel": _cancel,
    "chunk": _chunk,
}
