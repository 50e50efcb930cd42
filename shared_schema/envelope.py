"""Signed envelopes around compiled programs (docs/device-protocol.md, "Envelope").

`sig = HMAC-SHA256(device_key, "ff1|<dev>|<seq>|<flow>|<ver>|<sha>")`. The
signature binds the program digest to one device and one sequence number, so
an envelope can be neither replayed on another device nor re-ordered. The
device-side check is firmware/fleetflow/verify.py.

A program that does not fit one MQTT message travels in chunks: the envelope
then carries `chunks` and `chunk_size` instead of `prog`, and `chunk`
commands `{id, op: "chunk", xfer, i, data}` (data base64) follow.

The other commands that change a device's state -- `activate`, `rollback`,
`exec`, `cancel` -- are signed too (`signed_command`): their arguments travel
as canonical JSON text in `args`, and
`csig = HMAC-SHA256(device_key, "ff2|<dev>|<cseq>|<id>|<op>|<args>")`, so the
device checks the very bytes that were signed (no re-encoding of floats on a
board) and every field is bound to one device, one command id and one fresh
`cseq` from the device's sequence counter, which the device accepts once
(docs/device-protocol.md, "Signed commands"). An `exec` with an inline
program signs that program's envelope with the same number as its `cseq`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from shared_schema.compiler import CompiledProgram

SIG_VERSION = "ff1"
# base64 makes a chunk command ~700 bytes. A device's heap after a few deploys
# has plenty free but in pieces: the command's bytes, its parsed base64 text
# and the decoded chunk are three blocks alive at once, and at 1 KB chunks
# (1.4 KB blocks) a device with 25 KB free could not parse one (bench agent).
DEFAULT_CHUNK_BYTES = 512
MAX_INLINE_BYTES = 4096  # a bigger program travels in chunks
# The largest MQTT packet anyone may send (the broker's max_packet_size,
# tools/infra/broker.py): the biggest legitimate message is a command with a
# program of MAX_INLINE_BYTES inline, whose JSON text at most doubles when
# escaped into the envelope (every byte a quote), plus the envelope's fields
# and exec overrides: under 9 KB. Chunks are ~1.4 KB, device messages ~1 KB
# (a runs message stops growing at 1 KB). It equals the boards'
# `msg_max_bytes` (the most a device reads into RAM; a test keeps every
# board at or above it), so whatever the broker lets through fits a device,
# and the 200 KB message that wedged one (issue 10, item 3) stops at the broker.
MAX_PACKET_BYTES = 12288
# The largest command the cloud publishes: a packet is the command's JSON
# plus the topic (`<prefix>/<device id>/cmd`, device ids up to 64 characters)
# and at most 9 bytes of MQTT header, so 256 bytes are left for those. A
# bigger one would get the cloud's own link cut by the broker.
MAX_COMMAND_BYTES = MAX_PACKET_BYTES - 256


CMD_SIG_VERSION = "ff2"
SIGNED_OPS = ("activate", "rollback", "exec", "cancel")


def signing_string(device_id: str, seq: int, flow: str, ver: int, sha: str) -> bytes:
    return f"{SIG_VERSION}|{device_id}|{seq}|{flow}|{ver}|{sha}".encode()


def sign(key: bytes, device_id: str, seq: int, flow: str, ver: int, sha: str) -> str:
    """The envelope signature, hex."""
    return hmac.new(key, signing_string(device_id, seq, flow, ver, sha), hashlib.sha256).hexdigest()


def verify(envelope: dict, key: bytes, device_id: str) -> bool:
    """Host-side check of an envelope's signature (the device has its own)."""
    try:
        expected = sign(key, device_id, envelope["seq"], envelope["flow"], envelope["ver"], envelope["sha"])
        return hmac.compare_digest(expected, str(envelope["sig"]))
    except (KeyError, TypeError):
        return False


def command_signing_string(device_id: str, cseq: int, cmd_id: str, op: str, args: str) -> bytes:
    return f"{CMD_SIG_VERSION}|{device_id}|{cseq}|{cmd_id}|{op}|{args}".encode()


def signed_command(cmd_id: str, op: str, args: dict, device_id: str, key: bytes, cseq: int) -> dict:
    """A state-changing command (`SIGNED_OPS`) signed for one device:
    `{id, op, cseq, args, csig}`, `args` the canonical JSON text of the
    command's arguments. `cseq` must be fresh: a number from the device's
    counter that no other command to it carried."""
    if op not in SIGNED_OPS:
        raise ValueError(f"{op!r} is not a signed command: {', '.join(SIGNED_OPS)}")
    if isinstance(cseq, bool) or not isinstance(cseq, int) or cseq < 1:
        raise ValueError(f"cseq must be an integer >= 1, got {cseq!r}")
    text = json.dumps(args, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    csig = hmac.new(key, command_signing_string(device_id, cseq, cmd_id, op, text), hashlib.sha256).hexdigest()
    return {"id": cmd_id, "op": op, "cseq": cseq, "args": text, "csig": csig}


def verify_command(cmd: dict, key: bytes, device_id: str) -> bool:
    """Host-side check of a signed command's `csig` (the device has its own)."""
    try:
        text = command_signing_string(device_id, cmd["cseq"], cmd["id"], cmd["op"], cmd["args"])
        return hmac.compare_digest(hmac.new(key, text, hashlib.sha256).hexdigest(), str(cmd["csig"]))
    except (KeyError, TypeError):
        return False


def command_args(cmd: dict) -> dict:
    """The arguments of a signed command (its `args` parsed)."""
    return json.loads(cmd["args"])


def _head(program: CompiledProgram, device_id: str, key: bytes, seq: int) -> dict:
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ValueError(f"seq must be an integer >= 0, got {seq!r}")
    return {
        "flow": program.flow,
        "ver": program.ver,
        "seq": seq,
        "size": program.size,
        "sha": program.sha256,
        "sig": sign(key, device_id, seq, program.flow, program.ver, program.sha256),
    }


def make_envelope(program: CompiledProgram, device_id: str, key: bytes, seq: int) -> dict:
    """An envelope with the program inline (`prog`). For an inline `exec`,
    seq is the command's `cseq`."""
    env = _head(program, device_id, key, seq)
    env["prog"] = program.text
    return env


def chunked(program: CompiledProgram, device_id: str, key: bytes, seq: int, xfer: str,
            chunk_size: int = DEFAULT_CHUNK_BYTES) -> tuple[dict, list[dict]]:
    """An envelope without `prog`, and the `chunk` commands that carry it.

    `xfer` is the id of the stage/deploy command the envelope travels in;
    chunk command ids are `<xfer>.<i>`, so a re-sent chunk is recognised.
    """
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    env = _head(program, device_id, key, seq)
    parts = [program.data[i:i + chunk_size] for i in range(0, program.size, chunk_size)] or [b""]
    env["chunks"] = len(parts)
    env["chunk_size"] = chunk_size
    commands = [
        {"id": f"{xfer}.{i}", "op": "chunk", "xfer": xfer, "i": i, "data": base64.b64encode(part).decode("ascii")}
        for i, part in enumerate(parts)
    ]
    return env, commands


def needs_chunks(program: CompiledProgram, max_inline_bytes: int = MAX_INLINE_BYTES) -> bool:
    """Whether a program is too big to travel inline in one command."""
    return program.size > max_inline_bytes
