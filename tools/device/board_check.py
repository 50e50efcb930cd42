"""`fleetflow board-check`: what a board can do, asked of the board itself.

A short MicroPython script runs on the board over mpremote (no reflash) and
prints one JSON report: MicroPython's version, port and .mpy ABI; free heap
and the largest block it can still allocate (after Wi-Fi, when boot.py
brought it up); the filesystem's type and free space; ROMFS; `ssl`; and each
HAL call the board's nodes make, through the firmware's own real HAL
(firmware/fleetflow/hal/real.py, sent along as source, so what is checked is
what the nodes will call): a pin driven and read back, an ADC read, PWM
started and stopped, a DHT read. Pins are touched only when named
(`--out-pin`, `--pwm-pin`, `--dht-pin`): driving an unknown pin could switch
whatever is wired to it. The ADC read defaults to the board's first ADC pin
(reading is harmless).

The parts here are pure: `probe_script` (what runs on the board),
`parse_output` (its report out of mpremote's output) and `judge` (the
report against the board file: rows of check, result, verdict, advice).
`run` is the shell: one mpremote invocation.

Verdicts: `ok`; `warn` (works, but below what fleetflow needs to run well);
`fail` (fleetflow cannot run as flashed: wrong .mpy ABI or arch, no `ssl`
for TLS, a HAL call a node needs raising); `missing` (the port lacks it and
the board file does not expect it: the unix port has no machine.Pin);
`skipped` (not asked for). Only `fail` makes the command exit 1.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from shared_schema.boards import Board
from tools.device.bundle import MARCH
from tools.device.flashing import mpremote_exe

HAL_SOURCE = Path(__file__).resolve().parents[2] / "firmware" / "fleetflow" / "hal" / "real.py"
MARKER = "FFBOARDCHECK"
# sys.implementation._mpy: bits 0-7 the .mpy version, 10-15 the native arch
# (py/persistentcode.h MP_NATIVE_ARCH_*), as mpy-cross writes them.
MPY_VERSION = 6
ARCH_CODES = {"x86": 1, "x64": 2, "armv6": 3, "armv6m": 4, "armv7m": 5, "armv7em": 6, "armv7emsp": 7,
              "armv7emdp": 8, "xtensa": 9, "xtensawin": 10, "rv32imc": 11, "rv64imc": 12}
ARCH_NAMES = {v: k for k, v in ARCH_CODES.items()}
# Free space fleetflow's files want: the bundle, two slots and the slot
# state, with room to spare for LittleFS's copy-on-write.
FS_SLACK = 2

# Runs on the board. Each check catches its own failure, so one missing
# module never hides the rest; the report is one line behind MARKER.
_PROBE = r'''
import sys, gc
try:
    import json
except ImportError:
    import ujson as json
R = {}
def _e(x):
    return '%s: %s' % (type(x).__name__, x)
i = sys.implementation
R['micropython'] = {'version': '.'.join(str(v) for v in i.version[:3]), 'platform': sys.platform,
                    'machine': getattr(i, '_machine', ''), 'mpy': getattr(i, '_mpy', 0)}
try:
    import network
    w = network.WLAN(network.STA_IF)
    r = {'active': w.active(), 'connected': w.isconnected()}
    if r['connected']:
        try:
            r['rssi'] = w.status('rssi')
        except Exception as x:
            r['rssi_error'] = _e(x)
    R['wifi'] = r
except Exception as x:
    R['wifi'] = {'error': _e(x)}
gc.collect()
free = gc.mem_free()
lo, hi = 0, free
while hi - lo > 256:
    mid = (lo + hi) // 2
    try:
        b = bytearray(mid)
        b = None
        lo = mid
    except MemoryError:
        hi = mid
    gc.collect()
R['heap'] = {'free': free, 'used': gc.mem_alloc(), 'largest_block': lo}
try:
    import os
    s = os.statvfs('/')
    fs = {'block': s[0], 'total': s[0] * s[2], 'free': s[0] * s[3]}
    try:
        import vfs
        fs['type'] = [type(m[0]).__name__ for m in vfs.mount() if m[1] == '/'][0]
    except Exception as x:
        fs['type_error'] = _e(x)
    R['fs'] = fs
except Exception as x:
    R['fs'] = {'error': _e(x)}
try:
    import vfs
    R['romfs'] = {'segments': vfs.rom_ioctl(1)} if hasattr(vfs, 'rom_ioctl') else {'error': 'no vfs.rom_ioctl'}
except Exception as x:
    R['romfs'] = {'error': _e(x)}
try:
    import ssl
    R['ssl'] = {'mbedtls': getattr(ssl, 'MBEDTLS_VERSION', ''), 'context': hasattr(ssl, 'SSLContext')}
except Exception as x:
    R['ssl'] = {'error': _e(x)}
H = {}
try:
    ns = {}
    exec(HAL_SRC, ns)
    hal = ns['RealHal'](BOARD)
except Exception as x:
    hal = None
    H['load'] = {'error': _e(x)}
P = PINS
def _hal(name, fn):
    if hal is None:
        return
    if P.get(name) is None:
        H[name] = {'skipped': True}
        return
    try:
        H[name] = fn(P[name])
    except Exception as x:
        H[name] = {'error': _e(x), 'pin': P[name]}
def _out(n):
    p = hal.pin_out(n)
    p.value(1)
    high = p.value()
    p.value(0)
    return {'pin': n, 'read_back': [high, p.value()]}
def _adc(n):
    return {'pin': n, 'read_u16': hal.adc(n).read_u16()}
def _pwm(n):
    w = hal.pwm(n, 1000, 32768)
    got = {'pin': n, 'freq': w.freq(), 'duty_u16': w.duty_u16()}
    w.deinit()
    return got
def _dht(n):
    d = hal.dht(n, P.get('dht_model') or 'dht22')
    d.measure()
    return {'pin': n, 'temperature': d.temperature(), 'humidity': d.humidity()}
_hal('out', _out)
_hal('adc', _adc)
_hal('pwm', _pwm)
_hal('dht', _dht)
R['hal'] = H
print(MARKER + json.dumps(R))
'''


class BoardCheckError(Exception):
    """mpremote could not run the check, or the board printed no report."""


@dataclass(frozen=True)
class Row:
    check: str
    result: str
    verdict: str  # ok | warn | fail | missing | skipped
    advice: str = ""


def probe_script(board: Board, pins: dict, hal_source: str | None = None) -> str:
    """The MicroPython script that checks `board`; `pins` maps out/adc/pwm/dht
    (and dht_model) to the pins to use, None to skip."""
    source = hal_source if hal_source is not None else HAL_SOURCE.read_text()
    head = f"HAL_SRC = {source!r}\nBOARD = {board.name!r}\nPINS = {pins!r}\nMARKER = {MARKER!r}\n"
    return head + _PROBE


def default_pins(board: Board, out: int | None = None, pwm: int | None = None, dht: int | None = None,
                 adc: int | None = None, dht_model: str = "dht22") -> dict:
    """Only reads happen unasked: the ADC on the board's first ADC pin."""
    adc_pins = board.pins_for("adc")
    return {"out": out, "pwm": pwm, "dht": dht, "dht_model": dht_model,
            "adc": adc if adc is not None else (adc_pins[0] if adc_pins else None)}


