# fleetflow device package: the compiled-in node table, the program loader
# and the flow interpreter. Runs under MicroPython only.
VERSION = "0.1.0"


def _prime():
    # an optimisation only: never a reason for the package not to import
    try:
        from fleetflow.program import prime
        prime()
    except Exception:
        pass


_prime()    # see fleetflow/program.py
del _prime
