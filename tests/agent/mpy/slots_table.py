# Table-driven check of the slot store's pure core (fleetflow.slots.transition).
# Prints one JSON line per case: {"case", "ok", ...}.
import json
from fleetflow.slots import transition, initial_state, phase, MAX_TRIAL_BOOTS
from fleetflow.errors import FFError


def st(**kw):
    s = initial_state()
    s.update(kw)
    return s


CONFIRMED_A = dict(active="a", seq=3)
TRIAL_B = dict(active="b", prev="a", trial=True, seq=3)

# (name, state, event, arg, expected changes or "illegal")
CASES = (
    ("stage into empty device", st(), "staged", "a", {"staged": "a"}),
    ("stage must target the idle slot", st(**CONFIRMED_A), "staged", "a", "illegal"),
    ("stage_begin forgets prev that is about to be overwritten", st(active="a", prev="b", seq=3), "stage_begin", None, {"prev": None}),
    ("no staging during a trial", st(**TRIAL_B), "stage_begin", None, "illegal"),
    ("activate needs something staged", st(**CONFIRMED_A), "activate", None, "illegal"),
    ("activate starts a trial", st(active="a", staged="b", seq=3), "activate", {"runs": 3},
     {"active": "b", "prev": "a", "trial": True, "staged": None, "health": {"runs": 3}}),
    ("boot on trial counts", st(**TRIAL_B), "boot", None, {"boots": 1}),
    ("boot when confirmed changes nothing", st(**CONFIRMED_A), "boot", None, {}),
    ("boot past the limit rolls back", st(boots=MAX_TRIAL_BOOTS, **TRIAL_B), "boot", None,
     {"active": "a", "prev": None, "trial": False, "boots": 0, "failed": {"slot": "b", "reason": "boot_loop"}}),
    ("a watchdog reset past the limit rolls back, named", st(boots=MAX_TRIAL_BOOTS, **TRIAL_B), "boot", "watchdog",
     {"active": "a", "prev": None, "trial": False, "boots": 0,
      "failed": {"slot": "b", "reason": "boot_loop: watchdog reset"}}),
    ("a watchdog reset when confirmed changes nothing", st(**CONFIRMED_A), "boot", "watchdog", {}),
    ("confirm raises the accepted seq", st(**TRIAL_B), "confirm", 4, {"trial": False, "seq": 4}),
    ("confirm never lowers the seq", st(**TRIAL_B), "confirm", 2, {"trial": False}),
    ("confirm only on trial", st(**CONFIRMED_A), "confirm", 4, "illegal"),
    ("rollback on trial goes to prev, keeps the failed slot named", st(**TRIAL_B), "rollback", "crash: x",
     {"active": "a", "prev": None, "trial": False, "failed": {"slot": "b", "reason": "crash: x"}}),
    ("rollback of a first deploy leaves no program", st(active="a", trial=True), "rollback", "error_rate",
     {"active": None, "trial": False, "failed": {"slot": "a", "reason": "error_rate"}}),
    ("commanded rollback when confirmed", st(active="b", prev="a", seq=4), "rollback", "command",
     {"active": "a", "prev": None, "failed": {"slot": "b", "reason": "command"}}),
    ("no rollback without prev", st(**CONFIRMED_A), "rollback", "command", "illegal"),
    ("no rollback on an empty device", st(), "rollback", "command", "illegal"),
)

for name, before, event, arg, want in CASES:
    snapshot = json.dumps(before)
    try:
        after = transition(before, event, arg)
        got = {k: v for k, v in after.items() if before.get(k) != v}
    except FFError as e:
        got = "illegal"
    unchanged = json.dumps(before) == snapshot
    print(json.dumps({"case": name, "ok": got == want and unchanged, "got": got, "want": want,
                      "input_unchanged": unchanged, "phase": phase(before)}))
