# Cold code: modules the device needs now and then (command handling, the
# envelope and signature checks, the program loader) rather than in its
# steady loop. They are imported when needed and let go after, so the heap
# holds them only while they work: on the 64-bit unix port loaded bytecode
# costs about twice its .mpy size (a board that freezes the firmware into
# flash pays none of it).


def unload(*names):
    """Let fleetflow.<name> modules go: their code is freed at the next
    gc.collect. The names a module interned stay interned (MicroPython never
    frees them), so loading it again costs no more than the first time."""
    import sys
    pkg = sys.modules["fleetflow"]
    for n in names:
        if sys.modules.pop("fleetflow." + n, None) is not None and hasattr(pkg, n):
            delattr(pkg, n)
