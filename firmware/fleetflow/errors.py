# The package's one named error, and how failures are told. Everything that
# refuses input (a bad program, a bad override, a bad HAL request) raises
# FFError with a reason string a person can act on; callers catch it and
# keep the device running.


class FFError(Exception):
    pass


FAIL = object()     # a node's result when it failed for good (fleetflow.interp's retry)


def err_text(e):
    """An exception as the one line a run record or log carries."""
    if isinstance(e, OSError) and e.args and e.args[0] == 110:
        return "OSError: ETIMEDOUT"
    return "%s: %s" % (type(e).__name__, e)
