"""Schema migrations: a version table and ordered steps, so an upgrade keeps
the data. Each step runs in its own transaction and records its number;
`migrate` applies the steps a database has not seen yet.

Adding a step: append `(n, function)` to STEPS; the function gets the
peewee database and uses `playhouse.migrate` (add_column, add_index...)
for tables that exist, `create_tables` for new ones.
"""

from __future__ import annotations

import time

import peewee
from playhouse import migrate as pw_migrate

from cloud import models
from cloud.natural import natural_key


def _v1_initial(db: peewee.Database) -> None:
    db.create_tables([models.ApiKey, models.Flow, models.FlowVersion, models.Device, models.Deployment,
                      models.Target, models.Program, models.Command, models.DeploymentEvent], safe=True)


def _v2_device_last_seen_index(db: peewee.Database) -> None:
    """Device lists sort and filter by when a device was last heard from."""
    migrator = pw_migrate.SchemaMigrator.from_database(db)
    names = {ix.name for ix in db.get_indexes("device")}
    if "device_last_seen" not in names:
        pw_migrate.migrate(migrator.add_index("device", ("last_seen",), False))


def _v3_run_records(db: peewee.Database) -> None:
    """Run reports from the devices (ff/<dev>/runs)."""
    db.create_tables([models.RunRecord, models.NodeRecord], safe=True)


def _v4_executions(db: peewee.Database) -> None:
    """On-demand runs of a flow version on devices."""
    db.create_tables([models.Execution, models.ExecTarget], safe=True)
    migrator = pw_migrate.SchemaMigrator.from_database(db)
    if "run_record_exec" not in {ix.name for ix in db.get_indexes("run_record")}:
        pw_migrate.migrate(migrator.add_index("run_record", ("exec",), False))


def _v5_webhooks(db: peewee.Database) -> None:
    db.create_tables([models.Webhook, models.Delivery], safe=True)


def _v6_pipelines(db: peewee.Database) -> None:
    db.create_tables([models.Pipeline, models.PipelineRun], safe=True)
    # A database made at step 4 or later by this code already has the column
    # (create_tables uses today's models); an older one gets it added.
    if "pipeline_run" not in {c.name for c in db.get_columns("execution")}:
        migrator = pw_migrate.SchemaMigrator.from_database(db)
        pw_migrate.migrate(migrator.add_column("execution", "pipeline_run", models.Execution.pipeline_run))


def _v7_big_fleets(db: peewee.Database) -> None:
    """Targets read in pages (by position), and the deployment's revision."""
    migrator = pw_migrate.SchemaMigrator.from_database(db)
    ops = []
    if "rev" not in {c.name for c in db.get_columns("deployment")}:
        ops.append(migrator.add_column("deployment", "rev", models.Deployment.rev))
    for table, key in (("target", "deployment"), ("exec_target", "execution")):
        if f"{table}_{key}_position" not in {ix.name for ix in db.get_indexes(table)}:
            ops.append(migrator.add_index(table, (key, "position"), False))
    pw_migrate.migrate(*ops)


def _v8_run_err(db: peewee.Database) -> None:
    """Why a run failed (the run record's `err`: a budget, the failing node)."""
    if "err" not in {c.name for c in db.get_columns("run_record")}:
        migrator = pw_migrate.SchemaMigrator.from_database(db)
        pw_migrate.migrate(migrator.add_column("run_record", "err", models.RunRecord.err))


def _v9_idempotency(db: peewee.Database) -> None:
    """First answers to creating POSTs sent with an Idempotency-Key."""
    db.create_tables([models.IdempotentAnswer], safe=True)


def _v10_accounts(db: peewee.Database) -> None:
    """Users and their sessions; who triggered an execution (a user or a key,
    not a role), with room for an email in both triggered_by columns."""
    db.create_tables([models.User, models.Session], safe=True)
    migrator = pw_migrate.SchemaMigrator.from_database(db)
    if "triggered_by" not in {c.name for c in db.get_columns("execution")}:
        pw_migrate.migrate(migrator.add_column("execution", "triggered_by", models.Execution.triggered_by))
    if isinstance(db, peewee.PostgresqlDatabase):  # SQLite does not enforce a VARCHAR's length
        db.execute_sql("ALTER TABLE pipeline_run ALTER COLUMN triggered_by TYPE VARCHAR(300)")


