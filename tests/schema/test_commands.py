"""The command protocol (shared_schema.commands): ids made and read back by
one module, and the messages of each op signed as the device checks them."""

from __future__ import annotations

import dataclasses

import pytest

from shared_schema.commands import (
    CommandRef, activate_message, cancel_message, command_id, exec_message, parse_command_id, program_messages,
    rollback_message,
)
from shared_schema.compiler import compile_program
from shared_schema.envelope import command_args, verify, verify_command

from .test_validate_table import STEPS

KEY = b"k" * 32

PARSE = [
    ("a deployment's deploy", "dep_1.d1.deploy", CommandRef("deployment", "dep_1", "d1", "deploy")),
    ("a deployment's cancel", "dep_1.d1.cancel", CommandRef("deployment", "dep_1", "d1", "cancel")),
    ("an execution's exec", "exe_9.d1.exec", CommandRef("execution", "exe_9", "d1", "exec")),
    ("an execution's cancel", "exe_9.d1.cancel", CommandRef("execution", "exe_9", "d1", "cancel")),
    ("a device id with dots", "dep_1.site.a.7.rollback", CommandRef("deployment", "dep_1", "site.a.7", "rollback")),
    ("exec is no deployment step", "dep_1.d1.exec", None),
    ("deploy is no execution step", "exe_9.d1.deploy", None),
    ("an unknown owner", "job_1.d1.deploy", None),
    ("a ping", "ping-42", None),
    ("no device", "dep_1.deploy", None),
    ("an empty device", "dep_1..deploy", None),
    ("a chunk of a deploy", "dep_1.d1.deploy.3", None),
]


@pytest.mark.parametrize("name,cmd_id,expected", PARSE, ids=[row[0] for row in PARSE])
def test_parse_command_id(name, cmd_id, expected):
    assert parse_command_id(cmd_id) == expected


@pytest.mark.parametrize("owner,step", [("dep_1", s) for s in ("deploy", "stage", "activate", "rollback", "cancel")]
                         + [("exe_1", "exec"), ("exe_1", "cancel")])
def test_every_id_made_reads_back(owner, step):
    assert parse_command_id(command_id(owner, "dev.x", step)) == (
        "execution" if owner.startswith("exe_") else "deployment", owner, "dev.x", step)


def _program(ver=1):
    return compile_program(STEPS, "unix-sim", "maint", ver)


def test_program_messages_inline_and_chunked():
    program = _program()
    (head,) = program_messages("dep_1.d1.deploy", "deploy", program, "d1", KEY, 5, {"runs": 3})
    assert head["id"] == "dep_1.d1.deploy" and head["op"] == "deploy" and head["health"] == {"runs": 3}
    assert verify(head, KEY, "d1") and head["prog"] == program.text
    (staged,) = program_messages("dep_1.d1.stage", "stage", program, "d1", KEY, 6)
    assert "health" not in staged and staged["seq"] == 6
    big = dataclasses.replace(program, data=program.data * 40, size=program.size * 40)
    head, *chunks = program_messages("dep_1.d1.deploy", "deploy", big, "d1", KEY, 7, {})
    assert "prog" not in head and head["chunks"] == len(chunks) > 1
    assert [c["id"] for c in chunks[:2]] == ["dep_1.d1.deploy.0", "dep_1.d1.deploy.1"]
    with pytest.raises(ValueError, match="carries no program"):
        program_messages("dep_1.d1.activate", "activate", program, "d1", KEY, 1)


def test_signed_messages_carry_their_arguments():
    cases = [
        (activate_message("dep_1.d1.activate", 6, {"runs": 1}, "d1", KEY, 8), {"seq": 6, "health": {"runs": 1}}),
        (rollback_message("dep_1.d1.rollback", "canary failed", "d1", KEY, 9), {"reason": "canary failed"}),
        (cancel_message("exe_1.d1.cancel", "exe_1.d1.exec", "d1", KEY, 10), {"target": "exe_1.d1.exec"}),
    ]
    for message, args in cases:
        assert verify_command(message, KEY, "d1") and command_args(message) == args
        assert not verify_command(message, KEY, "d2")  # bound to one device


def test_exec_message_signs_its_envelope_with_the_cseq():
    message = exec_message("exe_1.d1.exec", "exe_1", {"params": {}}, _program(), "d1", KEY, 11)
    assert message["op"] == "exec" and message["cseq"] == message["seq"] == 11
    assert verify_command(message, KEY, "d1") and verify(message, KEY, "d1")
    assert command_args(message) == {"exec": "exe_1", "overrides": {"params": {}}}
