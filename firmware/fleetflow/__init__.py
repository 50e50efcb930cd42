# fleetflow device package: the compiled-in node table, the program loader
# and the flow interpreter. Runs under MicroPython only.
VERSION = "0.1.0"
