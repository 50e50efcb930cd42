# Device-side verification of a signed program envelope.
#
# docs/device-protocol.md, "Envelope": the device re-checks everything the
# cloud already checked (defence in depth), in this order: signature, size
# against the board's budget, sha over the bytes, then the program itself
# (fleetflow.program.load_program). The sequence number is the agent's to
# check: it alone knows the last one it accepted.
#
# Every public function raises fleetflow.errors.FFError -- and only that --
# with a reason for the `rejected` ack; whatever the input, never a crash.
#
# Inline:    data = verify_inline(env, key, dev, max_bytes)
# Streaming: check_signature(env, key, dev); check_size(env, max_bytes)
#            h = new_digest(); h.update(chunk) for each chunk written to flash
#            check_digest(env, hexdigest(h), written_bytes)
import hashlib
from binascii import hexlify, unhexlify
from micropython import const

from fleetflow.errors import FFError
from fleetflow.hmac256 import compare_digest, hmac_sha256

_SHA_HEX = const(64)
_MAX_FLOW_ID = const(64)
_HEXDIGITS = "0123456789abcdef"


def _want(cond, reason):
    if not cond:
        raise FFError(reason)


def _hex64(env, key):
    v = env.get(key)
    _want(type(v) is str and len(v) == _SHA_HEX, "bad envelope: %s must be 64 hex digits" % key)
    for ch in v:
        _want(ch in _HEXDIGITS, "bad envelope: %s must be lowercase hex" % key)
    return v


def header(env):
    """The checked envelope header: flow, ver, seq, size, sha, sig."""
    _want(type(env) is dict, "bad envelope: want an object")
    flow = env.get("flow")
    _want(type(flow) is str and 0 < len(flow) <= _MAX_FLOW_ID, "bad envelope: flow must be a flow id")
    for k in ("ver", "seq", "size"):
        v = env.get(k)
        _want(type(v) is int and v >= 0, "bad envelope: %s must be an integer >= 0" % k)
    _hex64(env, "sha")
    _hex64(env, "sig")
    return env


def signing_string(env, device_id):
    return ("ff1|%s|%d|%s|%d|%s" % (device_id, env["seq"], env["flow"], env["ver"], env["sha"])).encode()


def _key_bytes(key):
    # the provisioning file keeps the key as hex; callers may pass either
    if type(key) is str:
        try:
            key = unhexlify(key)
        except Exception:
            raise FFError("device key is not hex")
    _want(type(key) in (bytes, bytearray) and len(key) > 0, "no device key")
    return key


def check_signature(env, key, device_id):
    """FFError unless env carries this device's signature over (seq, flow, ver, sha)."""
    try:
        header(env)
        want = hmac_sha256(_key_bytes(key), signing_string(env, device_id))
        got = unhexlify(env["sig"])
    except FFError:
        raise
    except Exception as e:
        raise FFError("bad envelope: %s" % e)
    _want(compare_digest(want, got), "bad signature (wrong key, another device's envelope, or altered)")


def check_size(env, max_bytes):
    size = env["size"]
    _want(0 < size, "truncated: empty program")
    _want(size <= max_bytes, "oversized: %d > %d bytes" % (size, max_bytes))


def new_digest():
    """A running sha256 to feed chunk by chunk (h.update(chunk))."""
    return hashlib.sha256()


def hexdigest(h):
    return hexlify(h.digest()).decode()


def check_digest(env, sha_hex, size=None):
    """FFError unless sha_hex (of the bytes received) is the envelope's sha.

    `size`, when given, is how many bytes were received: a short transfer
    says 'truncated' rather than 'sha mismatch'.
    """
    if size is not None:
        _want(size == env["size"], "truncated: %d of %d bytes" % (size, env["size"]) if size < env["size"]
              else "size mismatch: %d bytes, envelope says %d" % (size, env["size"]))
    _want(type(sha_hex) is str and len(sha_hex) == _SHA_HEX, "bad digest")
    _want(compare_digest(sha_hex.encode(), env["sha"].encode()), "corrupted: sha mismatch")


def verify_inline(env, key, device_id, max_bytes=None):
    """The program bytes of an envelope with `prog` inline, once every check passed."""
    try:
        check_signature(env, key, device_id)
        if max_bytes is not None:
            check_size(env, max_bytes)
        prog = env.get("prog")
        _want(type(prog) is str, "bad envelope: no inline prog")
        data = prog.encode()
        h = new_digest()
        h.update(data)
        check_digest(env, hexdigest(h), len(data))
        return data
    except FFError:
        raise
    except Exception as e:  # defence in depth: a reason, never a crash
        raise FFError("bad envelope: %s %s" % (type(e).__name__, e))


def verify_program(env, key, device_id, table, board):
    """verify_inline, then the program's own checks; returns the loaded Program."""
    from fleetflow.program import load_program

    data = verify_inline(env, key, device_id, board.get("program_max_bytes"))
    try:
        return load_program(data, table, board)
    except FFError:
        raise
    except Exception as e:
        raise FFError("bad program: %s %s" % (type(e).__name__, e))
