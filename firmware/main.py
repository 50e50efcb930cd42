# Device entry point. On a board MicroPython runs it after boot.py, from the
# board's own filesystem. On the unix port (the simulated device) the first
# argument is the path of a LittleFS image -- the stand-in for the 2 MB
# filesystem partition of a 4 MB ESP32 -- which is mounted at /flash and made
# the working directory, so the agent sees the same relative paths as on a
# board.
import sys


def _mount_image(path):
    import os
    import vfs
    from fleetflow.blockdev import FileBlockDev
    vfs.mount(vfs.VfsLfs2(FileBlockDev(path)), "/flash")
    os.chdir("/flash")


if sys.platform == "linux" and len(sys.argv) > 1:
    _mount_image(sys.argv[1])

from fleetflow.agent import main

main()
