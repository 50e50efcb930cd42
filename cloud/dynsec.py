"""Broker accounts: device clients on Mosquitto's Dynamic Security plugin,
and the ids no device may take.

Rules (docs/decisions.md, "Who enforces what"):
1. A device is one dynsec client: username = device id, and the client is
   bound to the client id = device id, so the same password under another
   client id (`fleetflow-cloud`, another device's) is refused at CONNECT and
   can't take over that session.
2. Each device has a role of its own, `fleetflow-device-<id>`, allowing
   publish, subscribe and receive under `<prefix>/<id>/#` only (the plugin
   of Mosquitto 2.0 has no `%c` patterns, hence one role per device).
3. Adding a device replaces whatever the broker held under that name:
   delete client, delete role, create role, create client, in one message.
   The plugin runs one message's commands in order, on the broker's single
   thread, so nothing else runs in between, and there is no file to race on.
4. Deleting a device deletes its client, which disconnects its live session,
   and its role; "not found" is no error (a retry, or a device that never
   got a broker account).
5. Reserved ids (`is_reserved`): `cloud`, `admin`, anything starting with
   `fleetflow-` (the cloud's client id `fleetflow-cloud`, the broker admin
   `fleetflow-admin`, the cloud's account connections), and the cloud's own
   client id and username whatever they are configured to, compared without
   case. The API refuses them (422), so no provisioning can replace the
   cloud's account or bind a device to the cloud's client id.

The commands go to `$CONTROL/dynamic-security/v1` and the plugin answers on
`$CONTROL/dynamic-security/v1/response`, to every client subscribed there:
each command carries a correlationData of ours to pick our answer out.
`Accounts` does it from the cloud (aiomqtt, one short connection per change,
so it works from any replica); tools/broker.py has the same over paho for
the tools.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Iterable

log = logging.getLogger("fleetflow.dynsec")

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = CONTROL_TOPIC + "/response"
CLOUD_ROLE = "fleetflow-cloud"  # readwrite <prefix>/#: the cloud's account (and the tools' admins)
ADMIN_ROLE = "admin"  # made by `mosquitto_ctrl dynsec init`: the $CONTROL topics
RESERVED_IDS = frozenset({"cloud", "admin"})
RESERVED_PREFIX = "fleetflow-"
NOT_FOUND = ("Client not found", "Role not found")
ANSWER_TIMEOUT_S = 10.0


class DynsecError(RuntimeError):
    """The broker refused an account change, or did not answer it."""


def is_reserved(device_id: str, also: Iterable[str | None] = ()) -> bool:
    """Whether a device may not have this id (rule 5); `also`: the cloud's configured names."""
    low = device_id.lower()
    names = RESERVED_IDS | {n.lower() for n in also if n}
    return low in names or low.startswith(RESERVED_PREFIX)


def device_role(device_id: str) -> str:
    return f"fleetflow-device-{device_id}"


def _acls(topic: str) -> list[dict]:
    return [{"acltype": kind, "topic": topic, "priority": 0, "allow": True}
            for kind in ("publishClientSend", "publishClientReceive", "subscribePattern", "unsubscribePattern")]


def add_device(device_id: str, password: str, prefix: str = "ff") -> list[dict]:
    """Rule 3: the commands that (re)create a device's client and role."""
    role = device_role(device_id)
    return [
        *delete_device(device_id),
        {"command": "createRole", "rolename": role, "acls": _acls(f"{prefix}/{device_id}/#")},
        {"command": "createClient", "username": device_id, "password": password, "clientid": device_id,
         "textname": "fleetflow device", "roles": [{"rolename": role, "priority": 0}]},
    ]


def delete_device(device_id: str) -> list[dict]:
    """Rule 4: delete the client (kicks its session), then its role."""
    return [{"command": "deleteClient", "username": device_id},
            {"command": "deleteRole", "rolename": device_role(device_id)}]


def cloud_role(prefix: str = "ff") -> list[dict]:
    """The role of the cloud's account: readwrite <prefix>/# (plus ADMIN_ROLE for $CONTROL)."""
    return [{"command": "createRole", "rolename": CLOUD_ROLE, "acls": _acls(f"{prefix}/#")}]


