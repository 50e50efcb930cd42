"""The driver: carries out what the decision cores ask for (it lives outside
`cloud/engine/`, which holds only pure code, since it talks to the store and
the bridge): deployments (`decide`), and executions and the pipeline runs
they are steps of.

Acks from the bridge, user commands from the API and the passing of time
all end in `cloud.store.rollout.step`, which decides and records in one
transaction; the driver then publishes the commands it produced. A command
is recorded before it is sent, so a crash in between only means it is sent
on restart; re-sending is always safe (same id, same bytes).

Replicas (Config.replica; docs/decisions.md, "Replicas"): the driver steps
only what its replica holds the lease of (cloud.leaseholder), renewing them
every tick; an ack heard for what another replica holds is handed to it
(cloud.fanout), and what nobody holds is claimed. When a replica takes a
lease over (the one before died), it sends that work's unanswered commands
again at once: the device acks a repeat with the state it reached, which
is how acks lost with the dead replica come back. Re-sends (a device back
online, the bridge reconnected, the stale timer) are of what this replica
holds, so each goes out once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from shared_schema.commands import EXECUTION_PREFIX, parse_command_id

from cloud.engine.execution import ExecAck, RecordStored
from cloud import live
from cloud import rehearsal
from cloud.engine.state import Ack, Start
from cloud.errors import Conflict
from cloud.leaseholder import Leaseholder, command_owner_key
from cloud.store import deployments as deployment_store
from cloud.store import executions, pipelines, rollout

log = logging.getLogger("fleetflow.driver")
PUBLISH_CONCURRENCY = 256
# A device that refuses a chunk because an earlier one is missing (lost: its
# inbox overflowed while it waited on its own publish, say) is sent the
# chunks from the one it wants at once, at most once per (transfer, chunk)
# in this window: the chunks still in flight behind the lost one are refused
# with the same `next` and must not each cause another round.
CHUNK_RESEND_WINDOW_S = 2.0
MAX_GATHER_S = 1.0


class Driver:
    def __init__(self, db, box, config, bridge=None, streams=None, fanout=None):
        self.db = db
        self.streams = streams  # cloud.streams.Streams: live updates for event-stream clients
        self.box = box
        self.clock = config.clock
        self.tick_s = config.engine_tick_s
        self.resend_after_s = config.resend_after_s
        self.bridge = bridge
        self._acks: asyncio.Queue = asyncio.Queue()
        self._background: set[asyncio.Task] = set()
        self.leases = Leaseholder(db, config, fanout, on_acks=self._handed)
        self._chunks_resent: dict[tuple[str, int], float] = {}  # (transfer, chunk) -> when

    # -- inputs ----------------------------------------------------------------------

    def on_ack(self, device_id: str, ack) -> None:
        """An ack from the bridge (a shared_schema.messages.Ack)."""
        if ack.state == "rejected" and ack.next is not None:
            self._chunk_refused(device_id, ack.id, ack.next)
        ref = parse_command_id(ack.id)
        if ref is None:
            return  # not a deployment's or an execution's command (a ping, a chunk)
        if ref.device != device_id:
            log.warning("%s acked a command of %s: ignored", device_id, ref.device)
            return
        if ref.kind == "execution":
            if ref.step == "exec":
                self._acks.put_nowait((("exec", ref.owner),
                                       ExecAck(device_id, ack.state, ack.reason or "", ack.run, ack.status)))
            return
        self._acks.put_nowait((ref.owner, Ack(device_id, ref.step, ack.state, ack.reason or "")))

    def _chunk_refused(self, device_id: str, chunk_id: str, wanted: int) -> None:
        """A chunk `<xfer>.<i>` refused with the chunk the device wants: when
        that is an earlier one (it was lost), send the chunks from it again."""
        xfer, _, i = chunk_id.rpartition(".")
        if not xfer or not i.isdigit() or int(i) <= wanted or self.bridge is None:
            return  # a duplicate (the device is ahead) or not a chunk
        now = self.clock()
        if now - self._chunks_resent.get((xfer, wanted), float("-inf")) < CHUNK_RESEND_WINDOW_S:
            return
        self._chunks_resent = {k: t for k, t in self._chunks_resent.items() if now - t < CHUNK_RESEND_WINDOW_S}
        self._chunks_resent[(xfer, wanted)] = now
        self._background_task(self._resend_chunks(device_id, xfer, wanted))

    async def _resend_chunks(self, device_id: str, xfer: str, first: int) -> None:
        chunks = await self.db.run(rollout.chunks_from, xfer, device_id, first)
        if chunks:
            log.info("%s lost chunk %d of %s: sending %d chunks again", device_id, first, xfer, len(chunks))
            await self.bridge.publish(device_id, chunks)

    async def command(self, dep_id: str, event) -> dict:
        """A user command (Start, Pause, Resume, Rollback, Cancel); raises
        IllegalTransition when the deployment's status forbids it. A Start of
        a deployment that rehearses runs the rehearsal first (in the
        background): it starts when the rehearsal passes."""
        await self.leases.take(dep_id)  # started here, driven from here (unless another replica drives it)
        if isinstance(event, Start) and await self.db.run(rehearsal.begin, dep_id, self.clock()):
            self._background_task(self._rehearse(dep_id))
            return await self.db.run(deployment_store.get_deployment, dep_id)
        result = await self.db.run(rollout.step, dep_id, [event], self.clock(), self.box)
        out = result.outgoing
        self._announce(dep_id, result.update)
        self.send(out)
        return await self.db.run(deployment_store.get_deployment, dep_id)

    def on_runs_stored(self, batches: list[tuple[str, dict]]) -> None:
        """Run reports the bridge has stored (device id, RunsBatch dict): an
        execution target waiting for its record settles now rather than on
        the next tick (which finds records any replica stored)."""
        for device_id, batch in batches:
            for rec in batch.get("runs") or ():
                ref = rec.get("exec")
                if isinstance(ref, str) and ref.startswith(EXECUTION_PREFIX) and isinstance(rec.get("run"), int):
                    self._acks.put_nowait((("exec", ref), RecordStored(device_id, rec["run"])))

    async def cancel_execution(self, exe_id: str) -> dict:
        """Cancel an execution (IllegalTransition when it has ended), and tell
        the pipeline run it is a step of."""
        doc, out = await self.db.run(cancel_execution, exe_id, self.clock(), self.box)
        self.send(out)
        live.execution_changed(self.streams, exe_id, None)
        return doc

    def send(self, out: list[tuple[str, list[dict]]]) -> None:
        """Publish commands already in the outbox, in the background (a start
        of 10,000 targets need not hold the request)."""
        self._background_task(self._publish(out))

    def _background_task(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _rehearse(self, dep_id: str) -> None:
        """Run a deployment's rehearsal, keep its result, then start it if it passed."""
        try:
            plan = await self.db.run(rehearsal.plan, dep_id)
            result = await asyncio.get_running_loop().run_in_executor(None, rehearsal.run_plan, plan)
        except Exception as exc:  # the twins could not run: the deployment does not start blind
            log.exception("rehearsal of %s failed to run", dep_id)
            result = rehearsal.broken(exc)
        passed, update = await self.db.run(rehearsal.record, dep_id, result, self.clock())
        self._announce(dep_id, update)
        if passed:
            try:
                await self.command(dep_id, Start())
            except Conflict as exc:  # cancelled meanwhile
                log.info("%s not started after its rehearsal: %s", dep_id, exc)

    async def resend(self, device_id: str | None = None) -> int:
        """Send again what a device (or every device) has not answered yet."""
        pending = await self.leases.mine(await self.db.run(rollout.pending_commands, device_id))
        await self._publish(pending)
        return len(pending)

    async def close(self) -> None:
        """Stop background sends (what they had not sent stays in the outbox),
        and give up this replica's leases: another takes over at once."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        try:
            await self.leases.release_all()
        except Exception:  # the database is gone: the leases expire instead
            log.exception("could not release the leases")

    def _handed(self, owner, events: list) -> None:
        """Acks another replica heard for what this one holds."""
        for event in events:
            self._acks.put_nowait((owner, event))

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """Decide on acks as they come and on timers every tick, until cancelled."""
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        next_resend = loop.time() + self.resend_after_s
        busy = 0.0
        while True:
            # Let acks gather for as long as the last round took (at most
            # MAX_GATHER_S): a step costs a little per target of the
            # deployment, whatever the number of acks it decides on, so a
            # 100,000-target rollout decided ack by ack would spend its time
            # on that, and the database thread would take every moment the
            # bridge needs. A small deployment's round is a few ms.
            if busy:
                await asyncio.sleep(min(busy, MAX_GATHER_S, max(0.0, next_tick - loop.time())))
            timeout = max(0.0, next_tick - loop.time())
            batch = []
            try:
                batch.append(await asyncio.wait_for(self._acks.get(), timeout))
            except asyncio.TimeoutError:
                pass
            started = loop.time()
            while not self._acks.empty():
                batch.append(self._acks.get_nowait())
            by_dep: dict[str, list] = defaultdict(list)
            for dep_id, event in batch:
                by_dep[dep_id].append(event)
            ticking = loop.time() >= next_tick
            if ticking:
                next_tick = loop.time() + self.tick_s
                try:
                    taken = await self.leases.renew()
                    for dep_id in await self.db.run(rollout.active_deployments):
                        if self.leases.holds(dep_id):
                            by_dep.setdefault(dep_id, [])
                    if taken:
                        await self._take_over(taken)
                except Exception:
                    log.exception("could not list (and lease) active deployments")
            try:
                by_dep = await self.leases.route(by_dep)
            except Exception:  # the database is away: the devices ack again on a re-send
                log.exception("could not find who drives %d deployments and executions", len(by_dep))
                by_dep = {}
            for key, events in by_dep.items():
                if isinstance(key, tuple):
                    await self._guard(execution_round, key[1], events, self.clock(), self.box)
                    live.execution_changed(self.streams, key[1], [e.device_id for e in events])
                else:
                    await self._step(key, events)
            if ticking:
                try:
                    out, stepped = await self.db.run(executions_tick, self.clock(), self.box,
                                                    self.leases.held_executions())
                except Exception:  # one bad record must not stop the loop
                    log.exception("executions_tick failed")
                else:
                    await self._publish(out)
                    for exe_id in stepped:
                        live.execution_changed(self.streams, exe_id, None)
            busy = loop.time() - started
            if loop.time() >= next_resend:
                next_resend = loop.time() + self.resend_after_s
                try:
                    await self._publish(await self.leases.mine(
                        await self.db.run(rollout.stale_commands, self.clock(), self.resend_after_s,
                                          skip_owners=await self.leases.others())))
                except Exception:
                    log.exception("could not re-send unanswered commands")

    async def _take_over(self, keys: set[str]) -> None:
        """Send again the unanswered commands of work this replica just took over."""
        pending = [(dev, messages) for dev, messages in await self.db.run(rollout.pending_commands)
                   if command_owner_key(messages) in keys]
        await self._publish(pending)

    async def _guard(self, fn, *args) -> None:
        """Run a storage step that may produce commands, and send them."""
        try:
            out = await self.db.run(fn, *args)
        except Exception:  # one bad record must not stop the loop
            log.exception("%s failed", fn.__qualname__)
            return
        await self._publish(out or [])

    async def _step(self, dep_id: str, events: list) -> None:
        try:
            result = await self.db.run(rollout.step, dep_id, events, self.clock(), self.box)
        except Exception:  # a broken deployment must not stop the others
            log.exception("deciding on %s failed", dep_id)
            return
        self._announce(dep_id, result.update)
        await self._publish(result.outgoing)

    def _announce(self, dep_id: str, update: dict | None) -> None:
        if update is not None and self.streams is not None:
            self.streams.publish(f"deployment:{dep_id}", "update", update)
        live.deployment_changed(self.streams, dep_id, update)

    async def _publish(self, out: list[tuple[str, list[dict]]]) -> None:
        if not out or self.bridge is None:
            return
        # Many commands at once (a batch of a big fleet): in parallel, bounded,
        # since each QoS 1 publish waits for the broker's PUBACK. A fixed set
        # of senders takes them in turn: not a task per command (100,000 tasks
        # were hundreds of MB and much of the CPU of a big start).
        pending = iter(out)
        sent: list[str] = []

        async def sender():
            for device_id, messages in pending:
                if await self.bridge.publish(device_id, messages):
                    sent.append(messages[0]["id"])
        await asyncio.gather(*(sender() for _ in range(min(PUBLISH_CONCURRENCY, len(out)))))
        if sent:
            await self.db.run(rollout.mark_sent, sent, self.clock())


# -- executions and pipelines: run on the database thread, each in one transaction ------------
# An execution that ends and the pipeline step it was are recorded together:
# a crash between the two cannot leave a run waiting on an ended execution.

def tell_pipelines(result: executions.Result, now: float, box) -> list[tuple[str, list[dict]]]:
    """The commands of `result`, and those of the pipeline steps that follow
    from the executions it ended (the driver tells pipelines, not the store)."""
    out = list(result.outgoing)
    for end in result.finished:
        if end.pipeline_run:
            out += pipelines.on_execution_finished(end.pipeline_run, end.execution, end.status, now, box)
    return out


def execution_round(exe_id: str, events: list, now: float, box) -> list[tuple[str, list[dict]]]:
    return tell_pipelines(executions.step(exe_id, events, now, box), now, box)


def executions_tick(now: float, box,
                    only: set[str] | None = None) -> tuple[list[tuple[str, list[dict]]], list[str]]:
    """The commands that follow from the passing of time and the records
    stored since, and the executions that were decided on."""
    out, stepped = [], []
    for exe_id, result in executions.tick(now, box, only):
        out += tell_pipelines(result, now, box)
        stepped.append(exe_id)
    return out, stepped


def cancel_execution(exe_id: str, now: float, box) -> tuple[dict, list[tuple[str, list[dict]]]]:
    doc, result = executions.cancel(exe_id, now, box)
    return doc, tell_pipelines(result, now, box)
