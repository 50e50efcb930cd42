"""Typed application state (web.AppKey)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from cloud.bridge import Bridge
from cloud.config import Config
from cloud.db import Database
from cloud.driver import Driver
from cloud.secrets import SecretBox
from cloud.streams import Streams

CONFIG = web.AppKey("config", Config)
DB = web.AppKey("db", Database)
BOX = web.AppKey("box", SecretBox)
DRIVER = web.AppKey("driver", Driver)
BRIDGE = web.AppKey("bridge", Bridge)
STREAMS = web.AppKey("streams", Streams)
# bcrypt runs in threads, at most this many at once: a burst of logins
# queues instead of taking every core from the rollouts.
HASHING = web.AppKey("hashing", asyncio.Semaphore)
