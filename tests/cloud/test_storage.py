"""Storage: migrations keep data, secrets at rest."""

from __future__ import annotations

import pytest

from cloud import migrations, models
from cloud.db import Database
from cloud.secrets import SecretBox, SecretError, hash_token, new_token
from cloud.store import keys as key_store


def test_a_fresh_database_gets_every_step(tmp_path):
    db = Database(str(tmp_path / "a.db"))
    assert migrations.migrate(db.peewee) == [n for n, _ in migrations.STEPS]
    assert migrations.current_version(db.peewee) == migrations.LATEST
    assert migrations.migrate(db.peewee) == []  # idempotent
    assert db.peewee.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_an_upgrade_keeps_the_data(tmp_path):
    path = str(tmp_path / "old.db")
    old = Database(path)
    assert migrations.migrate(old.peewee, target=1) == [1]  # as release 1 left it
    assert not old.peewee.table_exists("run_record")
    made = old.call(key_store.create_key, "admin", "first")
    old.call(lambda: models.Device.create(id="d1", board="unix-sim", password_hash="h", key_sealed="v1:x",
                                          created_at=1.0, last_seen=5.0))
    assert "device_last_seen" not in {ix.name for ix in old.peewee.get_indexes("device")}
    old.peewee.close()

    new = Database(path)
    assert migrations.migrate(new.peewee) == list(range(2, migrations.LATEST + 1))
    assert new.peewee.table_exists("lease")
    assert "device_last_seen" in {ix.name for ix in new.peewee.get_indexes("device")}
    assert new.peewee.table_exists("run_record") and new.peewee.table_exists("node_record")
    assert new.call(key_store.role_of, made["key"]) == "admin"
    assert new.call(lambda: models.Device.get_by_id("d1").last_seen) == 5.0


def test_the_device_list_migration_fills_the_sort_key_and_the_reported_flow(tmp_path):
    db = Database(str(tmp_path / "d.db"))
    migrations.migrate(db.peewee)
    db.call(lambda: models.Device.create(id="node-10", board="unix-sim", password_hash="h", key_sealed="v1:x",
                                         created_at=1.0, status={"state": "online", "flow": "f1", "ver": 3,
                                                                 "trial": True}))
    # as a database before step 12 holds it: no key, nothing copied out of status
    db.peewee.execute_sql("UPDATE device SET natural_key = '', flow = NULL, ver = NULL, trial = 0")
    db.peewee.execute_sql("DELETE FROM schema_version WHERE version >= 12")
    assert migrations.migrate(db.peewee)[0] == 12
    dev = db.call(models.Device.get_by_id, "node-10")
    assert (dev.natural_key, dev.flow, dev.ver, dev.trial) == ("node-0210", "f1", 3, True)


def test_sealed_keys_open_only_with_the_same_secret():
    box = SecretBox(b"k" * 32)
    sealed = box.seal(b"\x01" * 32)
    assert box.open(sealed) == b"\x01" * 32
    assert sealed != box.seal(b"\x01" * 32)  # a fresh nonce each time
    with pytest.raises(SecretError):
        SecretBox(b"j" * 32).open(sealed)
    tampered = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    with pytest.raises(SecretError):
        box.open(tampered)


def test_tokens_are_stored_as_hashes():
    token = new_token("ffk_")
    assert token.startswith("ffk_") and len(token) > 40
    assert hash_token(token) != token and len(hash_token(token)) == 64
