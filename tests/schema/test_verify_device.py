"""The device-side verifier under MicroPython: good envelopes pass, bad ones are refused with a reason.

The envelopes are made on the host with shared_schema (the real signing
code), then fed in one batch to firmware/fleetflow/verify.py running under
the MicroPython unix port with the unix-sim board's heap.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from shared_schema.catalog import canonical_json
from shared_schema.compiler import CompiledProgram, compile_program
from shared_schema.envelope import chunked, make_envelope

from .test_validate_table import BASE

REPO = Path(__file__).resolve().parents[2]
KEY = bytes(range(1, 33))
DEV = "dev-7"
_FULL_BOARD = json.loads((REPO / "boards" / "unix-sim.json").read_text())
# What the device needs of its board file; the citations and notes stay on the host.
BOARD = {k: _FULL_BOARD[k] for k in ("name", "port", "program_max_bytes", "pins", "reserved", "nodes")}

# Line 1 of stdin: {board, key, dev}; then one envelope per line, verified
# one at a time as a device would (the whole batch would not fit a 64 KB
# heap); prints one JSON line [ok, reason] per envelope.
DEVICE = r"""
import sys, json, gc
from fleetflow import verify
from fleetflow.errors import FFError
from fleetflow.nodetable import load_table
head = json.loads(sys.stdin.readline())
board = head["board"]
table = load_table(board["nodes"])
key = bytes(head["key"])
while True:
    line = sys.stdin.readline()
    if not line:
        break
    env = json.loads(line)
    line = None
    try:
        p = verify.verify_program(env, key, head["dev"], table, board)
        print(json.dumps([True, "%d nodes" % len(p.ids)]))
    except FFError as e:
        print(json.dumps([False, str(e)]))
    except Exception as e:  # anything else escaping is a bug: report it as such
        print(json.dumps([None, "%s: %s" % (type(e).__name__, e)]))
    env = p = None
    gc.collect()
"""


def verdicts(mpy, envelopes, heap=None) -> list:
    head = json.dumps({"board": BOARD, "key": list(KEY), "dev": DEV})
    stdin = "\n".join([head] + [json.dumps(e) for e in envelopes]) + "\n"
    kw = {"heap": heap} if heap else {"board": "unix-sim"}
    return [json.loads(line) for line in mpy.check(DEVICE, stdin=stdin, **kw).lines]



def _signed_raw(program: dict, key: bytes = KEY, seq: int = 5) -> dict:
    """An envelope around a hand-made program (one the compiler would refuse to make)."""
    data = canonical_json(program)
    prog = CompiledProgram(data, hashlib.sha256(data).hexdigest(), len(data), program["flow"], program["ver"], "unix-sim")
    return make_envelope(prog, DEV, key, seq)


def _cases():
    good = compile_program(BASE, "unix-sim", "flow_abc", 3)
    env = make_envelope(good, DEV, KEY, 5)
    doc = json.loads(good.data)
    flipped = bytearray(good.data)
    flipped[40] ^= 0x04
    unknown = json.loads(good.data)
    unknown["nodes"][2]["type"] = "flamethrower"
    wrong_type = json.loads(good.data)
    wrong_type["nodes"][0]["params"]["retries"] = "2"
    cyclic = json.loads(good.data)
    cyclic["edges"].append([3, 0, 1])
    other_board = dict(doc, board="esp32-devkitc")
    other_sha = "0" * 64
    big = dict(env, size=BOARD["program_max_bytes"] + 1)
    return [
        ("good", env, True, "4 nodes"),
        ("truncated", dict(env, prog=env["prog"][:-20]), False, "truncated"),
        ("bit-flipped", dict(env, prog=flipped.decode()), False, "sha mismatch"),
        ("wrong key", make_envelope(good, DEV, b"not the device key", 5), False, "bad signature"),
        ("another device's", make_envelope(good, "dev-8", KEY, 5), False, "bad signature"),
        ("wrong sha", dict(env, sha=other_sha), False, "bad signature"),
        ("wrong sha, re-signed", dict(env, sha=other_sha, sig=hmac.new(KEY, f"ff1|{DEV}|5|flow_abc|3|{other_sha}".encode(), hashlib.sha256).hexdigest()), False, "sha mismatch"),
        ("seq altered", dict(env, seq=6), False, "bad signature"),
        ("size altered past the budget", big, False, "oversized"),
        ("unknown node", _signed_raw(unknown), False, "unknown node type flamethrower"),
        ("wrong param type", _signed_raw(wrong_type), False, "n1.retries"),
        ("cycle", _signed_raw(cyclic), False, "backward"),
        ("other board", _signed_raw(other_board), False, "compiled for esp32-devkitc"),
        ("no nodes", _signed_raw({"flow": "x", "ver": 1, "f": 1}), False, "program.nodes"),
        ("sig not hex", dict(env, sig="zz" * 32), False, "hex"),
        ("no sig", {k: v for k, v in env.items() if k != "sig"}, False, "sig"),
        ("not an object", ["flow"], False, "want an object"),
        ("ver is text", dict(env, ver="3"), False, "ver must be an integer"),
        ("no prog", {k: v for k, v in env.items() if k != "prog"}, False, "no inline prog"),
    ]


CASES = _cases()


@pytest.fixture(scope="module")
def device_verdicts(mpy):
    return verdicts(mpy, [c[1] for c in CASES])


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c[0] for c in CASES])
def test_device_verdict(device_verdicts, index):
    name, _env, ok, reason = CASES[index]
    got_ok, got_reason = device_verdicts[index]
    assert got_ok is ok, f"{name}: {got_reason}"
    assert reason in got_reason, f"{name}: {got_reason}"


def test_oversized_is_refused_by_size_before_the_sha(mpy):
    # A correctly signed envelope whose program exceeds the board's budget.
    doc = json.loads(compile_program(BASE, "unix-sim", "flow_abc", 3).data)
    doc["vars"]["padding"] = "x" * BOARD["program_max_bytes"]
    env = _signed_raw(doc)
    # An envelope this big arrives in chunks on a real device; inline it needs
    # a contiguous 9 KB string, hence the larger heap for this one case.
    [[ok, reason]] = verdicts(mpy, [env], heap="256k")
    assert ok is False and reason.startswith("oversized")


def test_streamed_chunks_verify_with_the_running_digest(mpy):
    program = compile_program(BASE, "unix-sim", "flow_abc", 3)
    env, chunks = chunked(program, DEV, KEY, 9, xfer="c1", chunk_size=64)
    code = r"""
