"""`fleetflow powercut`: cut the power at every block write of every slot update.

Compiles and signs three program versions (shared_schema), then runs the
sweep under MicroPython (tools/mpy/powercut_sweep.py): for each operation of the
A/B slot store (stage, activate, trial boot, confirm, rollback on trial,
boot loop, commanded rollback, stage over the previous slot), for both fault
variants (power cut after the N-th block write; and the same with the
writes not yet synced lost), and for every N: remount, boot, and check that
a verified program (old or new, as the operation allows) is active and runs.

    fleetflow powercut --json          full sweep, one JSON object
    fleetflow powercut --sample 7      every 7th cut point only
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MICROPYTHON = REPO / ".venv" / "bin" / "micropython"
DEVICE = "pc-dev"
KEY_HEX = "6b6579206f66207468652073776565702c206e6f7420612073656372657421"


def flow_body(n_nodes: int, payload: int) -> dict:
    """A step-form flow: inject, then n-1 change nodes (sized to span many blocks)."""
    steps = [{"node": "inject", "params": {"payload": payload}}]
    for i in range(1, n_nodes):
        steps.append({"node": "change", "params": {"property": "value", "action": "offset", "value": i}})
    return {"steps": steps}


def make_spec(image: Path, board: str = "unix-sim", sample: int = 1, unsafe: bool = False) -> dict:
    from shared_schema.compiler import compile_program
    from shared_schema.envelope import make_envelope

    key = bytes.fromhex(KEY_HEX)
    programs = {}
    # v2 is the big one: staging it crosses the most block writes.
    for ver, n in ((1, 12), (2, 40), (3, 24)):
        prog = compile_program(flow_body(n, ver), board, "flow_powercut", ver)
        env = make_envelope(prog, DEVICE, key, ver)
        header = {k: env[k] for k in ("flow", "ver", "seq", "size", "sha", "sig")}
        programs[f"v{ver}"] = {"header": header, "prog": env["prog"]}
    board_def = json.loads((REPO / "boards" / f"{board}.json").read_text())
    return {"image": str(image), "dev": DEVICE, "key": KEY_HEX, "board": board_def,
            "programs": programs, "sample": sample, "unsafe": unsafe}


def run_sweep(sample: int = 1, workdir: Path | None = None, timeout_s: float = 900, unsafe: bool = False) -> dict:
    """Run the sweep; returns {"cut_points", "recovered", "failures", "ops", ...}.

    unsafe=True is the negative control: the slot store writes its state in
    place instead of write-and-rename, and the sweep must report failures.
    """
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tmp_path = Path(tmp)
        spec_path = tmp_path / "spec.json"
        spec_path.write_text(json.dumps(make_spec(tmp_path / "flash.img", sample=sample, unsafe=unsafe)))
        env = dict(os.environ)
        env["MICROPYPATH"] = f"{REPO / 'firmware'}:{REPO / 'build' / 'mpy-lib'}"
        t0 = time.monotonic()
        # The harness (not the device) holds snapshots of the filesystem: a
        # bigger heap than a board's is the harness's, not the firmware's.
        proc = subprocess.run([str(MICROPYTHON), "-X", "heapsize=4m", str(REPO / "tools" / "mpy" / "powercut_sweep.py"),
                               str(spec_path)], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=timeout_s)
        elapsed = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"sweep failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["seconds"] = round(elapsed, 2)
    result["sample"] = sample
    result["command"] = "fleetflow powercut --json" + (f" --sample {sample}" if sample != 1 else "")
    return result


def _cmd(args) -> int:
    result = run_sweep(sample=args.sample)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(f"power-cut sweep: {result['recovered']}/{result['cut_points']} cut points recovered "
              f"in {result['seconds']} s")
        for name, r in sorted(result["ops"].items()):
            print(f"  {name:28s} writes={r['writes']:4d} cut_points={r['cut_points']:4d} recovered={r['recovered']:4d}")
        for f in result["failures"]:
            print(f"  FAILED {f}")
    return 0 if result["recovered"] == result["cut_points"] else 1


def register(subparsers) -> None:
    p = subparsers.add_parser("powercut", help="cut the power at every block write of every slot update, check recovery")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--sample", type=int, default=1, help="test every N-th cut point (default: all)")
    p.set_defaults(func=_cmd)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(prog="powercut")
    sub = ap.add_subparsers()
    register(sub)
    sys.exit(_cmd(ap.parse_args(["powercut", *sys.argv[1:]])))
