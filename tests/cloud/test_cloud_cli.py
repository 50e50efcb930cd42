"""`fleetflow keys`, `fleetflow users` and `fleetflow serve`'s provisioning hook."""

from __future__ import annotations

import sys

import pytest

from tools.infra.broker import mosquitto_path
from tools.cli import main
from tools.infra.tls import client_context


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
    capsys.readouterr()
    assert main(["keys", "revoke", "7", "--db", db]) == 1
    assert capsys.readouterr().err == "keys: no API key 7\n"
    with pytest.raises(SystemExit, match="^keys: cannot open the database 'mysql://h/d': --db 'mysql://h/d': want"):
        main(["keys", "list", "--db", "mysql://h/d"])


def test_users_create_makes_a_headless_first_admin_who_can_log_in(tmp_path, capsys, monkeypatch):
    import io

    from cloud import sessions
    from cloud.db import Database
    from cloud.store import users

    db = f"sqlite:///{tmp_path / 'u.db'}"
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse\n"))
    assert main(["users", "create", "--email", "Ops@Example.com", "--role", "admin", "--password-stdin",
                 "--db", db]) == 0
    assert "created admin ops@example.com" in capsys.readouterr().out
    user_id, hashed = Database(db).call(users.password_hash_of, "ops@example.com")
    assert hashed.startswith("$2b$12$") and sessions.check_password("correct horse", hashed)
    assert Database(db).call(users.has_users)  # so registering from the dashboard is closed
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["users", "create", "--email", "b@example.com", "--role", "viewer", "--password-stdin",
                 "--db", db]) == 1
    assert "the password: must be 8 characters" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("another one\n"))
    assert main(["users", "create", "--email", "ops@example.com", "--role", "viewer", "--password-stdin",
                 "--db", db]) == 1
    assert "already exists" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("never read\n"))
    assert main(["users", "create", "--email", "ops", "--role", "viewer", "--password-stdin", "--db", db]) == 1
    assert capsys.readouterr().err.startswith("users: --email: ")
    assert sys.stdin.read() == "never read\n"  # the email is checked before the password is asked for
    assert main(["users", "list", "--db", db]) == 0
    listed = capsys.readouterr().out
    assert "ops@example.com" in listed and "admin" in listed and "$2b$" not in listed


def test_users_password_sets_a_new_password_and_ends_the_users_sessions(tmp_path, capsys, monkeypatch):
    import io

    from cloud import sessions
    from cloud.db import Database
    from cloud.store import users

    db = f"sqlite:///{tmp_path / 'u.db'}"
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse\n"))
    assert main(["users", "create", "--email", "ops@example.com", "--role", "admin", "--password-stdin",
                 "--db", db]) == 0
    user_id, _ = Database(db).call(users.password_hash_of, "ops@example.com")
    Database(db).call(users.start_session, user_id, "a-token", 100.0)
    assert Database(db).call(users.login_of, "a-token") is not None
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO("battery staple\n"))
    assert main(["users", "password", "--email", "Ops@Example.com", "--password-stdin", "--db", db]) == 0
    assert "new password set for admin ops@example.com" in capsys.readouterr().out
    _, hashed = Database(db).call(users.password_hash_of, "ops@example.com")
    assert sessions.check_password("battery staple", hashed) and not sessions.check_password("correct horse", hashed)
    assert Database(db).call(users.login_of, "a-token") is None  # logged out everywhere
    monkeypatch.setattr("sys.stdin", io.StringIO("never read\n"))
    assert main(["users", "password", "--email", "nobody@example.com", "--password-stdin", "--db", db]) == 1
    assert capsys.readouterr().err == "users: no user has the email nobody@example.com\n"
    assert sys.stdin.read() == "never read\n"  # the user is looked up before the password is asked for
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["users", "password", "--email", "ops@example.com", "--password-stdin", "--db", db]) == 1
    assert "the password: must be 8 characters" in capsys.readouterr().err
    assert sessions.check_password("battery staple", Database(db).call(users.password_hash_of, "ops@example.com")[1])


