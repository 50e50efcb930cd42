# The power-cut sweep, run under MicroPython (tools/cli/cmd_powercut.py starts it).
#
#   micropython tools/mpy/powercut_sweep.py <spec.json>
#
# For every slot-store operation (stage, activate, trial boot, confirm,
# rollbacks) and both fault variants (cut after the N-th block write; cut and
# also lose the writes not yet synced), and for every N up to the number of
# block writes the operation makes: restore the filesystem from before the
# operation, run it until the power goes, remount, boot, and check that the
# filesystem mounts, the state points at a verified program that the
# operation allows (old or new), and that the program loads and runs.
# One line of JSON per operation, then a summary line.
import sys
import json
import vfs
from fleetflow.blockdev import FileBlockDev
from fleetflow.faultdev import FaultBlockDev
from fleetflow.slots import SlotStore
from fleetflow.errors import FFError

_MNT = "/flash"


def _mount(bd):
    try:
        vfs.umount(_MNT)
    except OSError:
        pass
    vfs.mount(vfs.VfsLfs2(bd), _MNT)


class Sweep:
    def __init__(self, spec, check_sig, runner):
        self.spec = spec
        self.check_sig = check_sig
        self.runner = runner  # runner(header, prog_bytes) raises if it can't run
        self.base = FileBlockDev(spec["image"], cow=True)
        self.progs = spec["programs"]

    def store(self):
        return SlotStore(_MNT, self.check_sig)

    def stage(self, st, name, chunk=256):
        p = self.progs[name]
        body = p["prog"].encode()
        st.stage_begin(p["header"])
        for i in range(0, len(body), chunk):
            st.stage_write(body[i:i + chunk])
        st.stage_finish()

    def setup(self, lossy):
        # Baselines: the filesystem just before each operation.
        self.base.restore({})
        vfs.VfsLfs2.mkfs(self.base)
        _mount(self.base)
        snaps = {}
        st = self.store()
        self.stage(st, "v1")
        st.activate({"runs": 1})
        st.confirm()
        snaps["v1_confirmed"] = self.base.snapshot()
        self.stage(st, "v2")
        snaps["v2_staged"] = self.base.snapshot()
        st.activate({"runs": 1})
        snaps["v2_trial"] = self.base.snapshot()
        st.boot()
        st.boot()
        snaps["v2_trial_2boots"] = self.base.snapshot()
        st.confirm()
        snaps["v2_confirmed"] = self.base.snapshot()
        return snaps

    # name: (baseline, operation, programs allowed to be active afterwards)
    def ops(self):
        return (
            ("stage", "v1_confirmed", lambda s: self.stage(s, "v2"), ("v1",)),
            ("deploy", "v1_confirmed", self._deploy, ("v1", "v2")),
            ("activate", "v2_staged", lambda s: s.activate({"runs": 1}), ("v1", "v2")),
            ("boot_on_trial", "v2_trial", lambda s: s.boot(), ("v1", "v2")),
            ("confirm", "v2_trial", lambda s: s.confirm(), ("v2",)),
            ("rollback_trial", "v2_trial", lambda s: s.rollback("crash: test"), ("v1", "v2")),
            ("boot_loop", "v2_trial_2boots", lambda s: s.boot(), ("v1", "v2")),
            ("rollback_cmd", "v2_confirmed", lambda s: s.rollback("command"), ("v1", "v2")),
            ("stage_over_prev", "v2_confirmed", lambda s: self.stage(s, "v3"), ("v2",)),
        )

    def _deploy(self, s):
        self.stage(s, "v2")
        s.activate({"runs": 1})

    def count_writes(self, snap, op):
        self.base.restore(snap)
        fd = FaultBlockDev(self.base)
        _mount(fd)
        op(self.store())
        return fd.writes

    def check_one(self, snap, op, allowed, n, lossy):
        self.base.restore(snap)
        fd = FaultBlockDev(self.base, n, lossy)
        _mount(fd)
        try:
            op(self.store())
        except (OSError, FFError):
            pass
        self.lost_writes += fd.lost
        # Power back on: a fresh mount of what reached the flash.
        _mount(self.base)
        st = self.store()
        booted = st.boot()
        if booted is None:
            return "no program"
        slot, hdr = booted
        name = "v%d" % hdr["ver"]
        if name not in allowed:
            return "booted %s, allowed %s" % (name, allowed)
        with st.open_program(slot) as f:
            self.runner(hdr, f)
        return None

    def run(self, sample=1):
        self.lost_writes = 0
        total = 0
        recovered = 0
        failures = []
        per_op = {}
        for lossy in (False, True):
            variant = "lossy" if lossy else "cut"
            snaps = self.setup(lossy)
            for name, base, op, allowed in self.ops():
                snap = snaps[base]
                w = self.count_writes(snap, op)
                pts = 0
                ok = 0
                for n in range(0, w, sample):
                    pts += 1
                    try:
                        err = self.check_one(snap, op, allowed, n, lossy)
                    except Exception as e:  # a failure to recover is a finding
                        err = "%s: %s" % (type(e).__name__, e)
                    if err is None:
                        ok += 1
                    elif len(failures) < 20:
                        failures.append({"op": name, "variant": variant, "cut_after": n, "error": err})
                per_op["%s/%s" % (name, variant)] = {"writes": w, "cut_points": pts, "recovered": ok}
                total += pts
                recovered += ok
        try:
            vfs.umount(_MNT)
        except OSError:
            pass
        return {"cut_points": total, "recovered": recovered, "failures": failures, "ops": per_op,
                "unsynced_writes_lost": self.lost_writes}


def _make_unsafe():
    # Negative control: a single-slot store that updates the running program
    # in place (no A/B, no write-and-rename, each chunk committed as it
    # arrives). The sweep must catch the cut points where this leaves no
    # verified program, or it proves nothing.
    from fleetflow import slots
    slots.idle_slot = lambda st: st["active"] or "a"
    path = SlotStore.path
    SlotStore.path = lambda self, name: path(self, name[:-4] if name.startswith("slot_") and name.endswith(".tmp") else name)
    write = SlotStore.stage_write

    def stage_write(self, data):
        write(self, data)
        self._stage[1].flush()

    SlotStore.stage_write = stage_write


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    if spec.get("unsafe"):
        _make_unsafe()
    from fleetflow.gate import make_checker, make_runner
    sweep = Sweep(spec, make_checker(spec["dev"], spec["key"]), make_runner(spec["board"]))
    print(json.dumps(sweep.run(spec.get("sample", 1))))


main()