def parse_output(text: str) -> dict:
    for line in text.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    raise BoardCheckError("the board printed no report; its output was:\n" + text.strip()[-2000:])


def _kib(n: int) -> str:
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}"


def judge(report: dict, board: Board) -> list[Row]:
    """The report, row by row, against what `board` promises and fleetflow needs."""
    rows: list[Row] = []
    real = board.port != "unix"
    mp = report.get("micropython", {})
    rows.append(Row("micropython", f"{mp.get('version')} on {mp.get('platform')} ({mp.get('machine')})", "ok"))
    mpy = int(mp.get("mpy") or 0)
    version, arch = mpy & 0xFF, mpy >> 10
    want_arch = MARCH.get(board.port)
    abi = f".mpy v{version}, arch {ARCH_NAMES.get(arch, arch or 'none')}"
    if version != MPY_VERSION:
        rows.append(Row("mpy_abi", abi, "fail", f"the bundle is .mpy v{MPY_VERSION}: flash a MicroPython of the "
                                                "1.23+ line (mpy-cross 1.29 builds it)"))
    elif want_arch and arch != ARCH_CODES[want_arch]:
        rows.append(Row("mpy_abi", abi, "fail", f"--board {board.name} builds for {want_arch}: is this the right "
                                                "board file?"))
    else:
        rows.append(Row("mpy_abi", abi, "ok"))

    wifi = report.get("wifi", {})
    if "error" in wifi:
        rows.append(Row("wifi", wifi["error"], "fail" if real else "missing",
                        "this MicroPython has no network module" if real else "the unix port has no Wi-Fi"))
    else:
        up = wifi.get("connected")
        text = "connected" + (f", RSSI {wifi['rssi']} dBm" if "rssi" in wifi else "") if up else "not connected"
        rows.append(Row("wifi", text, "ok" if up else "warn",
                        "" if up else "heap figures below are before Wi-Fi: flash fleetflow (boot.py connects) "
                                      "and run the check again"))

    heap = report.get("heap", {})
    free, block = int(heap.get("free", 0)), int(heap.get("largest_block", 0))
    need = board.heap_bytes
    rows.append(Row("heap_free", _kib(free), "ok" if free >= need else "warn",
                    "" if free >= need else f"{board.name}'s budget is {_kib(need)}: expect MemoryError under load"))
    rows.append(Row("largest_block", _kib(block), "ok" if block >= board.msg_max_bytes else "warn",
                    "" if block >= board.msg_max_bytes else
                    f"a {_kib(board.msg_max_bytes)} message could not be allocated: the heap is fragmented"))

    fs = report.get("fs", {})
    if "error" in fs:
        rows.append(Row("filesystem", fs["error"], "fail", "fleetflow keeps its flow slots on the filesystem"))
    else:
        kind = fs.get("type", fs.get("type_error", "?"))
        want = FS_SLACK * (board.flash.bundle_max_bytes + 2 * board.program_max_bytes)
        kind_ok = kind == "VfsLfs2" or not real
        verdict = "ok" if kind_ok and fs.get("free", 0) >= want else "warn"
        advice = "" if kind_ok else "fleetflow's power-cut safety is proven on LittleFS v2 (VfsLfs2)"
        if fs.get("free", 0) < want:
            advice = f"{_kib(want)} free wanted (the bundle and two flow slots, twice over)"
        rows.append(Row("filesystem", f"{kind}, {_kib(fs.get('free', 0))} free of {_kib(fs.get('total', 0))}",
                        verdict, advice))

    rom = report.get("romfs", {})
    rows.append(Row("romfs", f"{rom['segments']} segment(s)" if "segments" in rom else rom.get("error", "?"),
                    "ok" if rom.get("segments") else "missing",
                    "" if rom.get("segments") else "no ROMFS: modules load into the heap (not needed to run)"))

    ssl = report.get("ssl", {})
    if "error" in ssl or not ssl.get("context"):
        rows.append(Row("ssl", ssl.get("error", "no ssl.SSLContext"), "fail",
                        "MQTT over TLS needs ssl.SSLContext: use a MicroPython build with ssl (the official ones)"))
    else:
        rows.append(Row("ssl", f"SSLContext, {ssl.get('mbedtls') or 'ssl'}", "ok"))

    hal = report.get("hal", {})
    if "load" in hal:
        rows.append(Row("hal", hal["load"]["error"], "fail", "the firmware's real HAL does not load here"))
    for name, what, flag in (("out", "pin driven and read back", "--out-pin"), ("adc", "ADC read", "--adc-pin"),
                             ("pwm", "PWM started and stopped", "--pwm-pin"), ("dht", "DHT read", "--dht-pin")):
        got = hal.get(name)
        if got is None:
            continue
        row = f"hal_{name}"
        if got.get("skipped"):
            rows.append(Row(row, "not asked", "skipped", f"pass {flag} N to check the {what}"))
        elif "error" in got:
            lacking = "ImportError" in got["error"] or not real
            rows.append(Row(row, f"pin {got.get('pin')}: {got['error']}", "missing" if lacking else "fail",
                            "this port has no machine I/O" if lacking else f"check the wiring of pin {got.get('pin')}"))
        elif name == "out" and got["read_back"] != [1, 0]:
            rows.append(Row(row, f"pin {got['pin']} read back {got['read_back']}", "fail",
                            "the pin did not follow: is it input-only or held by something?"))
        else:
            detail = ", ".join(f"{k} {v}" for k, v in got.items() if k != "pin")
            rows.append(Row(row, f"pin {got['pin']}: {detail}", "ok"))
    return rows


