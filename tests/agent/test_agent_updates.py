"""The device agent end to end: real firmware under MicroPython, a real broker, paho as the cloud.

One scenario per broker (Mosquitto and amqtt): the device boots and comes
online; v1 deploys and confirms; a v2 that fails on trial rolls back to v1
by itself with the reason acked; v3 (chunked) confirms; a broker restart in
the middle of a chunked update ends with the update applied once; a boot
loop on trial rolls back.
"""

from __future__ import annotations

import time

import pytest

from agent_flows import DEV, QUICK, chunked_cmds, deploy_cmd, failing_flow, good_flow, rig, signed

KINDS = ["mosquitto", "amqtt"]


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_update_lifecycle(kind, tmp_path):
    with rig(tmp_path, kind) as r:
        # boots and comes online, with what the cloud needs to know
        st = r.status(lambda s: s.get("state") == "online")
        assert st["board"] == "unix-sim" and st["slot"] is None and len(st["nt_hash"]) == 64
        assert "inject" in st["types"] and st["heap"] > 0

        # v1 deploys and confirms
        r.send(deploy_cmd("d1", good_flow(1), ver=1, seq=1))
        assert r.ack("d1", "staged")["state"] == "staged"
        applied = r.ack("d1", "applied")
        assert applied["slot"] == "a" and applied["seq"] == 1
        r.ack("d1", "healthy")
        st = r.status(lambda s: s.get("ver") == 1 and s.get("trial") is False)
        assert st["slot"] == "a" and st["seq"] == 1
        assert r.cloud.wait_json(f"ff/{DEV}/out/tick")["value"] == 2  # the flow runs: 1 + 1
        runs = r.cloud.wait_json(f"ff/{DEV}/runs", lambda m: any(x["ver"] == 1 for x in m["runs"]))
        assert runs["dev"] == DEV and runs["runs"][0]["status"] == "completed"

        # v2 fails every run on trial: rolled back to v1 by the device itself
        r.send(deploy_cmd("d2", failing_flow(), ver=2, seq=2))
        assert r.ack("d2", "applied")["slot"] == "b"
        rb = r.ack("d2", "rolled_back")
        assert rb["reason"].startswith("error_rate") and rb["slot"] == "a"
        # the root cause travels with it: the failing node (step 2, the switch) and its error
        assert rb["reason"].split("; ", 1)[1].startswith("s2: ")
        st = r.status(lambda s: s.get("failed") is not None)
        assert st["ver"] == 1 and st["slot"] == "a" and st["seq"] == 1 and st["failed"]["slot"] == "b"

        # v3, in chunks, confirms (seq 3 > 1: the failed v2 never raised the accepted seq)
        env, chunks = chunked_cmds("d3", good_flow(3), ver=3, seq=3)
        r.send(env)
        assert r.ack("d3", "received")["next"] == 0
        for c in chunks:
            r.send(c)
        r.ack("d3", "healthy")
        assert r.status(lambda s: s.get("ver") == 3 and not s["trial"])["seq"] == 3

        # a repeated command is acked again, not applied again
        r.send(deploy_cmd("d3", good_flow(3), ver=3, seq=3))
        again = r.cloud.wait_json(f"ff/{DEV}/ack", lambda a: a.get("id") == "d3" and a.get("repeat"))
        assert again["state"] == "healthy"

        # broker restart in the middle of a chunked update: resumes, applied once
        env, chunks = chunked_cmds("d4", good_flow(4), ver=4, seq=4)
        assert len(chunks) >= 4
        r.send(env)
        half = len(chunks) // 2
        for c in chunks[:half]:
            r.send(c)
        r.cloud.wait_json(f"ff/{DEV}/ack", lambda a: a.get("id") == f"d4.{half - 1}")
        r.restart_broker()
        r.send(env)  # the cloud re-sends the envelope after a reconnect
        resume = r.cloud.wait_json(f"ff/{DEV}/ack", lambda a: a.get("id") == "d4" and a.get("next") == half)
        assert resume["state"] == "received"
        for c in chunks[resume["next"]:]:
            r.send(c)
        r.ack("d4", "healthy")
        applied = [a for a in r.acks("d4") if a["state"] == "applied" and not a.get("repeat")]
        assert len(applied) == 1

        # a boot loop on trial rolls back: the boot is counted before the flow runs
        r.send(deploy_cmd("d5", good_flow(5), ver=5, seq=5, health={"runs": 1, "seconds": 600}))
        r.ack("d5", "applied")
        for _ in range(3):
            n_before = r.n_status()
            r.device.kill()
            r.device.start()
            st = r.online_since(n_before)
            if not st["trial"]:
                break
        rb = r.ack("d5", "rolled_back")
        assert rb["reason"] == "boot_loop"
        st = r.status(lambda s: s.get("state") == "online" and s.get("ver") == 4 and not s["trial"])
        assert st["seq"] == 4


