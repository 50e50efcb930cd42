# fleetflow device package: the compiled-in node table, the program loader
# and the flow interpreter. Runs under MicroPython only.
VERSION = "0.1.0"


def _prime():
    from fleetflow.program import _prime as prime
    prime()


_prime()    # see fleetflow/program.py
del _prime