def failed(rows: list[Row]) -> bool:
    return any(r.verdict == "fail" for r in rows)


def table(rows: list[Row]) -> str:
    width = max(len(r.check) for r in rows)
    rwidth = max(len(r.result) for r in rows)
    lines = [f"{'CHECK':{width}}  {'RESULT':{rwidth}}  VERDICT  ADVICE"]
    lines += [f"{r.check:{width}}  {r.result:{rwidth}}  {r.verdict:7}  {r.advice}".rstrip() for r in rows]
    return "\n".join(lines)


def run(port: str, board: Board, pins: dict, *, resume: bool = False, timeout_s: float = 60) -> dict:
    """Run the check on the board at `port`; its report. A real board is soft
    reset by mpremote first, which stops a running fleetflow and runs boot.py
    again (so Wi-Fi is up when fleetflow's boot.py brings it up); `resume`
    checks it as it is instead. A unix-port board (behind a pty) is always
    resumed: a soft reset ends it."""
    resume = resume or board.port == "unix"
    argv = [mpremote_exe(), "connect", port] + (["resume"] if resume else [])
    argv += ["exec", probe_script(board, pins)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise BoardCheckError(f"the board at {port} did not finish the check within {timeout_s:.0f}s") from None
    if proc.returncode != 0:
        said = (proc.stderr or proc.stdout).strip().splitlines()
        hint = "" if resume else " (a unix-port REPL ends on the soft reset: check it with --resume)"
        raise BoardCheckError(f"mpremote could not run the check on {port}: {said[-1] if said else 'no output'}"
                              + hint)
    return parse_output(proc.stdout)
