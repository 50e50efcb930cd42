"""The firmware's code as a ROMFS image: bytecode that runs from flash, not from the heap.

    image = build_image(bundle_dir / "lib")      # bytes: a ROMFS holding lib/...

MicroPython 1.25+ executes the bytecode of an .mpy file in a ROMFS in place
(docs.micropython.org, "Working with ROMFS"): a module's code, its string
and bytes constants stay in the memory-mapped flash partition, and only its
module dict, function objects and name-pool entries take heap. For this
firmware that is the difference between ~57 KB and ~33 KB of resident heap
on the 64-bit unix port (docs/BENCHMARKS.md "Device agent heap").

On a board the image goes into the ROMFS partition (`mpremote romfs deploy`,
on firmware built with MICROPY_VFS_ROM: docs/boards.md), which the firmware
mounts at /rom with /rom/lib on sys.path. The image holds lib/ at its root
so the same paths hold on a board and in the simulator.

The simulated device has no flash partition to map: tools/sim/romboot.py maps
the image file into the device process's memory (outside MicroPython's GC
heap, as XIP flash is outside a board's RAM) and firmware/main.py mounts it
with vfs.VfsRom at /rom. The image is built with mpremote's own writer
(mpremote.romfs.VfsRomWriter), the one `mpremote romfs build` uses.
"""

from __future__ import annotations

from pathlib import Path

from mpremote.romfs import VfsRomWriter

IMAGE = "rom.img"  # beside a bundle's main.py


def build_image(lib_dir: str | Path) -> bytes:
    """A ROMFS image with `lib_dir`'s tree under lib/ (names sorted, so images are reproducible)."""
    lib_dir = Path(lib_dir)
    if not lib_dir.is_dir():
        raise FileNotFoundError(f"no folder {lib_dir} to put into a ROMFS image")
    writer = VfsRomWriter()

    def add(folder: Path) -> None:
        for path in sorted(folder.iterdir()):
            if path.is_dir():
                writer.opendir(path.name)
                add(path)
                writer.closedir()
            else:
                writer.mkfile(path.name, path.read_bytes())

    writer.opendir("lib")
    add(lib_dir)
    writer.closedir()
    return writer.finalise()
