"""Files the cloud creates are its owner's alone (issue 10, item 10): the
SQLite database with its -wal and -shm, and the server secret, 0600 in
0700 folders, even under a permissive umask."""

from __future__ import annotations

import os
import stat

import pytest

from cloud.app import init_app
from cloud.appkeys import DB
from cloud.config import Config
from cloud.private import write_private
from cloud.secrets import load_server_secret
from cloud.store import keys as key_store


@pytest.fixture
def open_umask():
    old = os.umask(0o002)  # what would leave new files 0664 and folders 0775
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_database_and_its_wal_and_shm_are_0600(tmp_path, open_umask):
    path = tmp_path / "var" / "data" / "cloud.db"
    app = init_app(Config(db_url=f"sqlite:///{path}", mqtt_url=None, secret=b"s" * 32))
    db = app[DB]
    db.call(key_store.create_key, "admin")  # a write: SQLite opens the -wal and -shm
    try:
        files = [path, path.with_name("cloud.db-wal"), path.with_name("cloud.db-shm")]
        assert {f.name: oct(_mode(f)) for f in files} == {f.name: "0o600" for f in files}
        assert oct(_mode(path.parent)) == oct(_mode(path.parent.parent)) == "0o700"
    finally:
        db.peewee.close()


def test_an_existing_database_keeps_its_mode(tmp_path, open_umask):
    # 0600 is for files the cloud creates; one an operator made (and maybe
    # shares with a backup user on purpose) is not changed behind their back.
    path = tmp_path / "cloud.db"
    path.touch(mode=0o640)
    os.chmod(path, 0o640)
    app = init_app(Config(db_url=str(path), mqtt_url=None, secret=b"s" * 32))
    app[DB].peewee.close()
    assert oct(_mode(path)) == "0o640"


def test_the_server_secret_is_0600(tmp_path, open_umask, monkeypatch):
    monkeypatch.delenv("FLEETFLOW_SECRET", raising=False)
    path = tmp_path / "etc" / "fleetflow.secret"
    secret = load_server_secret(str(path))
    assert len(secret) == 32 and load_server_secret(str(path)) == secret
    assert (oct(_mode(path)), oct(_mode(path.parent))) == ("0o600", "0o700")


def test_a_private_write_narrows_an_existing_file(tmp_path, open_umask):
    path = tmp_path / "config.json"
    path.write_text("old, longer text")
    os.chmod(path, 0o644)
    write_private(str(path), "new")
    assert oct(_mode(path)) == "0o600" and path.read_text() == "new"
