"""Envelope signing and chunking, topic names, message models, and the definition diff."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac

import pytest
from pydantic import ValidationError

from shared_schema.compiler import compile_program
from shared_schema.diff import diff_definitions
from shared_schema.envelope import chunked, make_envelope, sign, verify
from shared_schema.messages import Ack, Command, Envelope, RunsBatch, Status
from shared_schema.topics import Topics, TopicError

from .test_validate_table import BASE, STEPS, edited

KEY = bytes(range(32))


@pytest.fixture(scope="module")
def program():
    return compile_program(BASE, "unix-sim", "flow_abc", 3)


def test_envelope_signature_is_the_documented_hmac(program):
    env = make_envelope(program, "dev-1", KEY, 7)
    message = f"ff1|dev-1|7|flow_abc|3|{program.sha256}".encode()
    assert env["sig"] == hmac.new(KEY, message, hashlib.sha256).hexdigest()
    assert env["prog"].encode() == program.data and env["size"] == program.size
    assert Envelope(**env).seq == 7
    assert verify(env, KEY, "dev-1")
    assert not verify(env, KEY, "dev-2")  # bound to the device
    assert not verify(dict(env, seq=8), KEY, "dev-1")  # and to the sequence number
    assert not verify(env, b"other key", "dev-1")


def test_chunks_reassemble_to_the_signed_program(program):
    env, commands = chunked(program, "dev-1", KEY, 9, xfer="cmd-42", chunk_size=100)
    assert "prog" not in env and env["chunks"] == len(commands) == -(-program.size // 100)
    assert env["sig"] == sign(KEY, "dev-1", 9, "flow_abc", 3, program.sha256)
    data = b"".join(base64.b64decode(c["data"]) for c in commands)
    assert data == program.data
    assert [(c["op"], c["xfer"], c["i"]) for c in commands] == [("chunk", "cmd-42", i) for i in range(len(commands))]
    assert len({c["id"] for c in commands}) == len(commands)
    for c in commands:
        Command(**c)


def test_topics_and_their_wildcards():
    t = Topics()
    assert [t.status("d1"), t.cmd("d1"), t.ack("d1"), t.health("d1"), t.runs("d1"), t.out("d1", "alert")] == [
        "ff/d1/status", "ff/d1/cmd", "ff/d1/ack", "ff/d1/health", "ff/d1/runs", "ff/d1/out/alert"]
    assert ("ff/+/status", 1) in t.cloud_subscriptions() and ("ff/+/health", 0) in t.cloud_subscriptions()
    assert Topics("acme").all("out") == "acme/+/out/#"
    assert t.parse("ff/d1/out/a/b") == ("d1", "out", "a/b") and t.parse("ff/d1/ack") == ("d1", "ack", None)
    for bad in ("ff/d1", "xx/d1/ack", "ff/d1/nope", "ff/d1/ack/x"):
        with pytest.raises(TopicError):
            t.parse(bad)
    for dev in ("a/b", "+", "#", "", "$SYS"):
        with pytest.raises(TopicError):
            t.cmd(dev)


def test_message_models_accept_the_documented_bodies_and_refuse_bad_ones():
    status = Status(state="online", fw="0.1.0", board="unix-sim", nt_hash="ab", types=["adc"], slot="a", flow="f", ver=3, seq=7, trial=False, heap=41234)
    assert status.slot == "a"
    assert Status(state="offline").trial is False
    ack = Ack(id="c1", op="stage", state="rejected", reason="bad signature", seq=5, slot="b", extra_field=1)
    assert ack.model_dump()["extra_field"] == 1  # newer firmware may say more
    runs = RunsBatch(dev="d1", runs=[{"run": 41, "status": "completed", "us": 812, "nodes": [{"id": "n1", "type": "dht", "us": 310}],
                                      "logs": [["warning", "n1", "retry 1/2"]]}], dropped=0)
    assert runs.runs[0].nodes[0].us == 310
    with pytest.raises(ValidationError):
        Ack(id="c1", state="exploded")
    with pytest.raises(ValidationError):
        Command(id="c1", op="format_flash")


def test_diff_reports_nodes_connections_and_variables():
    new = edited(BASE, ("set", "/definition/nodes/1/config/value", 25),
                 ("set", "/definition/nodes/1/name", "Too hot"),
                 ("del", "/definition/nodes/3"), ("del", "/definition/connections/2"),
                 ("add", "/definition/nodes", {"id": "n5", "type": "log"}),
                 ("add", "/definition/connections", {"source": "n2", "target": "n5", "port": 1}),
                 ("set", "/definition/variables/0/value", "28"))
    d = diff_definitions(BASE, new)
    assert [n["id"] for n in d["nodes"]["added"]] == ["n5"] and [n["id"] for n in d["nodes"]["removed"]] == ["n4"]
    assert d["nodes"]["changed"] == [{"id": "n2", "fields": ["config.value", "name"],
                                      "from": {"config.value": "$threshold", "name": None},
                                      "to": {"config.value": 25, "name": "Too hot"}}]
    assert d["connections"] == {"added": [{"source": "n2", "target": "n5", "port": 1}],
                                "removed": [{"source": "n2", "target": "n4", "port": 1}]}
    assert d["variables"]["changed"][0]["fields"] == ["value"] and not d["same"]
    assert diff_definitions(BASE, copy.deepcopy(BASE))["same"]


def test_diff_of_step_forms_and_moves():
    moved = edited(BASE, ("set", "/definition/nodes/0/x", 140))
    assert diff_definitions(BASE, moved)["nodes"]["changed"][0]["fields"] == ["x"]
    d = diff_definitions(STEPS, edited(STEPS, ("set", "/steps/2/params/level", "error")))
    assert d["nodes"]["changed"] == [{"id": "s3", "fields": ["config.level"], "from": {"config.level": "warning"}, "to": {"config.level": "error"}}]
    assert diff_definitions({}, STEPS)["connections"]["added"] == [{"source": "s1", "target": "s2", "port": 0}, {"source": "s2", "target": "s3", "port": 0}]
