"""What the bridge owes the broker, with no I/O: the acks of the QoS 1
messages it heard, and the run reports waiting for their transaction.

Rules (docs/decisions.md, "Acknowledged data"):
1. A QoS 1 message is acked once handled, never on arrival, and acks go
   out in the order the messages came (MQTT 3.1.1 section 4.6): a message
   handled early waits for those before it.
2. A message id means something on its own connection only. When the link
   drops, the acks still owed are void (the broker sends those messages
   again on the next link), but reports already heard are kept and stored:
   a broker that died may never send them again.
3. A report heard again (same topic and bytes: the broker's resend after a
   reconnect, or a device's after a lost PUBACK) is stored once. A copy of
   one still waiting takes over the wait if the first copy's ack is void,
   else it is acked at once; a copy of one stored lately is acked at once.
4. A report is acked once its transaction has committed; one the database
   refused on its own is acked too (a resend would be refused again).
   Reports the database could not take (it was unreachable) are put back,
   unacked, in their order.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict, deque
from dataclasses import dataclass

REMEMBER = 4096  # digests of stored reports kept, to recognise a copy (rule 3)


def digest(topic: str, payload: bytes) -> bytes:
    return hashlib.blake2b(topic.encode() + b"\0" + payload, digest_size=16).digest()


@dataclass(eq=False)
class Report:
    device: str
    batch: dict  # a RunsBatch as a dict
    received: float
    token: list | None  # from Inbox.hold; None: nothing to ack (QoS 0)
    digest: bytes
    nodes: int  # node records in it


class Inbox:
    def __init__(self, remember: int = REMEMBER):
        self.link = 0
        self._acks: deque[list] = deque()  # [mid, handled] of this link's QoS 1 messages, in arrival order
        self._waiting: OrderedDict[bytes, Report] = OrderedDict()  # reports not stored yet, in arrival order
        self._stored: OrderedDict[bytes, None] = OrderedDict()  # digests of the last `remember` stored
        self._remember = remember
        self.nodes = 0  # node records waiting

    def __len__(self) -> int:
        """Reports waiting for their transaction."""
        return len(self._waiting)

    def new_link(self) -> None:
        """The connection began or ended (rule 2)."""
        self.link += 1
        self._acks.clear()

    def hold(self, mid: int, qos: int) -> list | None:
        """The ack token of a message just heard (None for QoS 0)."""
        if qos == 0:
            return None
        entry = [mid, False]
        self._acks.append(entry)
        return [self.link, entry]

    def handled(self, token: list | None) -> list[int]:
        """Mark the message handled; the message ids to ack now, in order (rule 1)."""
        if token is None or token[0] != self.link:
            return []
        token[1][1] = True
        due = []
        while self._acks and self._acks[0][1]:
            due.append(self._acks.popleft()[0])
        return due

    def add(self, report: Report) -> list[int]:
        """Keep a report for the next transaction; the ids to ack now when it is a copy (rule 3)."""
        first = self._waiting.get(report.digest)
        if first is not None:
            if first.token is None or first.token[0] != self.link:
                first.token = report.token
                return []
            return self.handled(report.token)
        if report.digest in self._stored:
            return self.handled(report.token)
        self._waiting[report.digest] = report
        self.nodes += report.nodes
        return []

    def take(self) -> list[Report]:
        """Every report waiting, oldest first, for one transaction."""
        reports = list(self._waiting.values())
        self._waiting.clear()
        self.nodes = 0
        return reports

    def put_back(self, reports: list[Report]) -> list[int]:
        """Reports the database could not take, before any heard since (rule
        4); the ids to ack now (copies heard meanwhile)."""
        later = self._waiting
        self._waiting = OrderedDict((r.digest, r) for r in reports)
        self.nodes = sum(r.nodes for r in reports)
        due = []
        for r in later.values():
            due += self.add(r)
        return due

    def stored(self, reports: list[Report]) -> list[int]:
        """The reports' transaction committed (or refused them for good): the
        ids to ack now, copies heard during the transaction included."""
        due = []
        for r in reports:
            self._stored[r.digest] = None
            due += self.handled(r.token)
            copy = self._waiting.pop(r.digest, None)
            if copy is not None:
                self.nodes -= copy.nodes
                due += self.handled(copy.token)
        while len(self._stored) > self._remember:
            self._stored.popitem(last=False)
        return due
