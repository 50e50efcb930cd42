"""Our pytest plugin (tools/sim/pytest_micropython_sim.py): runs code under the
real MicroPython, feeds stdin, and explains a failure with the traceback's
source lines."""

import pytest


def test_run_feeds_stdin_and_collects_output(mpy):
    res = mpy.run("import sys\nprint(sys.stdin.read().upper())\nprint(sys.implementation.name)", stdin="hi")
    assert res.ok and res.lines == ["HI", "micropython"]


def test_heap_is_the_one_asked_for(mpy):
    res = mpy.check("import gc\nprint(gc.mem_free() + gc.mem_alloc())", heap="64k")
    assert 60000 < int(res.out) <= 65536


def test_board_heap_comes_from_the_board_file(mpy):
    res = mpy.check("import gc\nprint(gc.mem_free() + gc.mem_alloc())", board="unix-sim")
    assert 60000 < int(res.out) <= 65536


def test_firmware_runs_compiled_by_default_and_as_source_on_request(mpy):
    code = "import fleetflow.errors as e\nprint(e.__file__)"
    assert mpy.check(code).out.strip().endswith("errors.mpy")
    assert mpy.check(code, compiled=False, heap="256k").out.strip().endswith("errors.py")


def test_failure_shows_the_micropython_traceback_with_source(mpy):
    code = "from fleetflow.program import Program\n\ndef boom():\n    return Program().nope\n\nboom()\n"
    res = mpy.run(code)
    assert res.rc == 1
    with pytest.raises(AssertionError) as info:
        mpy.check(code)
    text = str(info.value)
    assert "MicroPython exited with status 1" in text
    assert "AttributeError" in text
    assert "    return Program().nope" in text       # the snippet's own line, under its frame
    assert "    boom()" in text


def test_json_takes_the_last_line(mpy):
    assert mpy.json('print("noise")\nprint(\'{"a": [1, 2]}\')') == {"a": [1, 2]}


def test_spawn_talks_over_pipes(mpy):
    proc = mpy.spawn("import sys\nfor line in sys.stdin:\n    print(int(line) * 2)\n")
    out, _ = proc.communicate("21\n4\n", timeout=30)
    assert proc.returncode == 0 and out.split() == ["42", "8"]
