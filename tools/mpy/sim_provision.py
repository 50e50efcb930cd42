# Provisioning of a simulated device's flash, run under MicroPython:
#
#   micropython tools/mpy/sim_provision.py <image> <config.json> <board.json> [keep]
#
# Formats LittleFS v2 on the image (the filesystem MicroPython uses on ESP32
# and RP2040, written by MicroPython itself) and writes config.json and
# board.json at its root, as `fleetflow flash` does on a board. With `keep`
# the image's filesystem is kept (its flow slots with it) and only the two
# files are written again: a restarted simulator's broker has a new port.
import sys
import vfs
from fleetflow.blockdev import FileBlockDev


def main(image, config_path, board_path, keep=False):
    bd = FileBlockDev(image)
    if not keep:
        vfs.VfsLfs2.mkfs(bd)
    vfs.mount(vfs.VfsLfs2(bd), "/flash")
    for src, name in ((config_path, "config.json"), (board_path, "board.json")):
        with open(src, "rb") as f:
            data = f.read()
        with open("/flash/" + name, "wb") as f:
            f.write(data)
    vfs.umount("/flash")
    bd.close()
    print("provisioned", image)


main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:] == ["keep"])
