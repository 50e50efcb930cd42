# The A/B flow slot store.
#
# Rules (docs/device-protocol.md, DESIGN.md "A/B slots"):
#  1. Two slot files and one state file. A slot file is self-describing: one
#     header line of JSON (flow, ver, seq, size, sha, sig) then the program
#     bytes, so a slot can be re-verified (sha and signature) on every boot.
#  2. Every update writes `<name>.tmp` and renames it over `<name>`; LittleFS
#     renames atomically, so after a power cut each file is old or new whole.
#     Nothing spans two files without a rename that commits it.
#  3. A program is staged only into the idle slot, and only while no trial
#     is running (the idle slot is then the trial's way back). Before the
#     idle slot is overwritten the state stops pointing at it.
#  4. activate: the staged slot becomes active *on trial*; the old active
#     becomes `prev`, the way back.
#  5. boot: on trial the boot is counted and committed before the flow runs;
#     past MAX_TRIAL_BOOTS boots on trial it is a boot loop: roll back. A
#     reset by the watchdog (a hung loop) counts like any other; the reason
#     names a cause other than power (`boot_loop: watchdog reset`).
#  6. confirm: the trial ends; only now does the accepted `seq` rise.
#  7. rollback: the active slot goes back to `prev`. The failed program stays
#     in its slot (and is named in `failed`) for diagnosis until the next
#     stage overwrites it. Without a `prev` there is nothing to go back to.
#  8. An illegal transition raises FFError and leaves the state unchanged.
#
# `transition()` below is the pure core (no I/O); SlotStore is the thin shell.
import json
import os
import hashlib
from micropython import const
from fleetflow.errors import FFError
# fleetflow.verify is imported by the two methods that check digests: it is
# cold code the agent unloads between commands (fleetflow.cold).

MAX_TRIAL_BOOTS = const(2)
_COPY_BUF = const(512)

EMPTY = "empty"          # no program active
CONFIRMED = "confirmed"  # active program proved healthy
TRIAL = "trial"          # active program on trial


def initial_state():
    return {"v": 1, "active": None, "prev": None, "trial": False, "boots": 0,
            "seq": 0, "staged": None, "failed": None, "health": None}


def phase(st):
    if st["active"] is None:
        return EMPTY
    return TRIAL if st["trial"] else CONFIRMED


def idle_slot(st):
    return "b" if st["active"] == "a" else "a"


def _t_stage_begin(st, arg):
    idle = idle_slot(st)
    if st["prev"] == idle:
        st["prev"] = None
    st["staged"] = None
    f = st["failed"]
    if f and f.get("slot") == idle:
        st["failed"] = None


def _t_staged(st, arg):
    if arg != idle_slot(st):
        raise FFError("stage into %s: not the idle slot" % arg)
    st["staged"] = arg


def _t_activate(st, arg):
    if st["staged"] is None:
        raise FFError("nothing staged")
    st["prev"] = st["active"]
    st["active"] = st["staged"]
    st["staged"] = None
    st["trial"] = True
    st["boots"] = 0
    st["health"] = arg
    st["failed"] = None


def _t_boot(st, arg):
    # arg: the reset cause (fleetflow.hal reset_cause), None or "power" unnamed
    if st["trial"]:
        st["boots"] += 1
        if st["boots"] > MAX_TRIAL_BOOTS:
            _t_rollback(st, "boot_loop" if arg in (None, "power") else "boot_loop: %s reset" % arg)


def _t_confirm(st, arg):
    st["trial"] = False
    st["boots"] = 0
    if arg is not None and arg > st["seq"]:
        st["seq"] = arg


def _t_rollback(st, arg):
    if st["prev"] is None and not st["trial"]:
        raise FFError("nothing to roll back to")
    st["failed"] = {"slot": st["active"], "reason": arg}
    st["active"] = st["prev"]
    st["prev"] = None
    st["trial"] = False
    st["boots"] = 0
    st["health"] = None


# (phase, event) -> transition; a missing pair is an illegal transition.
_TRANSITIONS = {
    (EMPTY, "stage_begin"): _t_stage_begin,
    (CONFIRMED, "stage_begin"): _t_stage_begin,
    (EMPTY, "staged"): _t_staged,
    (CONFIRMED, "staged"): _t_staged,
    (EMPTY, "activate"): _t_activate,
    (CONFIRMED, "activate"): _t_activate,
    (EMPTY, "boot"): _t_boot,
    (CONFIRMED, "boot"): _t_boot,
    (TRIAL, "boot"): _t_boot,
    (TRIAL, "confirm"): _t_confirm,
    (TRIAL, "rollback"): _t_rollback,
    (CONFIRMED, "rollback"): _t_rollback,
}


def transition(st, event, arg=None):
    """The state after `event`; raises FFError (state unchanged) if illegal."""
    fn = _TRANSITIONS.get((phase(st), event))
    if fn is None:
        raise FFError("%s not allowed while %s" % (event, phase(st)))
    new = dict(st)
    fn(new, arg)
    return new


