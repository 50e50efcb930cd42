# Signed commands: activate, rollback, exec and cancel (docs/device-protocol.md,
# "Signed commands"). stage/deploy carry a signed envelope (fleetflow.verify).
#
# Rules:
#  1. csig = HMAC-SHA256(key, "ff2|<dev>|<cseq>|<id>|<op>|<args>"): the
#     command's id, op, number and arguments are bound to this device. `args`
#     is checked as the text that was signed, then parsed: no float is
#     re-encoded on a board to be compared.
#  2. Each cseq is accepted once. The device keeps a replay window (`fresh`):
#     the highest cseq accepted and a bit for each of the _WINDOW below it, so
#     commands may arrive in another order than the cloud numbered them, and
#     an older one than the window holds is refused.
#  3. The window is written (ff_cseq.json, by rename) before the command does
#     anything: a power cut can lose a command, never apply one twice.
#  4. Then the command holds its own fields and its signed args, nothing else
#     (an inline exec's envelope stays: it is signed apart, with seq = cseq).
#  5. Any failure is a `rejected` ack (an FFError's text is its reason) and
#     nothing has changed; a failure after the window is written (a signed
#     `args` that is not an object: a cloud bug) loses the cseq, nothing more.
#
# Cold code: imported for one signed command and let go at once
# (fleetflow.commands._signed), so none of it is in the heap when a program
# is loaded, a deploy's peak.
import json
from binascii import unhexlify
from micropython import const

from fleetflow.errors import FFError
from fleetflow.hmac256 import compare_digest, hmac_sha256

_CMD_KEYS = ("id", "op", "cseq")
_EXEC_KEYS = ("flow", "ver", "seq", "size", "sha", "sig", "prog")
_WINDOW = const(30)      # cseqs remembered below the highest: a small int on every port
_FULL = const(0x3fffffff)


def fresh(window, cseq):
    """The replay window [highest cseq accepted, mask] once cseq is accepted;
    FFError (`replayed...`) when it was used, or is too old to tell.

    Bit i of the mask says cseq `highest - i` was accepted (IPsec's
    anti-replay window, RFC 4303 section 3.4.3)."""
    hi, mask = window
    if cseq > hi:
        d = cseq - hi
        return [cseq, ((mask << d) | 1) & _FULL if d < _WINDOW else 1]
    d = hi - cseq
    if d >= _WINDOW:
        raise FFError("replayed or older cseq: %d <= %d" % (cseq, hi - _WINDOW))
    if mask >> d & 1:
        raise FFError("replayed: cseq %d was used" % cseq)
    return [hi, mask | 1 << d]


def open_command(cmd, key, device_id, slots):
    """Let a signed command in (rules 1-4), or raise: FFError with the reason,
    or ValueError/OSError (a signed args that is not JSON, a flash that can't
    be written), which the caller answers as a refusal too."""
    cseq = cmd.get("cseq")
    args = cmd.get("args")
    sig = cmd.get("csig")
    if type(cseq) is not int or type(args) is not str or type(sig) is not str:
        raise FFError("unsigned: %s needs cseq, args and csig" % cmd["op"])
    try:
        sig = unhexlify(sig)
    except ValueError:
        sig = b""
    msg = "ff2|%s|%d|%s|%s|%s" % (device_id, cseq, cmd["id"], cmd["op"], args)
    if not compare_digest(hmac_sha256(key, msg.encode()), sig):
        raise FFError("bad signature (wrong key, another device's command, or altered)")
    args = json.loads(args)
    try:
        with open(slots.path("cseq.json")) as f:
            hi, mask = json.load(f)  # written by rename: never torn; a new device has none
    except (OSError, ValueError, TypeError):
        hi = mask = 0
    slots.write_atomic("cseq.json", json.dumps(fresh([hi, mask], cseq)))
    keep = _EXEC_KEYS if cmd["op"] == "exec" else ()
    for k in list(cmd):
        if k not in _CMD_KEYS and k not in keep:
            del cmd[k]
    cmd.update(args)
