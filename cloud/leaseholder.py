"""What this cloud replica drives: its leases (cloud.store.leases, with the
rules) as the driver uses them, and the acks it hands to the replica that
drives their deployment or execution (cloud.fanout).

One process alone (Config.replica None) holds everything and asks nothing:
SQLite, or PostgreSQL with one `fleetflow serve`, work as before.

An owner is what the driver keys its events by: a deployment id, or
("exec", execution id).
"""

from __future__ import annotations

import logging

from shared_schema.commands import parse_command_id

from cloud.engine.execution import ExecAck, RecordStored
from cloud.engine.state import Ack
from cloud.fanout import ack_channel, split_list
from cloud.store import leases

log = logging.getLogger("fleetflow.leases")


def lease_key(owner) -> str:
    return leases.execution_key(owner[1]) if isinstance(owner, tuple) else leases.deployment_key(owner)


def command_owner_key(messages: list[dict]) -> str | None:
    """The lease key of the deployment or execution a command belongs to."""
    ref = parse_command_id(messages[0].get("id", "")) if messages else None
    if ref is None:
        return None
    return leases.execution_key(ref.owner) if ref.kind == "execution" else leases.deployment_key(ref.owner)


class Leaseholder:
    def __init__(self, db, config, fanout=None, on_acks=None):
        self.db = db
        self.name = config.replica
        self.replicated = config.replica is not None
        self.ttl_s = config.lease_ttl_s
        self.clock = config.clock
        self.held: set[str] = set()
        self.claimed_on_ack: set[str] = set()  # taken in route(): renew() reports them
        self.fanout = fanout
        self.forwarded = 0  # acks handed to another replica
        if fanout is not None and on_acks is not None:
            fanout.on(ack_channel(self.name), lambda message: self._heard(message, on_acks))

    def holds(self, owner) -> bool:
        return not self.replicated or lease_key(owner) in self.held

    def held_executions(self) -> set[str] | None:
        """The ids of the executions held; None (all of them) for one process alone."""
        if not self.replicated:
            return None
        prefix = leases.execution_key("")
        return {k[len(prefix):] for k in self.held if k.startswith(prefix)}

    async def renew(self) -> set[str]:
        """Claim every active key that is free or ours, give up the ones
        no longer active; returns the keys newly taken (their commands need
        sending again: the replica before us may have died mid-send), those
        route() claimed since the last renewal included."""
        if not self.replicated:
            return set()
        active = await self.db.run(leases.active_keys)
        held = await self.db.run(leases.claim, active, self.name, self.clock(), self.ttl_s)
        done = self.held - set(active)
        if done:
            await self.db.run(leases.release, sorted(done), self.name)
        taken = (held - self.held) | (held & self.claimed_on_ack)
        self.claimed_on_ack = set()
        if taken:
            log.info("%s now drives %s", self.name, ", ".join(sorted(taken)))
        self.held = held
        return taken

    async def take(self, owner) -> bool:
        """Claim one owner's lease now (a user started it here)."""
        if not self.replicated:
            return True
        key = lease_key(owner)
        if await self.db.run(leases.claim, [key], self.name, self.clock(), self.ttl_s):
            self.held.add(key)
            return True
        return False

    async def release_all(self) -> None:
        """Stopping on purpose: another replica takes over at once."""
        if self.replicated and self.held:
            await self.db.run(leases.release, sorted(self.held), self.name)
            self.held = set()

    async def route(self, by_owner: dict) -> dict:
        """The events this replica decides on: those of what it holds, and of
        what nobody holds (claimed now); the rest go to their holder."""
        if not self.replicated:
            return by_owner
        others = [o for o in by_owner if lease_key(o) not in self.held]
        if not others:
            return by_owner
        keys = [lease_key(o) for o in others]
        holders = await self.db.run(leases.holders, keys, self.clock())
        free = [k for k in keys if holders.get(k, self.name) == self.name]
        if free:
            claimed = await self.db.run(leases.claim, free, self.name, self.clock(), self.ttl_s)
            # an ack came before the renewal round: the work is ours now, and
            # its other devices' commands still need sending again
            self.claimed_on_ack |= claimed - self.held
            self.held |= claimed
        for owner, key in zip(others, keys):
            if key in self.held:
                continue
            events = by_owner.pop(owner)
            holder = holders.get(key)
            if holder and holder != self.name and events:
                self._forward(holder, owner, events)
            # else another replica claimed it just now: the device acks
            # again when that one sends the command again
        return by_owner

    async def others(self) -> list[str]:
        """The deployment and execution ids other replicas drive ([] alone)."""
        if not self.replicated:
            return []
        return await self.db.run(leases.owners_held_by_others, self.name, self.clock())

    async def mine(self, out: list[tuple[str, list[dict]]]) -> list[tuple[str, list[dict]]]:
        """Of commands to send again, those of what this replica holds or
        nobody holds (a finished deployment's last cancel, say): each is
        sent again by one replica, not by every one."""
        if not self.replicated or not out:
            return out
        owners = [command_owner_key(messages) for _dev, messages in out]
        unknown = sorted({k for k in owners if k is not None and k not in self.held})
        holders = await self.db.run(leases.holders, unknown, self.clock()) if unknown else {}
        return [cmd for cmd, key in zip(out, owners)
                if key is None or key in self.held or key not in holders]

    def _forward(self, holder: str, owner, events: list) -> None:
        if isinstance(owner, tuple):  # an exec ack, or a run record the bridge stored
            message = {"exe": owner[1], "acks": [
                ["stored", e.device_id, e.run] if isinstance(e, RecordStored)
                else ["ack", e.device_id, e.state, e.reason, e.run, e.run_status] for e in events]}
        else:
            message = {"dep": owner, "acks": [[a.device_id, a.step, a.state, a.reason] for a in events]}
        for part in split_list(message, "acks"):
            self.fanout.send(ack_channel(holder), part)
        self.forwarded += len(events)

    def _heard(self, message: dict, on_acks) -> None:
        acks = message.get("acks")
        if not isinstance(acks, list):
            return
        if isinstance(message.get("exe"), str):
            on_acks(("exec", message["exe"]), [RecordStored(*a[1:]) if a[0] == "stored" else ExecAck(*a[1:])
                                               for a in acks])
        elif isinstance(message.get("dep"), str):
            on_acks(message["dep"], [Ack(*a) for a in acks])
