"""cloud.admin: the tools' local database work (keys, users) on a real SQLite file."""

from __future__ import annotations

import pytest

from cloud import admin


def test_a_key_made_offline_works_until_revoked(tmp_path):
    from cloud.db import Database
    from cloud.store.keys import role_of

    url = f"sqlite:///{tmp_path / 'a.db'}"
    with admin.open_database(url) as db:
        made = db.create_key("operator", "ci")
        other = db.create_key("viewer")
        assert made["key"].startswith("ffk_") and made["role"] == "operator" and made["name"] == "ci"
        listed = db.list_keys()
        assert [k["id"] for k in listed] == [made["id"], other["id"]]
        assert all("key" not in k for k in listed)
    assert Database(url).call(role_of, made["key"]) == "operator"  # the cloud itself accepts it
    with admin.open_database(url) as db:  # reopened: migrations already applied
        assert db.revoke_key(made["id"])["revoked"] is True
        with pytest.raises(admin.AdminError, match="^no API key 99$"):
            db.revoke_key(99)
        with pytest.raises(admin.AdminError, match="/role: must be one of admin, operator, viewer"):
            db.create_key("root")
    assert Database(url).call(role_of, made["key"]) is None


def test_users_are_checked_as_the_api_checks_them(tmp_path):
    from cloud import sessions

    with admin.open_database(tmp_path / "u.db") as db:  # a bare path is SQLite
        made = db.create_user(" Ann@Example.com ", "correct horse", "admin")
        assert (made["email"], made["role"]) == ("ann@example.com", "admin")
        with pytest.raises(admin.AdminError, match="already exists"):
            db.create_user("ann@example.com", "another one", "viewer")
        with pytest.raises(admin.AdminError, match="^the password: must be 8 characters"):
            db.create_user("bob@example.com", "short", "viewer")
        with pytest.raises(admin.AdminError, match="'boss' is not one of"):
            db.create_user("bob@example.com", "long enough", "boss")
        assert [u["email"] for u in db.list_users()] == ["ann@example.com"]
        assert "password_hash" not in db.list_users()[0]
    from cloud.db import Database
    from cloud.store import users

    _id, hashed = Database(f"sqlite:///{tmp_path / 'u.db'}").call(users.password_hash_of, "ann@example.com")
    assert sessions.check_password("correct horse", hashed)
    with pytest.raises(admin.AdminError, match="^--email: "):
        admin.check_email("not an address")


def test_a_database_that_cannot_be_opened_says_which_and_why(tmp_path):
    with pytest.raises(admin.AdminError, match=r"^cannot open the database 'mysql://x/y': --db 'mysql://x/y': want sqlite"):
        admin.open_database("mysql://x/y")
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(admin.AdminError, match="^cannot open the database 'sqlite:///.*file/x.db': "):
        admin.open_database(f"sqlite:///{tmp_path / 'file' / 'x.db'}")
