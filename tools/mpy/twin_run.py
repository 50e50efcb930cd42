# A simulated twin for a rehearsal (cloud/rehearsal.py); runs under MicroPython.
#
#   micropython -X heapsize=<heap> twin_run.py < job.json
#
# job: {"board": <board.json>, "program": <program text>, "sim": <sim HAL config>,
#       "runs": N, "max_ms": M}. The program is loaded as the agent loads it
# (the real loader, node table, interpreter and simulated HAL of the firmware
# bundle on MICROPYPATH) and run on a fake clock: time jumps to the next due
# timer or poll, so N runs of a flow that polls every 2 s take milliseconds.
# Prints one JSON line per run record ({"ev": "run", "rec": {...}}, the wire
# form a device ships) and a last {"ev": "done", ...} line: runs, errors,
# the heap the flow keeps (after loading, and its peak between runs, both
# after a collect), and a MemoryError if the twin ran out of heap.
import gc
import json
import sys


def emit(ev, **kw):
    kw["ev"] = ev
    print(json.dumps(kw))


def main():
    job = json.loads(sys.stdin.read())
    board, runs, max_ms = job["board"], job["runs"], job["max_ms"]
    from fleetflow.nodetable import load_table
    from fleetflow.program import load_program
    from fleetflow.hal import get_hal
    from fleetflow.records import RunBuffer

    from fleetflow.interp import Interpreter

    hal = get_hal(board["name"], job["sim"] or {})
    records = RunBuffer(8)
    # What the flow keeps: its checked Program, its node modules, its
    # Interpreter and what runs leave behind, measured after a collect (the
    # garbage a run makes on the way is not kept; a run that needs more than
    # the twin's heap ends in MemoryError, reported as such).
    gc.collect()
    before = gc.mem_alloc()
    peak = 0
    done = errors = 0
    memory = loaded = None
    try:
        prog = load_program(job["program"], load_table(board["nodes"]), board)
        job = None
        it = Interpreter(prog, hal, records, lambda *a: None)
        gc.collect()
        loaded = peak = gc.mem_alloc() - before
        t = 0
        it.start(t)
        while True:
            it.poll(t)
            got = records.take()
            if got:
                gc.collect()
                peak = max(peak, gc.mem_alloc() - before)
            for rec in got:
                done += 1
                errors += 1 if rec.get("err") or any(n.get("err") for n in rec.get("nodes") or ()) else 0
                emit("run", rec=rec)
            if done >= runs or t >= max_ms:
                break
            t += max(1, it.idle_ms(t, 60000))
    except MemoryError as e:
        memory = "MemoryError: " + (str(e) or "memory allocation failed")
    emit("done", runs=done, errors=errors, flow_heap_bytes=loaded, peak_heap_bytes=peak, memory_error=memory)


main()