import sys, json
from binascii import a2b_base64
from fleetflow import verify
from fleetflow.errors import FFError
b = json.loads(sys.stdin.read())
env, key = b["env"], bytes(b["key"])
out = []
for drop in (None, 2):
    verify.check_signature(env, key, b["dev"])
    verify.check_size(env, 8192)
    h = verify.new_digest()
    n = 0
    for c in b["chunks"]:
        if c["i"] == drop:
            continue
        data = a2b_base64(c["data"])
        h.update(data)
        n += len(data)
    try:
        verify.check_digest(env, verify.hexdigest(h), n)
        out.append("ok")
    except FFError as e:
        out.append(str(e))
print(json.dumps(out))
"""
    got = mpy.json(code, stdin=json.dumps({"env": env, "chunks": chunks, "key": list(KEY), "dev": DEV}), board="unix-sim")
    assert got[0] == "ok" and got[1].startswith("truncated")


def test_hmac_matches_cpython_for_every_key_length(mpy):
    keys = [b"", b"k", bytes(range(64)), bytes(range(65)), bytes(range(200))[:150]]
    msgs = [b"", b"ff1|dev|1|f|1|" + b"a" * 64, bytes(range(256)) * 3]
    code = r"""
import sys, json
from binascii import hexlify
from fleetflow.hmac256 import hmac_sha256, compare_digest
b = json.loads(sys.stdin.read())
out = [hexlify(hmac_sha256(bytes(k), bytes(m))).decode() for k in b["keys"] for m in b["msgs"]]
out.append([compare_digest(b"abc", b"abc"), compare_digest(b"abc", b"abd"), compare_digest(b"abc", b"ab")])
print(json.dumps(out))
"""
    got = mpy.json(code, stdin=json.dumps({"keys": [list(k) for k in keys], "msgs": [list(m) for m in msgs]}))
    assert got[:-1] == [hmac.new(k, m, hashlib.sha256).hexdigest() for k in keys for m in msgs]
    assert got[-1] == [True, False, False]