def _v11_cores(db: peewee.Database) -> None:
    """An execution target's outcome awaiting its run record; a deployment's
    rate control state."""
    migrator = pw_migrate.SchemaMigrator.from_database(db)
    ops = []
    if "outcome" not in {c.name for c in db.get_columns("exec_target")}:
        ops.append(migrator.add_column("exec_target", "outcome", models.ExecTarget.outcome))
    if "pace" not in {c.name for c in db.get_columns("deployment")}:
        ops.append(migrator.add_column("deployment", "pace", models.Deployment.pace))
    pw_migrate.migrate(*ops)


def _v12_device_lists(db: peewee.Database) -> None:
    """Device lists sort by the id's natural order and filter by the flow,
    version and trial each device reported (copied out of `status`)."""
    migrator = pw_migrate.SchemaMigrator.from_database(db)
    have = {c.name for c in db.get_columns("device")}
    ops = []
    if "natural_key" not in have:  # nullable here: the rows are filled below, and new ones by the model
        ops.append(migrator.add_column("device", "natural_key", peewee.CharField(max_length=160, null=True)))
    for name in ("flow", "ver", "trial"):
        if name not in have:
            ops.append(migrator.add_column("device", name, getattr(models.Device, name)))
    pw_migrate.migrate(*ops)
    for dev in models.Device.select(models.Device.id, models.Device.status).iterator():
        status = dev.status or {}
        models.Device.update(natural_key=natural_key(dev.id), flow=status.get("flow"), ver=status.get("ver"),
                             trial=bool(status.get("trial"))).where(models.Device.id == dev.id).execute()
    indexes = {ix.name for ix in db.get_indexes("device")}
    ops = [migrator.add_index("device", cols, False) for cols in (("natural_key", "id"), ("flow", "ver"))
           if "device_" + "_".join(cols) not in indexes]
    pw_migrate.migrate(*ops)


def _v13_quarantine(db: peewee.Database) -> None:
    """A version a deployment rolled back is quarantined (issue 14)."""
    if "quarantined" not in {c.name for c in db.get_columns("flow_version")}:
        migrator = pw_migrate.SchemaMigrator.from_database(db)
        pw_migrate.migrate(migrator.add_column("flow_version", "quarantined", models.FlowVersion.quarantined))


def _v14_leases(db: peewee.Database) -> None:
    """Cloud replicas: who drives what (cloud.store.leases)."""
    db.create_tables([models.Lease], safe=True)


def _v15_rehearsal(db: peewee.Database) -> None:
    """A deployment's rehearsal on simulated twins (issue 14)."""
    if "rehearsal" not in {c.name for c in db.get_columns("deployment")}:
        migrator = pw_migrate.SchemaMigrator.from_database(db)
        pw_migrate.migrate(migrator.add_column("deployment", "rehearsal", models.Deployment.rehearsal))


STEPS = [
    (1, _v1_initial),
    (2, _v2_device_last_seen_index),
    (3, _v3_run_records),
    (4, _v4_executions),
    (5, _v5_webhooks),
    (6, _v6_pipelines),
    (7, _v7_big_fleets),
    (8, _v8_run_err),
    (9, _v9_idempotency),
    (10, _v10_accounts),
    (11, _v11_cores),
    (12, _v12_device_lists),
    (13, _v13_quarantine),
    (14, _v14_leases),
    (15, _v15_rehearsal),
]
LATEST = STEPS[-1][0]


def current_version(db: peewee.Database) -> int:
    if not db.table_exists("schema_version"):
        return 0
    row = models.SchemaVersion.select(peewee.fn.MAX(models.SchemaVersion.version)).scalar()
    return row or 0


# PostgreSQL advisory lock held while migrating: replicas starting at once
# take turns, and the later ones find the steps done.
MIGRATION_LOCK = 0x6666_6d69  # "ffmi"


def migrate(db: peewee.Database, target: int | None = None) -> list[int]:
    """Apply the missing steps up to `target` (default: all); returns those applied."""
    if not isinstance(db, peewee.PostgresqlDatabase):
        return _migrate(db, target)
    db.execute_sql("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        return _migrate(db, target)
    finally:
        db.execute_sql("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


def _migrate(db: peewee.Database, target: int | None) -> list[int]:
    models.database.initialize(db)
    db.create_tables([models.SchemaVersion], safe=True)
    applied = []
    for number, step in STEPS:
        if target is not None and number > target:
            break
        if number <= current_version(db):
            continue
        with db.atomic():
            step(db)
            models.SchemaVersion.create(version=number, applied_at=time.time())
        applied.append(number)
    return applied
