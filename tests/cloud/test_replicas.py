"""Cloud replicas on one PostgreSQL (docs/decisions.md, "Replicas"): leases
taken, kept, lost when not renewed and taken over; events one replica
publishes reach the stream watchers of another over LISTEN/NOTIFY, split
when they are too big for one NOTIFY; shared subscriptions named right.
The failover of a rolling deployment between two `fleetflow serve`
processes is tests/cloud/test_replica_failover.py."""

from __future__ import annotations

import asyncio

import pytest

from cloud.config import Config

pytestmark = pytest.mark.slow


@pytest.fixture
def pg_url(postgres, empty_postgres):  # postgres: the session's cluster (conftest.py)
    return empty_postgres(postgres)


@pytest.fixture
def pg_db(pg_url):
    from cloud import migrations, models
    from cloud.db import Database

    db = Database(pg_url)
    with db.peewee.connection_context():
        migrations.migrate(db.peewee)
    models.database.initialize(db.peewee)
    yield db
    db.peewee.close()


def test_a_lease_is_held_by_one_replica_until_it_expires_or_is_released(pg_db):
    from cloud.store import leases

    keys = ["deployment:dep_1", "execution:exe_1"]
    assert pg_db.call(leases.claim, keys, "a", 100.0, 10.0) == set(keys)
    assert pg_db.call(leases.claim, keys + ["deployment:dep_2"], "b", 105.0, 10.0) == {"deployment:dep_2"}
    assert pg_db.call(leases.holders, keys, 105.0) == {k: "a" for k in keys}
    assert pg_db.call(leases.claim, keys, "a", 108.0, 10.0) == set(keys)  # renewed: now until 118
    assert pg_db.call(leases.claim, keys, "b", 117.0, 10.0) == set()
    # a stops renewing (it died): once its leases expire, b takes them
    assert pg_db.call(leases.holders, keys, 118.5) == {}
    assert pg_db.call(leases.claim, keys, "b", 118.5, 10.0) == set(keys)
    assert pg_db.call(leases.claim, keys, "a", 119.0, 10.0) == set()
    # released on purpose: free at once
    pg_db.call(leases.release, ["deployment:dep_1"], "b")
    assert pg_db.call(leases.claim, ["deployment:dep_1"], "a", 119.0, 10.0) == {"deployment:dep_1"}
    pg_db.call(leases.release, ["execution:exe_1"], "a")  # not a's: nothing happens
    assert pg_db.call(leases.holders, ["execution:exe_1"], 119.0) == {"execution:exe_1": "b"}


