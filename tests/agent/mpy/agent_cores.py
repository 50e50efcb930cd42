# Table-driven checks of the agent's pure cores under MicroPython:
# fleetflow.health.judge, fleetflow.transfer.Transfer, and the fault
# semantics of fleetflow.blockdev.FaultBlockDev. One JSON line per case.
import json
from fleetflow.health import judge, rule_of, CONFIRM, ROLLBACK
from fleetflow.transfer import Transfer
from fleetflow.blockdev import FileBlockDev
from fleetflow.faultdev import FaultBlockDev
from fleetflow.errors import FFError


def out(group, name, ok, got):
    print(json.dumps({"case": group + ": " + name, "ok": ok, "got": got}))


R = rule_of({"runs": 3, "seconds": 5, "max_error_rate": 0.25})
# (name, runs, errors, elapsed_ms, connected, verdict, reason starts with)
HEALTH = (
    ("too few runs to judge", 2, 2, 60000, True, None, None),
    ("error rate over the bound rolls back", 4, 2, 1000, True, ROLLBACK, "error_rate 0.50 > 0.25"),
    ("at the bound is fine, waits for time", 4, 1, 1000, True, None, None),
    ("confirms after runs and seconds", 3, 0, 5000, True, CONFIRM, None),
    ("no confirm while offline", 3, 0, 9000, False, None, None),
    ("rollback even while offline", 3, 3, 100, False, ROLLBACK, "error_rate 1.00"),
)
for name, runs, errs, ms, conn, want, why in HEALTH:
    v, reason = judge(R, runs, errs, ms, conn)
    ok = v == want and (why is None or (reason or "").startswith(why))
    out("health", name, ok, [v, reason])
out("health", "defaults fill a missing rule", rule_of(None) == {"runs": 3, "seconds": 5, "max_error_rate": 0.25}, rule_of(None))
out("health", "bad values are ignored", rule_of({"runs": -1, "seconds": "x"})["runs"] == 3, rule_of({"runs": -1}))

HDR = {"size": 10}


def tr():
    return Transfer({"id": "x"}, HDR, 3, 4)


def attempt(t, i, data):
    try:
        t.offer(i, data)
        t.wrote()
        return "ok"
    except FFError as e:
        return e.args[0]


# (name, steps [(i, data)], expected results)
XFER = (
    ("in order", [(0, b"aaaa"), (1, b"bbbb"), (2, b"cc")], ["ok", "ok", "ok"]),
    ("duplicate refused", [(0, b"aaaa"), (0, b"aaaa")], ["ok", "duplicate chunk 0: have 0..0"]),
    ("reordered refused", [(1, b"bbbb")], ["out of order or missing: want chunk 0, got 1"]),
    ("short chunk refused", [(0, b"aa")], ["truncated: chunk 0 has 2 bytes, want 4"]),
    ("long last chunk refused", [(0, b"aaaa"), (1, b"bbbb"), (2, b"ccc")], ["ok", "ok", "truncated: chunk 2 has 3 bytes, want 2"]),
    ("index out of range", [(3, b"x")], ["chunk 3 out of range 0..2"]),
)
for name, steps, want in XFER:
    t = tr()
    got = [attempt(t, i, d) for i, d in steps]
    out("transfer", name, got == want, got)
try:
    Transfer({"id": "x"}, HDR, 2, 4)
    out("transfer", "envelope that can't hold size", False, "accepted")
except FFError as e:
    out("transfer", "envelope that can't hold size", True, e.args[0])

# Block device faults (its 4 KB blocks want a collected heap: this script
# runs the firmware from source at 64k, where compiling takes most of it)
import gc
gc.collect()
bd = FileBlockDev("var/agent_cores.img", block_count=8, block_size=4096, cow=True)
f = FaultBlockDev(bd, cut_after=2)
r1 = f.writeblocks(0, b"A" * 16, 0)
r2 = f.writeblocks(1, b"B" * 16, 0)
r3 = f.writeblocks(2, b"C" * 16, 0)
r4 = f.ioctl(6, 3)
buf = bytearray(16)
bd.readblocks(2, buf, 0)
out("blockdev", "cut after N writes: write N+1 and later fail, nothing lands",
    (r1, r2, r3, r4) == (None, None, -5, -5) and f.dead and buf == b"\xff" * 16, [r1, r2, r3, r4])

bd.restore({})
f = FaultBlockDev(bd, cut_after=3, lose_unsynced=True)
f.writeblocks(0, b"S" * 16, 0)
f.ioctl(3, 0)  # sync
f.writeblocks(1, b"U" * 16, 0)
seen = bytearray(16)
f.readblocks(1, seen, 0)  # reads see the unsynced write
f.writeblocks(2, b"U" * 16, 0)
cut = f.writeblocks(3, b"X" * 16, 0)
a = bytearray(16)
b = bytearray(16)
bd.readblocks(0, a, 0)
bd.readblocks(1, b, 0)
out("blockdev", "lossy: synced writes survive, unsynced ones die with the power",
    cut == -5 and a == b"S" * 16 and b == b"\xff" * 16 and seen == b"U" * 16 and f.lost == 2,
    [cut, list(a[:2]), list(b[:2]), f.lost])
bd.close()
