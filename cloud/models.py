"""Tables. These are storage, not the API: `cloud.store.*` turns rows into
API documents and `cloud.schemas` describes what the API accepts.

Times are float seconds since the epoch (UTC), in DoubleField columns (a
FloatField is a 4-byte REAL on PostgreSQL: minutes off for today's epoch
seconds); JSON columns hold what has no fixed shape (flow bodies, reported
device state).
"""

from __future__ import annotations

import peewee

from cloud.db import JSONField
from cloud.natural import natural_key

database = peewee.DatabaseProxy()


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False


class SchemaVersion(BaseModel):
    version = peewee.IntegerField()
    applied_at = peewee.DoubleField()


class ApiKey(BaseModel):
    key_hash = peewee.CharField(max_length=64, unique=True)  # sha256 hex of the whole key
    prefix = peewee.CharField(max_length=16)  # shown in listings, so a key can be recognised
    name = peewee.CharField(max_length=128, default="")
    role = peewee.CharField(max_length=16)
    created_at = peewee.DoubleField()
    revoked = peewee.BooleanField(default=False)


class Flow(BaseModel):
    id = peewee.CharField(max_length=64, primary_key=True)
    name = peewee.CharField(max_length=200)
    description = peewee.TextField(default="")
    tags = JSONField(default=list)
    status = peewee.CharField(max_length=16, default="draft")  # draft | published | archived
    body = JSONField()  # the draft: definition (graph form) or steps (+ variables)
    boards = JSONField(null=True)  # boards the author targets; null: any it fits
    version = peewee.IntegerField(default=0)  # latest published version, 0 before the first
    restored_from = peewee.IntegerField(null=True)  # the version the draft was restored from
    created_at = peewee.DoubleField()
    updated_at = peewee.DoubleField()


class FlowVersion(BaseModel):
    """An immutable snapshot made by publish (or restore+publish)."""

    flow = peewee.CharField(max_length=64, index=True)
    version = peewee.IntegerField()
    name = peewee.CharField(max_length=200)
    body = JSONField()
    boards = JSONField()  # the boards it was validated for
    types = JSONField()  # node types it uses
    restored_from = peewee.IntegerField(null=True)
    created_at = peewee.DoubleField()
    # {"reason", "deployment_id", "at"} once a deployment of it was rolled back
    # (migration 13): "latest" skips it, deploying it needs force
    quarantined = JSONField(null=True)

    class Meta:
        indexes = ((("flow", "version"), True),)


class Device(BaseModel):
    id = peewee.CharField(max_length=64, primary_key=True)
    name = peewee.CharField(max_length=200, default="")
    board = peewee.CharField(max_length=64)
    tags = JSONField(default=list)
    environment = peewee.CharField(max_length=32, default="", index=True)
    password_hash = peewee.CharField(max_length=128)  # MQTT password, hashed
    key_sealed = peewee.TextField()  # HMAC key, encrypted with the server secret (cloud.secrets)
    seq = peewee.IntegerField(default=0)  # last program sequence number given to it
    online = peewee.BooleanField(default=False)
    status = JSONField(null=True)  # last retained status it reported
    health = JSONField(null=True)  # last health report
    last_seen = peewee.DoubleField(null=True)
    created_at = peewee.DoubleField()
    # Migration 12: the id's natural order (cloud.natural), which lists sort
    # by; insert_rows must name it (no default: a row without it fails).
    natural_key = peewee.CharField(max_length=160)
    # What it last reported running (copied from `status`, for filters).
    flow = peewee.CharField(max_length=64, null=True)
    ver = peewee.IntegerField(null=True)
    trial = peewee.BooleanField(default=False)

    class Meta:
        indexes = ((("natural_key", "id"), False), (("flow", "ver"), False))

    def save(self, *args, **kwargs):
        if not self.natural_key:
            self.natural_key = natural_key(self.id)
        return super().save(*args, **kwargs)


class Deployment(BaseModel):
    id = peewee.CharField(max_length=64, primary_key=True)
    flow = peewee.CharField(max_length=64, index=True)
    version = peewee.IntegerField()
    strategy = peewee.CharField(max_length=16)
    config = JSONField()  # as the user sent it
    settings = JSONField()  # resolved: defaults filled, durations in seconds
    selector = JSONField()  # target_devices, target_tags, environment as asked
    status = peewee.CharField(max_length=16, default="pending", index=True)
    phase = peewee.CharField(max_length=16, default="")
    batch = peewee.IntegerField(default=0)
    phase_since = peewee.DoubleField(null=True)
    started_at = peewee.DoubleField(null=True)
    finished_at = peewee.DoubleField(null=True)
    reason = peewee.TextField(default="")
    created_at = peewee.DoubleField()
    # A new random value each time a step changes the deployment or its
    # targets (migration 7): what lets a process trust the targets it keeps
    # in memory between steps (cloud.store.rollout).
    rev = peewee.CharField(max_length=16, default="")
    # the rehearsal on simulated twins (cloud/rehearsal.py; migration 15):
    # None when off, else {"status": pending|running|passed|failed, "runs", ...result}
    rehearsal = JSONField(null=True)
    # Rate control's state (cloud.engine.state.Deployment.pace; migration 11).
    pace = JSONField(null=True)