def test_two_replicas_claiming_at_once_get_one_lease_each_key(pg_url, pg_db):
    """Claims from two connections at the same moment: each key goes to one."""
    import threading

    from cloud import models
    from cloud.db import Database
    from cloud.store import leases

    keys = [f"deployment:dep_{i}" for i in range(200)]
    got = {}
    barrier = threading.Barrier(2)

    def claim(name):
        db = Database(pg_url)  # its own connection, as another replica has
        models.database.initialize(db.peewee)
        barrier.wait()
        got[name] = db.call(leases.claim, keys, name, 100.0, 10.0)
        db.peewee.close()

    threads = [threading.Thread(target=claim, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    models.database.initialize(pg_db.peewee)
    assert got["a"].isdisjoint(got["b"]) and got["a"] | got["b"] == set(keys)
    holders = pg_db.call(leases.holders, keys, 100.0)
    assert all(holders[k] == ("a" if k in got["a"] else "b") for k in keys)


async def test_stream_events_reach_the_watchers_of_another_replica(pg_url):
    from cloud.fanout import Fanout
    from cloud.streams import Streams

    here, there = Streams(), Streams()
    fan_here, fan_there = Fanout(pg_url, "here"), Fanout(pg_url, "there")
    here.replicate(fan_here)
    there.replicate(fan_there)
    tasks = [asyncio.create_task(f.run()) for f in (fan_here, fan_there)]
    try:
        await asyncio.wait_for(asyncio.gather(fan_here.ready.wait(), fan_there.ready.wait()), 10)
        watcher = there.subscribe("deployment:dep_1")
        local = here.subscribe("deployment:dep_1")
        other_key = there.subscribe("deployment:dep_2")
        here.publish("deployment:dep_1", "update", {"id": "dep_1", "deployment": {"status": "running"}, "targets": []})
        # a batch of 400 targets is ~30 KB of JSON: four NOTIFYs or more
        targets = [{"device_id": f"device-{i:04d}", "status": "deploying", "step": "deploy"} for i in range(400)]
        here.publish("deployment:dep_1", "update", {"id": "dep_1", "deployment": {"status": "running"},
                                                    "targets": targets})
        _id, event, data = await asyncio.wait_for(watcher.next(), 10)
        assert (event, data["deployment"]) == ("update", {"status": "running"}) and data["targets"] == []
        heard = []
        while len(heard) < len(targets):
            _id, event, data = await asyncio.wait_for(watcher.next(), 10)
            assert event == "update" and data["deployment"] == {"status": "running"}
            heard += data["targets"]
        assert heard == targets  # all of them, in order, in parts
        assert local.queue.qsize() == 2  # the publisher's own watchers got each event once, whole
        assert other_key.queue.empty()
        # an event that cannot be split drops the remote watchers (they reconnect for a sync)
        here.publish("deployment:dep_1", "error", {"detail": "x" * 9000})
        assert await asyncio.wait_for(watcher.next(), 10) is None
        assert there.count("deployment:dep_1") == 0 and here.count("deployment:dep_1") == 1
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await fan_here.close()
        await fan_there.close()


def test_replicas_share_every_device_topic_but_status():
    from shared_schema.topics import TopicError, Topics

    subs = dict(Topics("ff").cloud_subscriptions("cloud"))
    assert subs == {"ff/+/status": 1, "$share/cloud/ff/+/ack": 1, "$share/cloud/ff/+/health": 0,
                    "$share/cloud/ff/+/runs": 1}
    assert dict(Topics("ff").cloud_subscriptions()) == {"ff/+/status": 1, "ff/+/ack": 1, "ff/+/health": 0,
                                                        "ff/+/runs": 1}
    with pytest.raises(TopicError, match="one topic level"):
        Topics("ff").cloud_subscriptions("a/b")


@pytest.mark.parametrize("fields, message", [
    ({"replica": "a b"}, "want 1 to 40 letters"),
    ({"replica": "a", "db_url": "sqlite:///x.db"}, "SQLite is for one cloud process alone"),
    ({"replica": "a", "lease_ttl_s": 1.0}, "at least three ticks"),
    ({"replica": "a", "mqtt_share_group": "x/y"}, "one topic level"),
])
def test_a_replica_that_cannot_work_is_refused_with_the_reason(fields, message):
    from cloud.app import init_app

    config = Config(**{"db_url": "postgresql://ff@127.0.0.1:1/x", "secret": b"s" * 32, **fields})
    with pytest.raises(ValueError, match=message):
        init_app(config)


async def test_acks_heard_by_one_replica_reach_the_one_that_drives_their_work(pg_url, pg_db):
    from cloud.engine.execution import ExecAck, RecordStored
    from cloud.engine.state import Ack
    from cloud.fanout import Fanout
    from cloud.leaseholder import Leaseholder

    heard = []
    fans = {name: Fanout(pg_url, name) for name in ("a", "b")}
    holders = {name: Leaseholder(pg_db, Config(db_url=pg_url, replica=name), fans[name],
                                 on_acks=lambda owner, events, n=name: heard.append((n, owner, events)))
               for name in ("a", "b")}
    tasks = [asyncio.create_task(f.run()) for f in fans.values()]
    try:
        await asyncio.wait_for(asyncio.gather(*(f.ready.wait() for f in fans.values())), 10)
        assert await holders["b"].take("dep_1") and await holders["b"].take(("exec", "exe_1"))
        acks = [Ack(f"d{i}", "deploy", "healthy", "") for i in range(300)]  # ~12 KB: two NOTIFYs
        exec_events = [ExecAck("d1", "done", "", 7, "completed"), RecordStored("d1", 7)]
        mine = await holders["a"].route({"dep_1": acks, ("exec", "exe_1"): exec_events, "dep_2": [acks[0]]})
        assert list(mine) == ["dep_2"]  # nobody held dep_2: a took it
        assert holders["a"].holds("dep_2") and not holders["a"].holds("dep_1")
        await asyncio.wait_for(_until(lambda: sum(len(e) for _n, _o, e in heard) == 302), 10)
        assert {n for n, _o, _e in heard} == {"b"}
        assert [a for _n, o, e in heard if o == "dep_1" for a in e] == acks
        assert [a for _n, o, e in heard if o == ("exec", "exe_1") for a in e] == exec_events
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for f in fans.values():
            await f.close()


async def test_work_claimed_when_its_ack_comes_first_is_taken_over_at_the_next_renewal(pg_db, pg_url):
    """The replica that drove an execution died; a device's ack reaches
    another replica before its renewal round: it claims the lease there and
    then, and the next renewal still reports the work as taken over (to log
    it and send its other devices' commands again), once."""
    from cloud.engine.execution import ExecAck
    from cloud.leaseholder import Leaseholder
    from cloud.models import Execution
    from cloud.store import leases

    pg_db.call(lambda: Execution.create(id="exe_1", flow="flw_1", version=1, selector={}, status="running",
                                        timeout=60.0, created_at=100.0))
    pg_db.call(leases.claim, ["execution:exe_1"], "a", 100.0, 1.5)  # a drove it, then died
    now = [105.0]
    b = Leaseholder(pg_db, Config(db_url=pg_url, replica="b", clock=lambda: now[0]))
    mine = await b.route({("exec", "exe_1"): [ExecAck("d1", "done", "", 7, "completed")]})
    assert list(mine) == [("exec", "exe_1")] and b.holds(("exec", "exe_1"))
    assert await b.renew() == {"execution:exe_1"}
    now[0] += 0.5
    assert await b.renew() == set()


async def _until(check):
    while not check():
        await asyncio.sleep(0.02)


async def test_a_lost_listen_connection_is_made_again_and_its_watchers_resync(pg_url):
    """PostgreSQL ends the LISTEN connection (a restart, a failover): every
    watcher here is dropped (it reconnects and gets a sync: events were
    missed), and events flow again once the connection is made again."""
    import psycopg2

    from cloud.fanout import Fanout
    from cloud.streams import Streams

    here, there = Streams(), Streams()
    fans = [Fanout(pg_url, "here"), Fanout(pg_url, "there")]
    here.replicate(fans[0])
    there.replicate(fans[1])
    tasks = [asyncio.create_task(f.run()) for f in fans]
    try:
        await asyncio.wait_for(asyncio.gather(*(f.ready.wait() for f in fans)), 10)
        watcher = there.subscribe("deployment:dep_1")
        with psycopg2.connect(pg_url) as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE pid <> pg_backend_pid() AND query = 'LISTEN \"ff_stream\"'")
            assert cur.rowcount == 2  # both replicas' LISTEN connections
        assert await asyncio.wait_for(watcher.next(), 10) is None  # dropped: reconnect for a sync
        await asyncio.wait_for(_until(lambda: all(f.ready.is_set() for f in fans)), 10)
        again = there.subscribe("deployment:dep_1")
        here.publish("deployment:dep_1", "update", {"id": "dep_1", "deployment": {"status": "paused"}, "targets": []})
        _id, event, data = await asyncio.wait_for(again.next(), 10)
        assert (event, data["deployment"]) == ("update", {"status": "paused"})
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for f in fans:
            await f.close()


def test_the_stale_resend_round_leaves_out_what_other_replicas_drive(pg_db):
    """Each replica re-sends its own unanswered commands; the others' are
    left out before the round's limit, so they cannot crowd its own out."""
    from cloud.models import Command
    from cloud.store import leases, rollout

    def command(owner, device, at):
        cmd_id = f"{owner}.{device}.deploy"
        return {"id": cmd_id, "deployment": owner, "device": device, "step": "deploy",
                "payload": [{"id": cmd_id, "op": "deploy"}], "created_at": at, "last_sent_at": at}

    pg_db.call(lambda: Command.insert_many([command("dep_b", f"d{i}", 10.0 + i) for i in range(3)]
                                           + [command("dep_a", "d9", 20.0)]).execute())
    pg_db.call(leases.claim, ["deployment:dep_a"], "a", 100.0, 10.0)
    pg_db.call(leases.claim, ["deployment:dep_b", "execution:exe_1"], "b", 100.0, 10.0)
    others = pg_db.call(leases.owners_held_by_others, "a", 101.0)
    assert sorted(others) == ["dep_b", "exe_1"]
    assert [d for d, _m in pg_db.call(rollout.stale_commands, 101.0, 30.0, 2)] == ["d0", "d1"]  # the oldest
    assert [d for d, _m in pg_db.call(rollout.stale_commands, 101.0, 30.0, 2, skip_owners=others)] == ["d9"]
