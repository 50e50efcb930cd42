# Device entry point. On a board MicroPython runs it after boot.py, from the
# board's own filesystem. On the unix port (the simulated device) the first
# argument is the path of a LittleFS image -- the stand-in for the 2 MB
# filesystem partition of a 4 MB ESP32 -- which is mounted at /flash and made
# the working directory, so the agent sees the same relative paths as on a
# board.
import gc
import sys


def _board_lib():
    # The unix port finds the bundle's lib/ through MICROPYPATH, at a long
    # host path; a board imports from /lib. Each module's path is interned
    # for good when it loads (its __file__), so the simulated device sees
    # the same folder at /lib: a board's module names, a board's heap (~2 KB
    # less than the host path), whatever the checkout's path.
    import os
    import vfs
    rom = os.getenv("FLEETFLOW_ROMFS")
    if rom:
        # The code as a board with a ROMFS partition runs it: in place, from
        # memory outside the heap (tools/sim/romboot.py mapped the image), at /rom.
        import uctypes
        addr, size = rom.split(":")
        vfs.mount(vfs.VfsRom(uctypes.bytearray_at(int(addr), int(size))), "/rom")
        sys.path[:] = [".frozen", "/rom/lib"]
        return
    for p in sys.path:
        if p.endswith("/lib"):
            vfs.mount(vfs.VfsPosix(p), "/lib")
            sys.path[:] = [".frozen", "/lib"]  # a board's, frozen `ssl` included
            return


def _mount_image(path):
    import os
    import vfs
    from fleetflow.blockdev import FileBlockDev
    vfs.mount(vfs.VfsLfs2(FileBlockDev(path)), "/flash")
    os.chdir("/flash")


def _start():
    from fleetflow import config
    from fleetflow.errors import FFError
    try:
        cfg = config.load()
    except FFError as e:
        print("main: cannot start:", e.args[0])
        return
    # read once at boot: the config code need not stay in the heap
    from fleetflow.cold import unload
    unload("config")
    del config
    # The node-table hash: the bundle's board.json carries it (tools/device/bundle.py),
    # since computing it imports every node's description and the names that
    # interns stay in the heap for good. Without it (a board file copied by
    # hand) it is computed here, first, on a clean heap.
    nt_hash = cfg["board"].get("nt_hash")
    if not nt_hash:
        from fleetflow.nodetable import table_hash
        nt_hash = table_hash(cfg["board"]["nodes"])
    gc.collect()
    from fleetflow.agent import main
    main(cfg, "", nt_hash)


if __name__ == "__main__":  # as a board runs it; importing it (tests) only defines
    if sys.platform == "linux" and len(sys.argv) > 1:
        _board_lib()
        _mount_image(sys.argv[1])
    _start()
