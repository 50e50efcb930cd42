"""The application factory: `init_app(config)` builds the aiohttp app with
its database, MQTT bridge and rollout driver as cleanup contexts."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging

from aiohttp import web

from cloud import live, middleware, migrations, models
from cloud.appkeys import BOX, BRIDGE, CONFIG, DB, DRIVER, HASHING, STREAMS
from cloud.bridge import Bridge
from cloud.config import Config
from cloud.db import Database
from cloud.driver import Driver
from cloud.fanout import Fanout
from cloud.routes import PUBLIC, add_routes
from cloud.secrets import SecretBox
from cloud.streams import Streams
from cloud.webhook_sender import Sender

log = logging.getLogger("fleetflow.cloud")


async def _database(app: web.Application):
    db = app[DB]
    await db.run(lambda: None)  # open the connection on the database thread
    yield
    await db.close()


async def _engine(app: web.Application):
    config = app[CONFIG]
    bridge = Bridge(config, app[DB]) if config.mqtt_url else None
    fanout = Fanout(config.db_url, config.replica) if config.replica is not None else None
    if fanout is not None:
        app[STREAMS].replicate(fanout)
    driver = Driver(app[DB], app[BOX], config, bridge, app[STREAMS], fanout)
    app[DRIVER] = driver
    sender = Sender(app[DB], app[BOX], config.clock, config.webhook_poll_s, config.webhook_backoff_s,
                    config.webhook_max_attempts)
    tasks = [asyncio.create_task(driver.run(), name="fleetflow-driver"),
             asyncio.create_task(sender.run(), name="fleetflow-webhooks")]
    if fanout is not None:
        tasks.append(asyncio.create_task(fanout.run(), name="fleetflow-fanout"))
    if bridge is not None:
        app[BRIDGE] = bridge
        bridge.on_ack = driver.on_ack
        bridge.on_online = driver.resend
        bridge.on_connect = driver.resend
        bridge.on_status = functools.partial(live.device_status, app[STREAMS])
        bridge.on_runs = functools.partial(_runs_stored, app[STREAMS], driver)
        bridge.on_health = functools.partial(live.device_health, app[STREAMS])
        if config.ha_discovery:
            tasks.append(_home_assistant(app, bridge, driver))
        tasks.append(asyncio.create_task(bridge.run(), name="fleetflow-bridge"))
        tasks.append(asyncio.create_task(bridge.flush_health(), name="fleetflow-health"))
        tasks.append(asyncio.create_task(bridge.flush_runs(), name="fleetflow-runs"))
    yield
    if bridge is not None:
        await bridge.store_runs()  # what was heard is stored, and acked while the link is still up
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if bridge is not None:
        await bridge.close()
    await driver.close()
    if fanout is not None:
        await fanout.close()


def _runs_stored(streams, driver, batches) -> None:
    """Run reports were stored: stream clients hear of them, and the driver
    settles the execution targets waiting for those records."""
    live.runs_stored(streams, batches)
    driver.on_runs_stored(batches)


def _home_assistant(app: web.Application, bridge, driver) -> asyncio.Task:
    """Home Assistant discovery beside the bridge's own hooks: it hears the
    same statuses and run reports, and a deleted device's entities go."""
    from cloud.homeassistant import HomeAssistant

    config = app[CONFIG]
    ha = HomeAssistant(config, app[DB], driver, app[BOX], config.ha_prefix)
    bridge.on_status = _both(bridge.on_status, ha.on_status)
    bridge.on_runs = _both(bridge.on_runs, ha.on_runs)
    delete = config.on_delete

    async def on_delete(device_id: str) -> None:
        if delete is not None:
            result = delete(device_id)
            if asyncio.iscoroutine(result):
                await result
        await ha.on_delete(device_id)

    config.on_delete = on_delete
    return asyncio.create_task(ha.run(), name="fleetflow-homeassistant")


def _both(first, second):
    def call(*args):
        if first is not None:
            first(*args)
        second(*args)
    return call


def init_app(config: Config) -> web.Application:
    if not config.secret:
        raise ValueError("Config.secret is required: it seals the devices' HMAC keys")
    if config.replica is not None:
        config.check_replica()
    db = Database(config.db_url)
    # Migrate before serving: an upgrade keeps the data and adds what is new.
    with db.peewee.connection_context():
        migrations.migrate(db.peewee)
    models.database.initialize(db.peewee)
    app = web.Application(middlewares=[middleware.problems,
                                       middleware.access(db, PUBLIC, config),
                                       middleware.storable_text])
    app[CONFIG] = config
    app[DB] = db
    app[BOX] = SecretBox(config.secret)
    app[STREAMS] = Streams()
    app[HASHING] = asyncio.Semaphore(2)
    add_routes(app)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_engine)
    return app
