"""Run the MicroPython unix port with a ROMFS image mapped into its memory.

    python tools/sim/romboot.py IMAGE -X heapsize=112k main.py flash.img

A board maps its ROMFS partition into the address space (XIP flash), and
MicroPython runs the .mpy files in it in place (tools/device/romfs.py). The unix
port (the PyPI `micropython-unix` package runs it inside this process) has
no such partition, so this launcher maps IMAGE read-only-in-effect (a
private mapping nothing writes to: pages are shared between the simulated
devices, like the one flash chip they stand for), tells the firmware where it
is in FLEETFLOW_ROMFS=<address>:<length>, and starts MicroPython with the
remaining arguments. firmware/main.py mounts it with vfs.VfsRom at /rom; the
memory is not part of MicroPython's GC heap (`-X heapsize`), exactly as
flash is not part of a board's RAM.

Standalone on purpose (no `tools` imports): it starts every simulated device.
"""

import ctypes
import mmap
import os
import sys


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: romboot.py IMAGE [micropython arguments...]", file=sys.stderr)
        return 2
    image = argv[1]
    try:
        with open(image, "rb") as f:
            rom = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    except (OSError, ValueError) as e:
        print(f"romboot: cannot map the ROMFS image {image}: {e}", file=sys.stderr)
        return 2
    base = ctypes.c_char.from_buffer(rom)  # keeps the mapping alive while MicroPython runs
    os.environ["FLEETFLOW_ROMFS"] = f"{ctypes.addressof(base)}:{len(rom)}"
    from micropython_unix import main as micropython_main

    sys.argv = ["micropython", *argv[2:]]
    return micropython_main() or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
