"""The cloud-to-device command protocol: command ids, the messages of each
op, and the parsing of an id an ack carries back (docs/device-protocol.md,
"Commands"). The one owner of these; the rollout and execution stores build
their commands here and the driver parses acks' ids here.

Ids: `<owner>.<device>.<step>`, the owner a deployment (`dep_...`) or an
execution (`exe_...`), the step the op (`deploy`, `stage`, `activate`,
`rollback`, `cancel` for a deployment; `exec`, `cancel` for an execution).
An id names one command for good: a re-send is the same id and bytes, and
the device acks a repeated id without applying it again. Device ids may hold
dots (a topic level allows them), owner ids and steps never do, so an id is
split at its first and last dot. Chunks of a big program are
`<id>.<i>` (shared_schema.envelope.chunked) and are not acked as commands.

Signing is shared_schema.envelope's (the envelope of a program, `csig` of
the other state-changing ops); this module only says what each op carries.
"""

from __future__ import annotations

from typing import NamedTuple

from shared_schema.compiler import CompiledProgram
from shared_schema.envelope import chunked, make_envelope, needs_chunks, signed_command

DEPLOYMENT_STEPS = ("deploy", "stage", "activate", "rollback", "cancel")
EXECUTION_STEPS = ("exec", "cancel")
DEPLOYMENT_PREFIX = "dep_"
EXECUTION_PREFIX = "exe_"


class CommandRef(NamedTuple):
    """What a command id names: whose command (a deployment or an
    execution, `kind`), for which device, which step."""

    kind: str  # "deployment" | "execution"
    owner: str
    device: str
    step: str


def command_id(owner_id: str, device_id: str, step: str) -> str:
    return f"{owner_id}.{device_id}.{step}"


def parse_command_id(cmd_id: str) -> CommandRef | None:
    """The CommandRef of an id made by `command_id`; None for anything else
    (a ping, a chunk, an id of another kind of owner, a step the owner
    does not have)."""
    owner, sep, rest = cmd_id.partition(".")
    device, sep2, step = rest.rpartition(".")
    if not (sep and sep2 and owner and device):
        return None
    if owner.startswith(EXECUTION_PREFIX) and step in EXECUTION_STEPS:
        return CommandRef("execution", owner, device, step)
    if owner.startswith(DEPLOYMENT_PREFIX) and step in DEPLOYMENT_STEPS:
        return CommandRef("deployment", owner, device, step)
    return None


# -- the messages of each op ---------------------------------------------------------

def program_messages(cmd_id: str, op: str, program: CompiledProgram, device_id: str, key: bytes, seq: int,
                     health: dict | None = None) -> list[dict]:
    """`deploy` or `stage`: the envelope (seq = its sequence number) inline,
    or its head followed by the chunk commands when the program is big.
    A deploy carries the health rule the device applies on trial."""
    if op not in ("deploy", "stage"):
        raise ValueError(f"{op!r} carries no program (deploy, stage)")
    if needs_chunks(program):
        envelope, parts = chunked(program, device_id, key, seq, cmd_id)
    else:
        envelope, parts = make_envelope(program, device_id, key, seq), []
    head = {"id": cmd_id, "op": op, **envelope}
    if op == "deploy":
        head["health"] = health
    return [head, *parts]


def activate_message(cmd_id: str, staged_seq: int, health: dict, device_id: str, key: bytes, cseq: int) -> dict:
    """Activate the program staged with sequence number `staged_seq`."""
    return signed_command(cmd_id, "activate", {"seq": staged_seq, "health": health}, device_id, key, cseq)


def rollback_message(cmd_id: str, reason: str, device_id: str, key: bytes, cseq: int) -> dict:
    return signed_command(cmd_id, "rollback", {"reason": reason}, device_id, key, cseq)


def cancel_message(cmd_id: str, target: str | None, device_id: str, key: bytes, cseq: int) -> dict:
    """Cancel the command `target` (an id) if the device has it in hand."""
    return signed_command(cmd_id, "cancel", {"target": target}, device_id, key, cseq)


def exec_message(cmd_id: str, exe_id: str, overrides: dict, program: CompiledProgram, device_id: str, key: bytes,
                 cseq: int) -> dict:
    """Run `program` once with `overrides`: signed with `cseq`, its inline
    envelope with the same number (never stored in a slot, and a recording
    of it is refused as a replay)."""
    return {**signed_command(cmd_id, "exec", {"exec": exe_id, "overrides": overrides}, device_id, key, cseq),
            **make_envelope(program, device_id, key, cseq)}