class Target(BaseModel):
    deployment = peewee.CharField(max_length=64)
    device = peewee.CharField(max_length=64)
    position = peewee.IntegerField()
    board = peewee.CharField(max_length=64)
    batch = peewee.IntegerField(default=0)
    seq = peewee.IntegerField(null=True)  # the program sequence number it was given
    status = peewee.CharField(max_length=16, default="pending")
    step = peewee.CharField(max_length=16, default="")
    ack = peewee.CharField(max_length=16, default="")
    sent_at = peewee.DoubleField(null=True)
    applied = peewee.BooleanField(default=False)
    reason = peewee.TextField(default="")
    updated_at = peewee.DoubleField(null=True)

    class Meta:
        indexes = ((("deployment", "device"), True), (("device",), False), (("deployment", "position"), False))


class Program(BaseModel):
    """A deployment's flow version compiled for one board."""

    deployment = peewee.CharField(max_length=64)
    board = peewee.CharField(max_length=64)
    data = peewee.TextField()  # the canonical program bytes, as text (ASCII)
    sha256 = peewee.CharField(max_length=64)
    size = peewee.IntegerField()

    class Meta:
        indexes = ((("deployment", "board"), True),)


class Command(BaseModel):
    """Every command sent to a device, kept until the device has answered it,
    so a restarted cloud or a device back online gets it again (same id: the
    device does not apply it twice)."""

    id = peewee.CharField(max_length=200, primary_key=True)
    deployment = peewee.CharField(max_length=64, index=True)
    device = peewee.CharField(max_length=64)
    step = peewee.CharField(max_length=16)
    payload = JSONField()  # the MQTT message (or messages, for a chunked program)
    created_at = peewee.DoubleField()
    sent_count = peewee.IntegerField(default=0)
    last_sent_at = peewee.DoubleField(null=True)
    done = peewee.BooleanField(default=False)

    class Meta:
        indexes = ((("device", "done"), False),)


class DeploymentEvent(BaseModel):
    """What happened to a deployment, in order: the record of each action."""

    deployment = peewee.CharField(max_length=64, index=True)
    at = peewee.DoubleField()
    kind = peewee.CharField(max_length=32)
    device = peewee.CharField(max_length=64, default="")
    detail = JSONField(null=True)


class RunRecord(BaseModel):
    """One run of a flow on a device, as the device reported it (ff/<dev>/runs)."""

    device = peewee.CharField(max_length=64)
    run = peewee.IntegerField()  # the device's run counter
    flow = peewee.CharField(max_length=64, null=True)
    ver = peewee.IntegerField(null=True)
    exec = peewee.CharField(max_length=200, null=True)
    trigger = peewee.CharField(max_length=64, null=True)
    status = peewee.CharField(max_length=16)
    t_ms = peewee.BigIntegerField(null=True)
    us = peewee.IntegerField(default=0)
    logs = JSONField(null=True)
    received_at = peewee.DoubleField()
    err = peewee.TextField(null=True)  # why the run failed, as the device said

    class Meta:
        indexes = ((("device", "received_at"), False),)


class NodeRecord(BaseModel):
    """A node's part in a run: timing, output summary, error."""

    record = peewee.IntegerField(index=True)  # the RunRecord's id (a device's run counter restarts)
    device = peewee.CharField(max_length=64)
    run = peewee.IntegerField()
    node = peewee.CharField(max_length=64)
    type = peewee.CharField(max_length=32, null=True)
    us = peewee.IntegerField(default=0)
    port = peewee.IntegerField(null=True)
    out = peewee.TextField(null=True)
    err = peewee.TextField(null=True)


class Execution(BaseModel):
    """A flow version run once, on demand, on some devices (seed 000, 004)."""

    id = peewee.CharField(max_length=64, primary_key=True)
    flow = peewee.CharField(max_length=64, index=True)
    version = peewee.IntegerField()
    overrides = JSONField(null=True)
    selector = JSONField()
    status = peewee.CharField(max_length=16, default="pending", index=True)
    timeout = peewee.DoubleField()
    retry_of = peewee.CharField(max_length=64, null=True)
    created_at = peewee.DoubleField()
    started_at = peewee.DoubleField(null=True)
    finished_at = peewee.DoubleField(null=True)
    pipeline_run = peewee.CharField(max_length=64, null=True)  # added by migration 6
    triggered_by = peewee.CharField(max_length=300, default="")  # user:<email> or key:<name> (migration 10)


