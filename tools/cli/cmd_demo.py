"""`fleetflow demo`: the whole story on one machine, narrated as it happens.

    fleetflow demo            # tells the story, then keeps the fleet running until Ctrl-C
    fleetflow demo --exit     # tells the story and exits: 0 only if every step came out as narrated
    fleetflow demo --local    # the firmware alone: one flow in the local interpreter, no cloud

A broker (Mosquitto if installed, else amqtt in-process), the cloud on SQLite
and 20 simulated devices running the real firmware; the example flow goes out
as v1, a broken v2 is caught by a canary and rolled back, a fixed v3 rolls out
in batches. Everything it starts is stopped on exit or Ctrl-C; each run
starts afresh in --workdir (default var/demo).
"""

from __future__ import annotations

import argparse
import importlib.util
import signal
from pathlib import Path

from tools.sim import demo


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the whole fleetflow story on this machine (make demo)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exit", action="store_true", help="exit after the story; status 0 only if every check held")
    p.add_argument("--devices", type=int, default=20, help="simulated devices (default 20)")
    p.add_argument("--workdir", type=Path, default=demo.VAR, help=f"runtime files (default {demo.VAR})")
    p.add_argument("--broker", choices=("mosquitto", "amqtt"), default="mosquitto",
                   help="preferred broker (amqtt when mosquitto is not installed)")
    p.add_argument("--local", action="store_true", help="the firmware-only demo: a flow in the local interpreter")
    p.add_argument("--plain-mqtt", action="store_true", help="plain MQTT, no TLS (the default is MQTT over TLS)")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.local:
        if importlib.util.find_spec("tools.sim.demo_local") is None:
            print("demo --local: tools/sim/demo_local.py is not in this tree")
            return 2
        from tools.sim import demo_local

        return int(demo_local.main([]) or 0)
    if args.devices < 10:
        print("demo: the story needs at least 10 devices (a 10% canary of one device, batches of 5)")
        return 2
    # Ctrl-C and SIGTERM both end the demo cleanly, even when a script started
    # it in the background (where the shell leaves SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)  # the terminal closed: the devices are in sessions of their own
    ok = demo.run_story(args.workdir, args.devices, exit_after=args.exit, prefer_broker=args.broker,
                        plain_mqtt=args.plain_mqtt)
    return 0 if ok else 1


def _interrupt(*_):
    raise KeyboardInterrupt
