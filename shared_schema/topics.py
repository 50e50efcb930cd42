"""MQTT topic names, for both sides (docs/device-protocol.md).

    ff/<dev>/status   device -> cloud, QoS 1, retained (LWT: offline)
    ff/<dev>/cmd      cloud -> device, QoS 1
    ff/<dev>/ack      device -> cloud, QoS 1
    ff/<dev>/health   device -> cloud, QoS 0
    ff/<dev>/runs     device -> cloud, QoS 1
    ff/<dev>/out/<t>  what mqtt_out publishes
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("status", "cmd", "ack", "health", "runs", "out")
QOS = {"status": 1, "cmd": 1, "ack": 1, "health": 0, "runs": 1}
# What the cloud subscribes to: everything devices publish, except `out`.
CLOUD_KINDS = ("status", "ack", "health", "runs")
# What every cloud replica hears, not one of them (retained; cloud_subscriptions).
PLAIN_KINDS = ("status",)


class TopicError(ValueError):
    """A device id or topic that cannot be used."""


def check_device_id(dev: str) -> str:
    """Device ids become one topic level and the MQTT username: no '/', '+', '#', '$'."""
    if not isinstance(dev, str) or not dev or any(c in dev for c in "/+#\x00") or dev.startswith("$"):
        raise TopicError(f"device id {dev!r} cannot be an MQTT topic level (no '/', '+', '#', NUL, leading '$')")
    return dev


def check_share_group(group: str) -> str:
    """A shared subscription's group name is one topic level (MQTT 5, 4.8.2): no '/', '+', '#'."""
    if not isinstance(group, str) or not group or any(c in group for c in "/+#\x00"):
        raise TopicError(f"share group {group!r} must be one topic level (no '/', '+', '#', NUL)")
    return group


@dataclass(frozen=True)
class Topics:
    prefix: str = "ff"

    def _t(self, dev: str, kind: str) -> str:
        return f"{self.prefix}/{check_device_id(dev)}/{kind}"

    def status(self, dev: str) -> str:
        return self._t(dev, "status")

    def cmd(self, dev: str) -> str:
        return self._t(dev, "cmd")

    def ack(self, dev: str) -> str:
        return self._t(dev, "ack")

    def health(self, dev: str) -> str:
        return self._t(dev, "health")

    def runs(self, dev: str) -> str:
        return self._t(dev, "runs")

    def out(self, dev: str, t: str) -> str:
        return f"{self._t(dev, 'out')}/{t}"

    # -- subscriptions ------------------------------------------------------

    def all(self, kind: str) -> str:
        """Wildcard for one kind over every device: `ff/+/status`."""
        if kind not in KINDS:
            raise TopicError(f"unknown topic kind {kind!r}; kinds: {', '.join(KINDS)}")
        return f"{self.prefix}/+/{kind}" + ("/#" if kind == "out" else "")

    def cloud_subscriptions(self, share_group: str | None = None) -> list[tuple[str, int]]:
        """(filter, qos) pairs the cloud subscribes to. With `share_group`
        (cloud replicas, docs/decisions.md "Replicas") every kind but status
        is a shared subscription, `$share/<group>/ff/+/ack`: the broker hands
        each message to one replica of the group. Status stays a plain
        subscription on every replica: the broker sends retained messages
        to a plain subscription when it is made, and MQTT 5 (4.8.2) says not
        to a shared one, so the retained copies are what tells a replica
        (re)connecting which devices are online."""
        if share_group is not None:
            check_share_group(share_group)
        shared = () if share_group is None else set(CLOUD_KINDS) - set(PLAIN_KINDS)
        return [(f"$share/{share_group}/{self.all(kind)}" if kind in shared else self.all(kind), QOS[kind])
                for kind in CLOUD_KINDS]

    def acl_pattern(self) -> str:
        """Mosquitto ACL line confining each device to its own subtree."""
        return f"pattern readwrite {self.prefix}/%u/#"

    def parse(self, topic: str) -> tuple[str, str, str | None]:
        """`ff/dev1/out/temp` -> ("dev1", "out", "temp"); TopicError when not ours."""
        parts = topic.split("/", 3)
        if len(parts) < 3 or parts[0] != self.prefix or parts[2] not in KINDS or not parts[1]:
            raise TopicError(f"{topic!r} is not a fleetflow topic under {self.prefix!r}")
        rest = parts[3] if len(parts) == 4 else None
        if (parts[2] == "out") != (rest is not None):
            raise TopicError(f"{topic!r}: only 'out' topics have a sub-topic")
        return parts[1], parts[2], rest
