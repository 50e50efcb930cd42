"""`fleetflow keys` and `fleetflow serve`'s provisioning hook."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tools.cli import main


def test_keys_create_prints_a_key_that_the_database_knows(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'k.db'}"
    assert main(["keys", "create", "--role", "admin", "--db", db]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("ffk_")
    from cloud.db import Database
    from cloud.store.keys import role_of

    assert Database(db).call(role_of, key) == "admin"
    assert main(["keys", "list", "--db", db]) == 0
    listed = capsys.readouterr().out
    assert "admin" in listed and key not in listed
    assert main(["keys", "revoke", "1", "--db", db]) == 0
    assert Database(db).call(role_of, key) is None


@pytest.mark.skipif(not shutil.which("mosquitto_passwd"), reason="needs mosquitto_passwd")
async def test_the_mosquitto_hook_adds_the_device_to_the_password_file(tmp_path):
    from tools.cmd_serve import mosquitto_hook

    passwd = tmp_path / "passwd"
    passwd.write_text("")
    await mosquitto_hook(str(passwd), None)("dev_9", "s3cret-pw")
    assert passwd.read_text().startswith("dev_9:")
    assert "s3cret-pw" not in passwd.read_text()
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "other", "x"], check=True)
    assert {line.split(":")[0] for line in passwd.read_text().split()} == {"dev_9", "other"}