class ExecTarget(BaseModel):
    execution = peewee.CharField(max_length=64)
    device = peewee.CharField(max_length=64)
    position = peewee.IntegerField()
    status = peewee.CharField(max_length=16, default="pending")  # pending running completed failed cancelled timed_out
    run = peewee.IntegerField(null=True)
    reason = peewee.TextField(default="")
    finished_at = peewee.DoubleField(null=True)
    # How the run `done` named went, while its record is awaited (migration 11;
    # cloud.engine.execution, rule 4).
    outcome = peewee.CharField(max_length=16, default="")

    class Meta:
        indexes = ((("execution", "device"), True), (("execution", "position"), False))


class Webhook(BaseModel):
    url = peewee.TextField()
    events = JSONField()  # event names or prefixes ("deployment.", "*")
    secret_sealed = peewee.TextField()  # signs deliveries; sealed like device keys
    active = peewee.BooleanField(default=True)
    created_at = peewee.DoubleField()


class Delivery(BaseModel):
    """One event for one webhook: retried with backoff, kept as a dead
    letter when it never gets through."""

    webhook = peewee.IntegerField(index=True)
    event = peewee.CharField(max_length=64)
    payload = JSONField()
    status = peewee.CharField(max_length=16, default="pending")  # pending | delivered | dead
    attempts = peewee.IntegerField(default=0)
    next_at = peewee.DoubleField()
    last_error = peewee.TextField(default="")
    created_at = peewee.DoubleField()
    delivered_at = peewee.DoubleField(null=True)

    class Meta:
        indexes = ((("status", "next_at"), False),)


class Pipeline(BaseModel):
    """An ordered list of flows (seed 003), run one after the other."""

    id = peewee.CharField(max_length=64, primary_key=True)
    name = peewee.CharField(max_length=200)
    description = peewee.TextField(default="")
    steps = JSONField()  # [{"flow_id", "on_failure": "stop" | "continue"}]
    targets = JSONField()  # target_devices / target_tags / environment / all
    use_count = peewee.IntegerField(default=0)
    last_used_at = peewee.DoubleField(null=True)
    created_at = peewee.DoubleField()


class PipelineRun(BaseModel):
    id = peewee.CharField(max_length=64, primary_key=True)
    pipeline = peewee.CharField(max_length=64, index=True)
    status = peewee.CharField(max_length=16, default="pending")
    current_step = peewee.IntegerField(default=0)
    steps_snapshot = JSONField()
    triggered_by = peewee.CharField(max_length=300, default="")  # user:<email> or key:<name> (widened by migration 10)
    created_at = peewee.DoubleField()
    started_at = peewee.DoubleField(null=True)
    completed_at = peewee.DoubleField(null=True)


class IdempotentAnswer(BaseModel):
    """The first answer to a creating POST sent with an Idempotency-Key
    (cloud.store.idempotency), kept a day."""

    scope = peewee.CharField(max_length=64)  # sha256 of the API key that sent it
    key = peewee.CharField(max_length=255)
    fingerprint = peewee.CharField(max_length=64)  # sha256 of method, path and body
    status = peewee.IntegerField()
    answer = peewee.TextField()  # the body, sealed with the server secret
    created_at = peewee.DoubleField(index=True)

    class Meta:
        indexes = ((("scope", "key"), True),)


class User(BaseModel):
    """A person who logs in to the dashboard (cloud.store.users). The table is
    `account`: `user` is a reserved word in PostgreSQL."""

    email = peewee.CharField(max_length=254, unique=True)  # lower-cased
    password_hash = peewee.CharField(max_length=80)  # bcrypt, cost 12 ($2b$12$...)
    role = peewee.CharField(max_length=16)  # admin | operator | viewer, as API keys
    created_at = peewee.DoubleField()

    class Meta:
        table_name = "account"


class Session(BaseModel):
    """A login: its token is stored as a sha256 hash (a random 32-byte token,
    like an API key). Refreshing replaces the row; `logged_in_at` carries over."""

    token_hash = peewee.CharField(max_length=64, unique=True)
    user = peewee.IntegerField(index=True)
    logged_in_at = peewee.DoubleField()  # refresh is allowed until this + 7 days
    expires_at = peewee.DoubleField()
    refresh_until = peewee.DoubleField(index=True)

    class Meta:
        table_name = "user_session"
class Lease(BaseModel):
    """Which cloud replica drives a deployment, an execution (and the
    pipeline run whose step it is) until when (cloud.store.leases)."""

    key = peewee.CharField(max_length=80, primary_key=True)  # "deployment:<id>", "execution:<id>"
    holder = peewee.CharField(max_length=64)  # the replica's name
    expires_at = peewee.DoubleField()


ALL = [SchemaVersion, ApiKey, Flow, FlowVersion, Device, Deployment, Target, Program, Command, DeploymentEvent,
       RunRecord, NodeRecord, Execution, ExecTarget, Webhook, Delivery,
       Pipeline, PipelineRun, IdempotentAnswer, User, Session, Lease]
