# Table-driven check of a signed command's replay window (fleetflow.cmdsig.fresh),
# run under MicroPython. Prints one JSON line per case: {"case", "got", "want",
# "input_unchanged"}; "got" is the new window or the refusal's reason.
import json
from fleetflow.cmdsig import fresh
from fleetflow.errors import FFError

# (name, window [highest, mask], cseq, expected window or reason)
CASES = (
    ("the first command ever", [0, 0], 1, [1, 1]),
    ("the next one", [1, 1], 2, [2, 3]),
    ("a jump forward keeps what is still in the window", [2, 3], 12, [12, 0b110000000001]),
    ("a jump of the whole window forgets the rest", [2, 3], 40, [40, 1]),
    ("a jump of one short of it keeps the oldest bit", [1, 1], 30, [30, (1 << 29) | 1]),
    ("the highest again is a replay", [12, 1], 12, "replayed: cseq 12 was used"),
    ("one below, used, is a replay", [12, 3], 11, "replayed: cseq 11 was used"),
    ("one below, unused, arrives late: taken", [12, 1], 11, [12, 3]),
    ("the oldest the window holds, unused: taken", [40, 1], 11, [40, 1 | (1 << 29)]),
    ("older than the window: refused", [40, 1], 10, "replayed or older cseq: 10 <= 10"),
    ("far older: refused", [40, 1], 1, "replayed or older cseq: 1 <= 10"),
    ("the mask never outgrows the window", [100, 0x3fffffff], 101, [101, 0x3fffffff]),
)

for name, window, cseq, want in CASES:
    before = list(window)
    try:
        got = fresh(window, cseq)
    except FFError as e:
        got = e.args[0]
    print(json.dumps({"case": name, "got": got, "want": want, "input_unchanged": window == before}))