@pytest.mark.broker
def test_flows_keep_running_while_the_broker_is_away(tmp_path):
    with rig(tmp_path, "mosquitto", settings={"runs_buffer": 4}) as r:
        r.status(lambda s: s.get("state") == "online")
        r.send(deploy_cmd("d1", good_flow(1, every="100ms"), ver=1, seq=1))
        r.ack("d1", "healthy")
        r.broker.stop()
        time.sleep(2.0)  # ~20 runs while offline; the buffer keeps 4
        n_before = r.n_status()
        r.broker.start()
        r.online_since(n_before)
        batch = r.cloud.wait_json(f"ff/{DEV}/runs", lambda m: m.get("dropped", 0) > 0)
        assert batch["dropped"] >= 5  # oldest dropped and counted, newest kept
        health = r.cloud.wait_json(f"ff/{DEV}/health", lambda h: h.get("reconnects", 0) >= 2)
        assert health["runs"] >= 15  # the flow ran on without the broker


@pytest.mark.broker
def test_stage_then_activate_and_commanded_rollback(tmp_path):
    # blue-green's shape: stage everywhere, then switch; rollback is one switch back
    with rig(tmp_path, "mosquitto") as r:
        r.status(lambda s: s.get("state") == "online")
        r.send(signed("a0", "activate", 1, seq=1))
        assert r.ack("a0", "rejected")["reason"] == "nothing staged"
        r.send(deploy_cmd("d1", good_flow(1), ver=1, seq=1))
        r.ack("d1", "healthy")

        r.send(deploy_cmd("s2", good_flow(2), ver=2, seq=2, op="stage"))
        staged = r.ack("s2", "staged")
        assert staged["slot"] == "a"  # still running v1 from slot a
        time.sleep(0.5)
        assert r.status()["ver"] == 1
        r.send(signed("a2", "activate", 2, seq=3))
        assert "staged seq is 2" in r.ack("a2", "rejected")["reason"]
        # unsigned, or with a field changed after signing: refused, nothing switches
        r.send({"id": "a2x", "op": "activate", "seq": 2, "health": QUICK})
        assert r.ack("a2x", "rejected")["reason"] == "unsigned: activate needs cseq, args and csig"
        tampered = signed("a2y", "activate", 3, seq=2, health=QUICK)
        tampered["args"] = tampered["args"].replace('"runs":2', '"runs":0')
        assert '"runs":0' in tampered["args"]
        r.send(tampered)
        assert r.ack("a2y", "rejected")["reason"].startswith("bad signature")
        time.sleep(0.3)
        assert r.status()["ver"] == 1 and r.status()["slot"] == "a"
        r.send(signed("a2b", "activate", 4, seq=2, health=QUICK))
        assert r.ack("a2b", "applied")["slot"] == "b"
        r.ack("a2b", "healthy")
        assert r.status(lambda s: s.get("ver") == 2 and not s["trial"])["seq"] == 2

        # issue 10 item 5: an unsigned rollback took a device from v2 to v1
        r.send({"id": "rb0", "op": "rollback", "reason": "operator"})
        assert r.ack("rb0", "rejected")["reason"] == "unsigned: rollback needs cseq, args and csig"
        time.sleep(0.3)
        st = r.status()
        assert st["ver"] == 2 and st["slot"] == "b" and not [a for a in r.acks("rb0") if a["state"] != "rejected"]

        r.send(signed("rb", "rollback", 5, reason="operator"))
        rb = r.ack("rb", "rolled_back")
        assert rb["reason"] == "command: operator" and rb["slot"] == "a"
        st = r.status(lambda s: s.get("ver") == 1)
        assert st["slot"] == "a" and st["seq"] == 2  # the accepted seq never goes down
        r.send(signed("rb2", "rollback", 6))
        assert r.ack("rb2", "rejected")["reason"] == "nothing to roll back to"
        # an older seq is still refused after the rollback
        r.send(deploy_cmd("d1b", good_flow(1), ver=1, seq=2))
        assert "seq" in r.ack("d1b", "rejected")["reason"]
