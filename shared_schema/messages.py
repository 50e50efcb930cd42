"""Message bodies on the MQTT topics (docs/device-protocol.md), as pydantic models.

Unknown fields are kept (`extra="allow"`): a newer firmware may say more
than this cloud knows, and that must not make its messages unreadable.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Op = Literal["deploy", "stage", "activate", "rollback", "exec", "cancel", "ping", "chunk"]
AckState = Literal["received", "staged", "applied", "healthy", "failed", "rolled_back", "rejected", "done"]
RunStatus = Literal["completed", "failed"]
Slot = Literal["a", "b"]
# Characters of a device's reason kept (a rollback's carries the failing
# node's error): what the cloud stores and shows, whatever a device sends.
REASON_MAX = 500


class _Msg(BaseModel):
    model_config = ConfigDict(extra="allow")


class HealthRule(_Msg):
    """When a deployment on trial counts as healthy."""

    runs: int = Field(default=3, ge=0)
    seconds: float = Field(default=5, ge=0)
    max_error_rate: float = Field(default=0.25, ge=0, le=1)


class Envelope(_Msg):
    flow: str
    ver: int = Field(ge=0)
    seq: int = Field(ge=0)
    size: int = Field(ge=0)
    sha: str = Field(pattern=r"^[0-9a-f]{64}$")
    sig: str = Field(pattern=r"^[0-9a-f]{64}$")
    prog: str | None = None
    chunks: int | None = Field(default=None, ge=1)
    chunk_size: int | None = Field(default=None, ge=1)


class Status(_Msg):
    state: Literal["online", "offline"]
    fw: str | None = None
    board: str | None = None
    nt_hash: str | None = None
    types: list[str] = Field(default_factory=list)
    slot: Slot | None = None
    flow: str | None = None
    ver: int | None = None
    seq: int | None = None
    trial: bool = False
    heap: int | None = None
    failed: dict | None = None  # {"slot", "reason"}: the slot last rolled back from, and why
    reset: str | None = None  # why the device last started: power, watchdog, hard, soft, deepsleep
    synced: bool | None = None  # its clock was set by NTP (None: a firmware that doesn't say)
    time: float | None = None  # its clock, Unix seconds, when it sent this (None: not synced)
    rssi: int | None = None  # Wi-Fi signal, dBm (None: Wi-Fi down)
    wifi_reconnects: int = 0  # Wi-Fi connects after a loss, since boot


class Command(_Msg):
    """`{id, op, ...}`; the op's fields (envelope, health, reason, ...) ride along as extras."""

    id: str = Field(min_length=1)
    op: Op


class Ack(_Msg):
    id: str
    op: str | None = None
    state: AckState
    reason: str | None = None
    seq: int | None = None
    slot: Slot | None = None
    next: int | None = None  # chunked transfers: the chunk the device wants next
    status: str | None = None  # exec: the run's status
    run: int | None = None  # exec: the run record id

    @field_validator("reason")
    @classmethod
    def _bounded(cls, value: str | None) -> str | None:
        return value[:REASON_MAX] if value else value


class Health(_Msg):
    uptime_s: float | None = None
    heap: int | None = None
    runs: int = 0
    errors: int = 0
    last_error: str | None = None
    slot: Slot | None = None
    trial: bool = False
    flow: str | None = None
    ver: int | None = None
    dropped: int = 0  # run records dropped from the full buffer while offline
    out_dropped: int = 0  # queued acks and outputs dropped
    reconnects: int = 0  # MQTT connects since boot
    loop_errors: int = 0  # exceptions the device loop caught and went on from
    synced: bool | None = None  # its clock was set by NTP
    time: float | None = None  # its clock, Unix seconds, when it sent this (None: not synced)
    rssi: int | None = None  # Wi-Fi signal, dBm (None: Wi-Fi down)
    wifi_reconnects: int = 0  # Wi-Fi connects after a loss, since boot


class NodeRecord(_Msg):
    id: str
    type: str | None = None
    us: int = 0
    out: str | None = None
    port: int | None = None
    err: str | None = None


class RunRecord(_Msg):
    run: int
    flow: str | None = None
    ver: int | None = None
    exec: str | None = None
    trigger: str | None = None
    status: RunStatus
    t_ms: int | None = None
    us: int = 0
    nodes: list[NodeRecord] = Field(default_factory=list)
    logs: list[list[Any]] = Field(default_factory=list)  # [severity, node id, text]
    err: str | None = None  # why the run failed (a budget, the failing node, bad overrides)


class RunsBatch(_Msg):
    dev: str
    runs: list[RunRecord] = Field(default_factory=list)
    dropped: int = 0
    # the device's clock when it sent the batch: `time` (Unix seconds, None
    # while not synced) was its clock at tick `t_ms`, so a record's wall time
    # is time - (t_ms - record t_ms) / 1000
    synced: bool | None = None
    time: float | None = None
    t_ms: int | None = None
