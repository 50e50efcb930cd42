"""The firmware's code in a ROMFS image runs in place: from the image, not copied into the heap.

Under the real MicroPython unix port: the unix-sim bundle's modules are
imported once through firmware/main.py's mount of the image (tools/sim/romboot.py
maps it outside the GC heap, as a board maps its ROMFS partition), once from
/lib as .mpy files (a stock firmware), and the heap each import takes is compared.
"""

from __future__ import annotations

import json
import subprocess

from tools.device import romfs

from tools.sim import simdevice

# what the agent keeps resident (main.py's boot order, docs/BENCHMARKS.md)
MODULES = ("fleetflow.slots", "fleetflow.link", "fleetflow.records", "fleetflow.runsmsg", "fleetflow.health",
           "fleetflow.cmdlog", "fleetflow.agent", "fleetflow.nodetable", "fleetflow.interp")

SCRIPT = """
import gc, sys, json
sys.path.insert(0, %(bundle)r)
import main               # the device entry point: imported (not run), it only defines
main._board_lib()         # mount the code where the device imports it from
gc.collect()
before = gc.mem_alloc()
for name in %(modules)r:
    __import__(name)
gc.collect()
print(json.dumps({"path": sys.path[-1], "file": sys.modules["fleetflow.agent"].__file__,
                  "heap": gc.mem_alloc() - before}))
"""


def _import_heap(bundle, code: str, tmp_path) -> dict:
    script = tmp_path / f"imports_{code}.py"
    script.write_text(SCRIPT % {"bundle": str(bundle), "modules": MODULES})
    proc = subprocess.run([*simdevice.device_command(bundle, code), "-X", "heapsize=512k", str(script)],
                          env=simdevice.mpy_env(bundle / "lib"), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_code_in_a_romfs_image_runs_in_place_and_leaves_the_heap(tmp_path):
    bundle = simdevice.sim_bundle()
    lib = _import_heap(bundle, "lib", tmp_path)
    rom = _import_heap(bundle, "rom", tmp_path)
    assert lib["path"] == "/lib" and lib["file"] == "/lib/fleetflow/agent.mpy"
    assert rom["path"] == "/rom/lib" and rom["file"] == "/rom/lib/fleetflow/agent.mpy"
    # bytecode and constants stay in the image: ~40 % less heap for the same modules
    assert rom["heap"] < 0.75 * lib["heap"], (rom, lib)


def test_the_image_holds_the_bundle_lib_byte_for_byte(tmp_path):
    """What `mpremote romfs deploy <bundle>/rom.img` writes to a board: the bundle's lib/ at /rom/lib."""
    bundle = simdevice.sim_bundle()
    image = (bundle / romfs.IMAGE).read_bytes()
    assert image == romfs.build_image(bundle / "lib")
    check = tmp_path / "ls.py"
    check.write_text("import os, sys\n"
                     "for d in ('/rom/lib/fleetflow', '/rom/lib/umqtt'):\n"
                     "    for n in sorted(os.listdir(d)):\n"
                     "        if n.endswith('.mpy'):\n"
                     "            print(d[5:] + '/' + n, len(open(d + '/' + n, 'rb').read()))\n")
    mount = tmp_path / "mount.py"
    mount.write_text(f"import sys\nsys.path.insert(0, {str(bundle)!r})\nimport main\nmain._board_lib()\n"
                     f"exec(open({str(check)!r}).read())\n")
    proc = subprocess.run([*simdevice.device_command(bundle, "rom"), str(mount)],
                          env=simdevice.mpy_env(bundle / "lib"), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = dict(line.rsplit(" ", 1) for line in proc.stdout.strip().splitlines())
    on_disk = {p.relative_to(bundle).as_posix(): str(p.stat().st_size)
               for p in sorted((bundle / "lib").rglob("*.mpy")) if p.parent.name in ("fleetflow", "umqtt")}
    assert seen == on_disk


def test_a_missing_image_is_named(tmp_path):
    proc = subprocess.run([*simdevice.device_command(tmp_path, "rom"), "-c", "print(1)"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "cannot map the ROMFS image" in proc.stderr and "rom.img" in proc.stderr