class SlotStore:
    """Slots and state under `root` ("" on a board, "/flash" on the sim).

    check_sig(header) raises FFError when the header's signature is not the
    device's; it is the same check the agent runs on an incoming envelope.
    """

    def __init__(self, root, check_sig):
        self.root = root
        self._check_sig = check_sig
        self.state = self._load_state()
        self._stage = None  # (slot, file, sha256, header) while streaming

    def path(self, name):
        return self.root + "/ff_" + name if self.root else "ff_" + name

    def _load_state(self):
        try:
            with open(self.path("state.json")) as f:
                st = json.load(f)
            if st.get("v") == 1:
                return st
        except (OSError, ValueError):
            pass
        return initial_state()

    def write_atomic(self, name, data):
        """Write the file `name` whole or not at all: data is the text or
        bytes, or an iterable of pieces of it (no block its whole size)."""
        tmp = self.path(name + ".tmp")
        with open(tmp, "wb") as f:
            if type(data) in (str, bytes, bytearray):
                f.write(data)
            else:
                for piece in data:
                    f.write(piece)
        os.rename(tmp, self.path(name))

    def _apply(self, event, arg=None):
        new = transition(self.state, event, arg)
        if new != self.state:
            self.write_atomic("state.json", json.dumps(new))
            self.state = new
        return new

    # -- staging: stream the program into the idle slot --
    def stage_begin(self, header):
        """header: dict flow, ver, seq, size, sha, sig (signature checked by caller)."""
        self.stage_abort()
        self._apply("stage_begin")
        slot = idle_slot(self.state)
        f = open(self.path("slot_%s.tmp" % slot), "wb")
        f.write(json.dumps(header))
        f.write(b"\n")
        self._stage = [slot, f, hashlib.sha256(), header, 0]
        return slot

    def stage_write(self, data):
        s = self._stage
        if s is None:
            raise FFError("no stage in progress")
        if s[4] + len(data) > s[3]["size"]:
            self.stage_abort()
            raise FFError("oversized: more than %d bytes" % s[3]["size"])
        s[1].write(data)
        s[2].update(data)
        s[4] += len(data)

    def staged_bytes(self):
        return self._stage[4] if self._stage else 0

    def stage_abort(self):
        s = self._stage
        self._stage = None
        if s:
            try:
                s[1].close()
                os.remove(self.path("slot_%s.tmp" % s[0]))
            except OSError:
                pass

    def stage_finish(self, validate=None):
        """Check size and sha, then validate(file) (the staged file open at the
        program's first byte; raises FFError to refuse), then commit the slot
        file and mark it staged."""
        s = self._stage
        if s is None:
            raise FFError("no stage in progress")
        slot, f, h, header, n = s
        if n != header["size"]:
            self.stage_abort()
            raise FFError("truncated: %d of %d bytes" % (n, header["size"]))
        from fleetflow import verify
        try:
            verify.check_digest(header, verify.hexdigest(h), n)
        except FFError:
            self.stage_abort()
            raise
        f.close()
        if validate is not None:
            try:
                # validate(file) reads the program from the file as it parses
                # it: on a heap fragmented by a long run there may be no free
                # block the program's size (a deploy's heap peak is this parse)
                with open(self.path("slot_%s.tmp" % slot), "rb") as f:
                    f.readline()
                    validate(f)
            except Exception:
                self._stage = [slot, f, h, header, n]
                self.stage_abort()
                raise
        self._stage = None
        os.rename(self.path("slot_%s.tmp" % slot), self.path("slot_" + slot))
        self._apply("staged", slot)
        return slot

    # -- the other transitions --
    def activate(self, health=None):
        return self._apply("activate", health)

    def confirm(self):
        hdr = self.header(self.state["active"])
        return self._apply("confirm", hdr["seq"] if hdr else None)

    def rollback(self, reason):
        return self._apply("rollback", reason)

    def boot(self, cause=None):
        """Count the boot (cause: why the device reset), then return (slot,
        header) of a verified active program (open_program reads it), or
        None. An active slot that fails verification is rolled back from
        (reason `corrupt slot`)."""
        self._apply("boot", cause)
        while self.state["active"] is not None:
            slot = self.state["active"]
            try:
                return slot, self.verify(slot)
            except (OSError, ValueError, KeyError, FFError) as e:
                if self.state["prev"] is None and not self.state["trial"]:
                    # Nothing verified to go back to: run nothing.
                    self.state = dict(self.state, active=None)
                    return None
                self._apply("rollback", "corrupt slot %s: %s" % (slot, e))
        return None

    def header(self, slot):
        if slot is None:
            return None
        try:
            with open(self.path("slot_" + slot)) as f:
                return json.loads(f.readline())
        except (OSError, ValueError):
            return None

    def verify(self, slot):
        """The slot's header, once its program's size, sha and signature
        check out; the program is read in pieces, never held whole (a heap
        a flow runs in may have no free block its size)."""
        h = hashlib.sha256()
        buf = bytearray(_COPY_BUF)
        n = 0
        with open(self.path("slot_" + slot), "rb") as f:
            hdr = json.loads(f.readline())
            while True:
                k = f.readinto(buf)
                if not k:
                    break
                h.update(buf if k == _COPY_BUF else buf[:k])
                n += k
        buf = None
        from fleetflow import verify
        verify.check_digest(hdr, verify.hexdigest(h), n)
        self._check_sig(hdr)
        return hdr

    def open_program(self, slot):
        """The slot file, open at the program's first byte (the caller closes it)."""
        f = open(self.path("slot_" + slot), "rb")
        f.readline()
        return f