@pytest.mark.broker
@pytest.mark.skipif(not mosquitto_path(), reason="needs Mosquitto")
async def test_serve_makes_and_deletes_device_accounts_over_dynsec_across_a_broker_restart(tmp_path, monkeypatch):
    """`serve`'s default hooks (issue 10, item 8): accounts go over MQTT, so a
    restarted broker (a new PID) changes nothing."""
    import argparse
    import asyncio
    import time

    import paho.mqtt.client as mqtt

    from tools.infra.broker import start_broker

    def connect_rc(broker, user, password, client_id) -> int:
        """The CONNACK code (-1: no answer)."""
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        c.username_pw_set(user, password)
        c.tls_set_context(client_context(broker.tls.ca))
        codes = []
        c.on_connect = lambda cl, u, flags, reason, props=None: codes.append(reason.value)
        c.connect(broker.host, broker.port)
        deadline = time.monotonic() + 5
        while not codes and time.monotonic() < deadline:
            c.loop(timeout=0.1)
        c.disconnect()
        return codes[0] if codes else -1
    from tools.cli.cmd_serve import build_config

    monkeypatch.setenv("FLEETFLOW_SECRET_FILE", str(tmp_path / "secret"))
    with start_broker(tmp_path / "m", users={"cloud": "cloudpw"}) as broker:
        args = argparse.Namespace(db=f"sqlite:///{tmp_path / 's.db'}", mqtt=f"mqtts://cloud:cloudpw@{broker.host}:"
                                  f"{broker.port}", prefix="ff", tick=1.0, broker_accounts="dynsec",
                                  mqtt_ca=str(broker.tls.ca))
        config = build_config(args)
        broker.restart()
        await config.on_provision("dev_9", "s3cret-pw")
        assert await asyncio.to_thread(connect_rc, broker, "dev_9", "s3cret-pw", "dev_9") == 0
        await config.on_delete("dev_9")
        assert await asyncio.to_thread(connect_rc, broker, "dev_9", "s3cret-pw", "dev_9") not in (0, -1)
    assert build_config(argparse.Namespace(**{**vars(args), "broker_accounts": "none"})).on_provision is None


@pytest.mark.parametrize("flag", ["--mosquitto-passwd=/etc/mosquitto/passwd", "--mosquitto-pid=1234"])
def test_serve_refuses_the_removed_password_file_flags_with_advice(tmp_path, monkeypatch, capsys, flag):
    monkeypatch.setenv("FLEETFLOW_SECRET_FILE", str(tmp_path / "secret"))
    assert main(["serve", "--db", f"sqlite:///{tmp_path / 's.db'}", flag]) == 2
    assert "dynamic security plugin" in capsys.readouterr().err


@pytest.mark.parametrize("content, says", [
    ('{"name": "x", "definition": {"nodes": [{"id": "a", "x": NaN}]}}', "bad.json:1:57: malformed JSON: NaN"),
    ('{"name": "x",\n  "tags": [}', "bad.json:2:12: malformed JSON"),
    ("[1, 2]", "bad.json: a flow is a JSON object"),
])
def test_flow_create_refuses_a_file_that_is_not_a_flow_object_before_calling_the_cloud(tmp_path, content, says):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(SystemExit) as info:  # no cloud is listening on port 1
        main(["flow", "create", str(bad), "--name", "y", "--cloud", "http://127.0.0.1:1"])
    assert says in str(info.value.code)


def test_deploy_create_with_a_health_rule_that_is_not_json_says_so(capsys):
    with pytest.raises(SystemExit) as info:
        main(["deploy", "create", "flow_x", "--devices", "d1", "--health", "runs=3", "--cloud", "http://127.0.0.1:1"])
    assert "--health is not JSON" in str(info.value.code)


@pytest.mark.parametrize("argv, says", [
    (["--bind", "garbage"], "--bind 'garbage': want HOST:PORT"),
    (["--bind", "127.0.0.1:99999"], "port from 0 to 65535"),
    (["--bind", "127.0.0.1:0", "--db", "bogus://x"], "--db 'bogus://x'"),
    (["--bind", "127.0.0.1:0", "--mqtt", "notaurl"], "--mqtt 'notaurl'"),
    (["--bind", "127.0.0.1:0", "--mqtt", "mqtt://host:port"], "--mqtt 'mqtt://host:port'"),
])
def test_serve_refuses_flags_it_cannot_use_with_a_message_not_a_traceback(tmp_path, monkeypatch, capsys, argv, says):
    monkeypatch.setenv("FLEETFLOW_SECRET_FILE", str(tmp_path / "secret"))
    assert main(["serve", "--db", f"sqlite:///{tmp_path / 's.db'}", *argv]) == 2
    assert says in capsys.readouterr().err


def test_serve_on_a_port_in_use_says_so(tmp_path, monkeypatch, capsys):
    import socket

    monkeypatch.setenv("FLEETFLOW_SECRET_FILE", str(tmp_path / "secret"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--db", f"sqlite:///{tmp_path / 's.db'}", "--mqtt", "none",
                     "--bind", f"127.0.0.1:{port}"]) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


