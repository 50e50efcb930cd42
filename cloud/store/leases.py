"""Leases: which cloud replica drives which deployment and execution
(docs/decisions.md, "Replicas").

Rules:
1. A lease is a row (key, holder, expires_at); keys are `deployment:<id>`
   and `execution:<id>`. A pipeline run moves on inside the transaction of
   its current step's execution, so that execution's lease is the run's.
2. `claim` takes each key that has no lease, or whose lease expired, or
   that the claimer already holds, and sets its expiry to now + ttl: one
   upsert whose conflict clause updates only such rows. On PostgreSQL two
   replicas claiming one key at once are serialised on the row: the second
   finds the first's fresh lease and leaves it.
3. The holder renews its leases every tick, well inside the ttl. A replica
   that dies stops renewing; once its leases expire another claims them.
   A replica stopping on purpose `release`s them at once.
4. Expiry is judged on the claimer's clock (Config.clock): replicas' clocks
   must agree to well within the ttl (NTP does).
5. A lease says who drives (ticks, timers, acks, re-sends); every step is
   still one transaction that locks what it changes, so a user command run
   by another replica (pause, cancel) cannot interleave with it.

SQLite is one process: its one cloud never shares, and the driver does not
ask (Config.replica is None; `fleetflow serve --replica` wants PostgreSQL).
"""

from __future__ import annotations

from peewee import EXCLUDED

from cloud.db import chunks
from cloud.models import Lease

STALE_S = 3600.0  # an expired lease nobody took (its work had finished) is deleted after this


def deployment_key(dep_id: str) -> str:
    return f"deployment:{dep_id}"


def execution_key(exe_id: str) -> str:
    return f"execution:{exe_id}"


def claim(keys: list[str], holder: str, now: float, ttl_s: float) -> set[str]:
    """Take or renew the lease of each key that is free, expired or ours
    (rule 2); returns the keys `holder` holds now."""
    held: set[str] = set()
    for chunk in chunks(sorted(set(keys))):  # sorted: two claimers lock rows in one order
        rows = [{"key": k, "holder": holder, "expires_at": now + ttl_s} for k in chunk]
        (Lease.insert_many(rows)
         .on_conflict(conflict_target=[Lease.key],
                      update={Lease.holder: EXCLUDED.holder, Lease.expires_at: EXCLUDED.expires_at},
                      where=(Lease.holder == holder) | (Lease.expires_at < now))
         .execute())
        held |= {k for (k,) in Lease.select(Lease.key).where(Lease.key.in_(chunk) & (Lease.holder == holder)
                                                             & (Lease.expires_at >= now)).tuples()}
    Lease.delete().where(Lease.expires_at < now - STALE_S).execute()
    return held


def release(keys: list[str], holder: str) -> None:
    """Give up the leases of `keys` that `holder` has (finished work, or a replica stopping)."""
    for chunk in chunks(list(keys)):
        Lease.delete().where(Lease.key.in_(chunk) & (Lease.holder == holder)).execute()


def holders(keys: list[str], now: float) -> dict[str, str]:
    """key -> the replica whose lease on it has not expired (keys nobody holds are left out)."""
    out: dict[str, str] = {}
    for chunk in chunks(list(keys)):
        out.update(Lease.select(Lease.key, Lease.holder).where(Lease.key.in_(chunk) & (Lease.expires_at >= now))
                   .tuples())
    return out


def owners_held_by_others(holder: str, now: float) -> list[str]:
    """The deployment and execution ids other replicas hold unexpired leases on."""
    return [key.partition(":")[2] for (key,) in Lease.select(Lease.key)
            .where((Lease.holder != holder) & (Lease.expires_at >= now)).tuples()]


def active_keys() -> list[str]:
    """The lease keys of the work still to drive: deployments that are
    running, paused or have targets on trial (rollout.active_deployments),
    executions pending or running."""
    from cloud.models import Execution
    from cloud.store.rollout import active_deployments

    keys = [deployment_key(d) for d in active_deployments()]
    keys += [execution_key(e) for (e,) in Execution.select(Execution.id)
             .where(Execution.status.in_(("pending", "running"))).tuples()]
    return keys
