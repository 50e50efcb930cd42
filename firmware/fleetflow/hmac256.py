# HMAC-SHA256 (RFC 2104) and a constant-time compare, for MicroPython.
#
# MicroPython has hashlib.sha256 but neither the hmac module nor
# compare_digest; these are the two pieces the envelope check needs.
import hashlib
from micropython import const

_BLOCK = const(64)  # SHA-256 block size in bytes


def hmac_sha256(key, msg):
    """The 32-byte HMAC-SHA256 of `msg` (bytes) under `key` (bytes)."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    k = bytearray(_BLOCK)
    k[:len(key)] = key
    pad = bytearray(_BLOCK)
    for i in range(_BLOCK):
        pad[i] = k[i] ^ 0x36
    inner = hashlib.sha256(pad)
    inner.update(msg)
    for i in range(_BLOCK):
        pad[i] = k[i] ^ 0x5C
    outer = hashlib.sha256(pad)
    outer.update(inner.digest())
    return outer.digest()


def compare_digest(a, b):
    """a == b in time that depends only on the length, never on where they differ.

    A compare that stops at the first wrong byte tells an attacker, by its
    timing, how much of a forged signature was right.
    """
    if len(a) != len(b):
        return False
    r = 0
    for i in range(len(a)):
        r |= a[i] ^ b[i]
    return r == 0