def add_admin(username: str, password: str) -> list[dict]:
    """An account like the cloud's: any client id, <prefix>/# and the $CONTROL topics."""
    return [{"command": "deleteClient", "username": username},
            {"command": "createClient", "username": username, "password": password, "textname": "fleetflow admin",
             "roles": [{"rolename": CLOUD_ROLE, "priority": 0}, {"rolename": ADMIN_ROLE, "priority": 0}]}]


def request(commands: list[dict]) -> tuple[bytes, str]:
    """The message for `commands` and the correlation tag its answer will carry."""
    tag = secrets.token_hex(8)
    body = [dict(cmd, correlationData=f"{tag}.{i}") for i, cmd in enumerate(commands)]
    return json.dumps({"commands": body}).encode(), tag


def answer_for(payload: bytes, tag: str) -> list[dict] | None:
    """Our responses out of one message on RESPONSE_TOPIC, or None if it answers someone else."""
    try:
        responses = json.loads(payload)["responses"]
    except (ValueError, KeyError, TypeError):
        return None
    ours = [r for r in responses if isinstance(r, dict) and str(r.get("correlationData", "")).startswith(tag + ".")]
    return ours or None


def check(commands: list[dict], responses: list[dict]) -> None:
    """Raise DynsecError for a refused command; a delete of something absent is fine."""
    for r in responses:
        err = r.get("error")
        if not err:
            continue
        if r.get("command", "").startswith("delete") and err in NOT_FOUND:
            continue
        i = int(str(r.get("correlationData", "")).rsplit(".", 1)[-1])
        cmd = commands[i]
        who = cmd.get("username") or cmd.get("rolename") or ""
        raise DynsecError(f"the broker refused {cmd['command']} {who}: {err}")
    if len(responses) != len(commands):
        raise DynsecError(f"the broker answered {len(responses)} of {len(commands)} account commands")


class Accounts:
    """Device accounts over $CONTROL, with the cloud's own broker credentials.

    Config.on_provision / on_delete call `add` / `delete`. Each call is one
    short connection (a random `fleetflow-accounts-*` client id), so calls
    run concurrently and from any replica; the plugin serialises them.
    """

    def __init__(self, host: str, port: int, username: str | None, password: str | None, prefix: str = "ff",
                 timeout_s: float = ANSWER_TIMEOUT_S, tls_context=None):
        self.host, self.port = host, port
        self.tls_context = tls_context  # an ssl.SSLContext for MQTT over TLS (the bridge's)
        self.username, self.password = username, password
        self.prefix = prefix
        self.timeout_s = timeout_s

    @classmethod
    def from_config(cls, config) -> "Accounts":
        parts = config.mqtt_parts()
        return cls(parts["host"], parts["port"], parts["username"], parts["password"], config.topic_prefix,
                   tls_context=config.mqtt_tls_context())

    async def add(self, device_id: str, password: str) -> None:
        await self.run(add_device(device_id, password, self.prefix))

    async def delete(self, device_id: str) -> None:
        await self.run(delete_device(device_id))

    async def run(self, commands: list[dict]) -> None:
        import aiomqtt

        payload, tag = request(commands)
        try:
            async with asyncio.timeout(self.timeout_s):
                async with aiomqtt.Client(self.host, self.port, username=self.username, password=self.password,
                                          identifier=f"{RESERVED_PREFIX}accounts-{tag}", clean_session=True,
                                          tls_context=self.tls_context) as client:
                    await client.subscribe(RESPONSE_TOPIC, qos=1)
                    await client.publish(CONTROL_TOPIC, payload, qos=1)
                    async for message in client.messages:
                        responses = answer_for(message.payload, tag)
                        if responses is not None:
                            check(commands, responses)
                            return
        except TimeoutError:
            raise DynsecError(f"no answer on {RESPONSE_TOPIC} within {self.timeout_s:g} s: is Mosquitto's dynamic "
                              f"security plugin loaded, and does {self.username!r} have its admin role?") from None
        except aiomqtt.MqttError as exc:
            raise DynsecError(f"broker {self.host}:{self.port}: {exc}") from None
