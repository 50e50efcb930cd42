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
`Accounts` does it from the cloud (aiomqtt, one short connection per
message, so it works from any replica; changes asked for together share a
message); tools/infra/broker.py has the same over paho for the tools.

Mosquitto 2.0's plugin rewrites its whole JSON file after each message that
changes something, so one provisioning costs the broker time in proportion
to the accounts it holds; its ACLs have no `%c`/`%u` patterns (a role
allowing `ff/%c/#` or `ff/%u/#` lets a device subscribe to nothing:
tried on 2.0.11), so one shared role can't replace a role per device. What
the control API does allow is several changes in one message, one rewrite:
concurrent provisionings are sent that way.
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
# The most one $CONTROL message carries (a device's account is ~800 B of
# commands): well under the broker's max_packet_size, 12,288 B, past which
# it would drop the message unanswered.
MESSAGE_BYTES = 8192


class DynsecError(RuntimeError):
    """The broker refused an account change, or did not answer it."""


def is_reserved(device_id: str, also: Iterable[str | None] = ()) -> bool:
    """Whether a device may not have this id (rule 5); `also`: the cloud's configured names."""
    low = device_id.lower()
    names = RESERVED_IDS | {n.lower() for n in also if n}
    return low in names or low.startswith(RESERVED_PREFIX)


DISCOVERY_PREFIX = "homeassistant"  # Home Assistant's MQTT discovery (cloud/homeassistant.py)


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


def cloud_role(prefix: str = "ff", discovery: str = DISCOVERY_PREFIX) -> list[dict]:
    """The role of the cloud's account: readwrite <prefix>/# and Home
    Assistant's discovery topics (plus ADMIN_ROLE for $CONTROL)."""
    return [{"command": "createRole", "rolename": CLOUD_ROLE, "acls": _acls(f"{prefix}/#") + _acls(f"{discovery}/#")}]


def allow_discovery(discovery: str = DISCOVERY_PREFIX) -> list[dict]:
    """The cloud role's ACLs for <discovery>/# on a broker set up before it had them."""
    return [{"command": "addRoleACL", "rolename": CLOUD_ROLE, **acl} for acl in _acls(f"{discovery}/#")]


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

    Config.on_provision / on_delete call `add` / `delete`. Each message is
    one short connection (a random `fleetflow-accounts-*` client id), so it
    works from any replica, and the plugin serialises what replicas send;
    calls made while a message is out go together in the next (`run`).
    """

    def __init__(self, host: str, port: int, username: str | None, password: str | None, prefix: str = "ff",
                 timeout_s: float = ANSWER_TIMEOUT_S, tls_context=None):
        self.host, self.port = host, port
        self.tls_context = tls_context  # an ssl.SSLContext for MQTT over TLS (the bridge's)
        self.username, self.password = username, password
        self.prefix = prefix
        self.timeout_s = timeout_s
        self._waiting: list[tuple[list[dict], asyncio.Future]] = []  # changes for the next message
        self._sender: asyncio.Task | None = None

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
        """Carry out `commands`; raises DynsecError if the broker refuses one.

        The plugin rewrites its whole JSON file after every message that
        changes something, so a change costs the broker time in proportion
        to the accounts it holds (docs/BENCHMARKS.md). Changes asked for
        while a message is out wait and go together in the next one (a
        group commit, up to MESSAGE_BYTES): 32 provisionings at once are a
        few rewrites, not 32. A lone change goes at once."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((commands, done))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_waiting())
        await done

    async def _send_waiting(self) -> None:
        while self._waiting:
            batch, size = [], 0
            while self._waiting:
                n = sum(len(json.dumps(c)) + 64 for c in self._waiting[0][0])  # + correlationData, separators
                if batch and size + n > MESSAGE_BYTES:
                    break
                batch.append(self._waiting.pop(0))
                size += n
            commands = [c for cmds, _ in batch for c in cmds]
            try:
                responses = await self._exchange(commands)
            except DynsecError as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(DynsecError(str(exc)))
                continue
            start = 0
            for cmds, done in batch:
                mine = _slice(responses, start, len(cmds))
                start += len(cmds)
                if done.done():
                    continue
                try:
                    check(cmds, mine)
                except DynsecError as exc:
                    done.set_exception(exc)
                else:
                    done.set_result(None)

    async def _exchange(self, commands: list[dict]) -> list[dict]:
        """Send one message of commands and return the plugin's answers to it."""
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
                            return responses
        except TimeoutError:
            raise DynsecError(f"no answer on {RESPONSE_TOPIC} within {self.timeout_s:g} s: is Mosquitto's dynamic "
                              f"security plugin loaded, and does {self.username!r} have its admin role?") from None
        except aiomqtt.MqttError as exc:
            raise DynsecError(f"broker {self.host}:{self.port}: {exc}") from None
        raise DynsecError(f"the link to {self.host}:{self.port} ended before the broker answered")


def _slice(responses: list[dict], start: int, count: int) -> list[dict]:
    """The answers to commands start..start+count-1 of one message, numbered
    from 0 again (as `check` reads them for those commands alone)."""
    mine = []
    for r in responses:
        tag, _, i = str(r.get("correlationData", "")).rpartition(".")
        if i.isdigit() and start <= int(i) < start + count:
            mine.append(dict(r, correlationData=f"{tag}.{int(i) - start}"))
    return mine
