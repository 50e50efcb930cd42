"""`fleetflow board-check`: run before flashing fleetflow onto a new board.

    fleetflow board-check --board esp32-devkitc --port /dev/ttyUSB0
    fleetflow board-check --board rp2-pico-w --port /dev/ttyACM0 --out-pin 15 --dht-pin 4 --json
    fleetflow board-check --board esp32-devkitc --port /dev/ttyUSB0 --report board.json

What it checks and how each verdict is decided: tools/device/board_check.py. Pins
are driven only when named; the ADC read uses the board's first ADC pin
unless --adc-pin says otherwise. Exit 1 when a check fails (fleetflow would
not run on the board as it is), 2 when the board could not be checked.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from shared_schema.boards import BoardError, board_names, load_board
from tools.device import board_check


def register(sub) -> None:
    p = sub.add_parser("board-check", help="check a board over mpremote before flashing (no reflash)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--board", required=True, help=f"the board file it should match ({', '.join(board_names())})")
    p.add_argument("--port", required=True, help="serial port (or the pty of a unix-port REPL for unix-sim)")
    p.add_argument("--out-pin", type=int, help="a free GPIO to drive high, read back and drive low")
    p.add_argument("--pwm-pin", type=int, help="a free GPIO to start 1 kHz PWM on, then stop")
    p.add_argument("--adc-pin", type=int, help="the ADC pin to read (default: the board's first ADC pin)")
    p.add_argument("--dht-pin", type=int, help="the GPIO a DHT sensor's data line is wired to")
    p.add_argument("--dht-model", choices=("dht22", "dht11"), default="dht22")
    p.add_argument("--resume", action="store_true",
                   help="check the board as it runs, without mpremote's soft reset (always so for unix-sim)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds the board has to finish (default 60)")
    p.add_argument("--report", type=Path, help="also write the JSON report to this file (to attach to an issue)")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        board = load_board(args.board)
    except BoardError as exc:
        print(f"board-check: {exc}", file=sys.stderr)
        return 2
    pins = board_check.default_pins(board, out=args.out_pin, pwm=args.pwm_pin, dht=args.dht_pin,
                                    adc=args.adc_pin, dht_model=args.dht_model)
    print(f"board-check: running the check on {args.port} ({board.name}) ...", file=sys.stderr)
    try:
        report = board_check.run(args.port, board, pins, resume=args.resume, timeout_s=args.timeout)
    except board_check.BoardCheckError as exc:
        print(f"board-check: {exc}", file=sys.stderr)
        return 2
    rows = board_check.judge(report, board)
    doc = {"board": board.name, "port": args.port, "ok": not board_check.failed(rows),
           "checks": [asdict(r) for r in rows], "report": report}
    if args.report:
        args.report.write_text(json.dumps(doc, indent=2) + "\n")
    if args.json:
        print(json.dumps(doc, sort_keys=True))
    else:
        print(board_check.table(rows))
        verdict = "fails: fleetflow would not run as it is" if not doc["ok"] else "can run fleetflow"
        print(f"\n{board.name} on {args.port} {verdict}" + (f"; report in {args.report}" if args.report else ""))
    return 0 if doc["ok"] else 1