@pytest.mark.parametrize("db, says", [
    ("bogus://x", "want sqlite:///path/to.db"),
    ("NOTADB", "file is not a database"),
])
def test_keys_on_a_database_it_cannot_open_says_why(tmp_path, db, says):
    if db == "NOTADB":
        (tmp_path / "not.db").write_text("hello, not SQLite" * 100)
        db = str(tmp_path / "not.db")
    with pytest.raises(SystemExit) as info:
        main(["keys", "create", "--role", "admin", "--db", db])
    assert says in str(info.value.code)


def test_watching_a_deployment_gives_up_on_a_cloud_that_stays_unreachable(capsys):
    import io

    from tools.cli.client import ApiError, Client
    from tools.cli.deploy_progress import watch

    with pytest.raises(ApiError) as info:  # nothing listens on port 1
        watch(Client("http://127.0.0.1:1"), "dep_x", out=io.StringIO(), give_up_s=1.0)
    assert info.value.status == 0 and "cannot reach the cloud" in str(info.value)


def _command_paths(parser, prefix=()):
    import argparse

    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _command_paths(sub, prefix + (name,))


def _all_command_paths():
    from tools.cli import build_parser

    return list(_command_paths(build_parser()))


@pytest.mark.parametrize("path", _all_command_paths(), ids=lambda p: " ".join(p) or "fleetflow")
def test_every_command_has_a_help_that_prints(path, capsys):
    with pytest.raises(SystemExit) as info:
        main([*path, "--help"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: fleetflow")


@pytest.mark.parametrize("count", ["0", "-1"])
def test_sim_with_no_devices_refuses_before_starting_anything(tmp_path, capsys, count):
    assert main(["sim", "--devices", count, "--workdir", str(tmp_path / "sim")]) == 2
    assert "at least one device" in capsys.readouterr().out
    assert not (tmp_path / "sim").exists()  # no broker, no cloud, no workdir


async def test_deploy_all_on_a_cloud_without_devices_says_so(aiohttp_server, cloud_config, capsys):
    import asyncio

    from cloud.app import init_app
    from cloud.appkeys import DB
    from cloud.store import keys as key_store

    app = init_app(cloud_config)
    key = app[DB].call(key_store.create_key, "operator")["key"]
    server = await aiohttp_server(app)
    argv = ["deploy", "create", "flow_x", "--all", "--cloud", str(server.make_url("")), "--api-key", key]
    status = await asyncio.get_running_loop().run_in_executor(None, main, argv)
    assert status == 1 and "has no devices yet" in capsys.readouterr().err


def test_serve_refuses_plain_mqtt_unless_asked(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FLEETFLOW_SECRET_FILE", str(tmp_path / "secret"))
    assert main(["serve", "--db", f"sqlite:///{tmp_path / 's.db'}", "--mqtt", "mqtt://cloud:pw@127.0.0.1:1883",
                 "--bind", "127.0.0.1:0"]) == 2
    assert "is plain MQTT: use mqtts://" in capsys.readouterr().err


def test_serve_makes_the_ca_and_broker_certificate_it_then_trusts(tmp_path, monkeypatch):
    """No --mqtt-ca: var/tls/ gets a CA and a broker certificate (keys 0600)
    valid for the broker's host and each --tls-host; the cloud trusts that CA
    and hands it to the devices it provisions."""
    import argparse

    from cryptography import x509

    from tools.cli.cmd_serve import build_config, resolve_mqtt

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLEETFLOW_SECRET_FILE", str(tmp_path / "secret"))
    said = []
    args = argparse.Namespace(db=f"sqlite:///{tmp_path / 's.db'}", mqtt=None, mqtt_ca=None, plain_mqtt=False,
                              tls_host=["192.168.1.10", "broker.lan"], prefix="ff", tick=1.0, mosquitto_passwd=None)
    resolve_mqtt(args, log=said.append)
    tls_dir = tmp_path / "var" / "tls"
    assert args.mqtt == "mqtts://127.0.0.1:8883" and args.mqtt_ca == str(tls_dir / "ca.pem")
    for key in ("ca.key", "broker.key"):
        assert (tls_dir / key).stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate((tls_dir / "broker.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"broker.lan", "localhost"} <= set(san.get_values_for_type(x509.DNSName))
    assert "192.168.1.10" in {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    assert f"certfile {tls_dir / 'broker.pem'}" in "\n".join(said)
    config = build_config(args)
    assert config.mqtt_parts()["tls"] and config.device_ca() == (tls_dir / "ca.pem").read_text()
    # a second run keeps the CA: boards flashed with it still trust the broker
    ca_before = (tls_dir / "ca.pem").read_bytes()
    resolve_mqtt(argparse.Namespace(**{**vars(args), "mqtt": None, "mqtt_ca": None}), log=said.append)
    assert (tls_dir / "ca.pem").read_bytes() == ca_before
