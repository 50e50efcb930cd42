"""Rehearsal's pure parts: what a simulated twin is fed, and what its runs mean.

A rehearsal runs the candidate version and the version the targets run now
(the baseline) on simulated twins of the target boards (cloud/rehearsal.py
starts them: the real firmware under the MicroPython unix port, tools/mpy/twin_run.py),
both fed with the sensor readings the targets themselves recorded. This
module has no I/O:

- `recorded_inputs(program, rows)`: the simulated HAL's configuration that
  replays a device's recorded readings: per DHT pin the readings (and the
  read errors) in order, per ADC pin the raw values; a node of the
  baseline's program tells which pin its records came from.
- `summarize(records)`: per node: runs, errors and the first error text,
  outputs in order; the runs that failed as a whole (budgets, memory).
- `compare(baseline, candidate, ...)`: findings, node by node:
  `new_error` (a node fails in the candidate that did not in the
  baseline, or a node new in the candidate fails), `memory` (the twin ran
  out of heap), `budget` (a run ended on its step, time or memory budget),
  `output_diff` (a node in both, same type, whose outputs differ beyond the
  tolerance in some runs: reported, not a failure: a changed threshold is
  meant to change outputs).
- `verdict(findings)`: failed when any finding is not `output_diff`, with
  the reason naming the first node and its error.
"""

from __future__ import annotations

import ast
import json
import re

INPUT_TYPES = ("dht", "adc")
FAILING = ("new_error", "memory", "budget", "heap")
# A flow may keep at most 1/FLOW_HEAP_SHARE of the board's heap_bytes on the
# twin (the rest is the agent's: link, records, the next deploy's check). The
# twin is the 64-bit unix port; a 32-bit board keeps about 0.7 of that.
FLOW_HEAP_SHARE = 2
SCRIPT_MAX = 200  # readings replayed per pin at most
ERROR_TEXT_MAX = 200


def wanted(strategy: str, targets: int, asked: bool | None, default_on: bool) -> bool:
    """Whether a new deployment rehearses: as asked, else on for canary, rolling and
    blue-green and for all_at_once on more than one device (when the cloud's default is on)."""
    if asked is not None:
        return asked
    return default_on and (strategy != "all_at_once" or targets > 1)


def program_nodes(program_text: str) -> dict[str, tuple[str, dict]]:
    """node id -> (type, params) of a compiled program (shared_schema.compiler's text)."""
    prog = json.loads(program_text)
    return {n["id"]: (n["type"], n.get("params") or {}) for n in prog.get("nodes", [])}


_PAIR = re.compile(r"'(\w+)': ('[^']*'|-?[\d.]+(?:[eE][-+]?\d+)?|None|True|False)(?=[,}])")


def parse_out(text: str | None):
    """A node's recorded output (the device's short repr), or None when unreadable. A
    device cuts a long one to 60 characters ("..."): of a dict, the fields it kept whole."""
    if not text:
        return None
    if text.endswith("..."):
        if not text.startswith("{"):
            return None
        pairs = {k: ast.literal_eval(v) for k, v in _PAIR.findall(text[:-3])}
        return pairs or None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def _dht_step(out, err):
    if err:
        low = err.lower()
        return "checksum" if "checksum" in low else "timeout"
    if isinstance(out, dict) and ("temperature" in out or "value" in out):  # value: the temperature too
        return [out.get("temperature", out.get("value")), out.get("humidity", 45.0)]
    return None


def recorded_inputs(program_text: str, rows) -> dict:
    """The twin's sim configuration replaying `rows` ([(node id, out text, err text)] in
    run order) recorded under `program_text`. Nodes of other types, or not in the
    program, are left out; a pin with no usable reading keeps the simulator's default."""
    nodes = program_nodes(program_text)
    dht: dict[str, list] = {}
    adc: dict[str, list] = {}
    for node_id, out_text, err in rows:
        kind, params = nodes.get(node_id, (None, {}))
        if kind not in INPUT_TYPES or "pin" not in params:
            continue
        pin = str(params["pin"])
        out = parse_out(out_text)
        if kind == "dht":
            step = _dht_step(out, err)
            if step is not None and len(dht.setdefault(pin, [])) < SCRIPT_MAX:
                dht[pin].append(step)
        elif isinstance(out, dict) and isinstance(out.get("raw"), int) and not err:
            if len(adc.setdefault(pin, [])) < SCRIPT_MAX:
                adc[pin].append(out["raw"])
    sim: dict = {}
    if dht:
        sim["dht"] = {pin: {"script": steps, "read_ms": 0} for pin, steps in dht.items() if steps}
    if adc:
        sim["adc"] = {pin: raws for pin, raws in adc.items() if raws}
    return sim


def summarize(records: list[dict]) -> dict:
    """{"runs", "failed_runs": [err...], "nodes": {id: {"type", "runs", "errors", "error", "outs"}}}."""
    nodes: dict[str, dict] = {}
    failed: list[str] = []
    for rec in records:
        if rec.get("err"):
            failed.append(str(rec["err"])[:ERROR_TEXT_MAX])
        for n in rec.get("nodes") or ():
            s = nodes.setdefault(n["id"], {"type": n.get("type"), "runs": 0, "errors": 0, "error": None,
                                           "outs": []})
            s["runs"] += 1
            if n.get("err"):
                s["errors"] += 1
                s["error"] = s["error"] or str(n["err"])[:ERROR_TEXT_MAX]
            s["outs"].append(n.get("out"))
    return {"runs": len(records), "failed_runs": failed, "nodes": nodes}


def _differs(a, b, tolerance: float) -> bool:
    a, b = parse_out(a) if isinstance(a, str) else a, parse_out(b) if isinstance(b, str) else b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() != b.keys() or any(_differs(a[k], b[k], tolerance) for k in a)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(a - b) > tolerance * max(1.0, abs(a), abs(b))
    return a != b


def heap_budget(board_heap_bytes: int) -> int:
    return board_heap_bytes // FLOW_HEAP_SHARE


def compare(baseline: dict | None, candidate: dict, memory_error: str | None = None,
            tolerance: float = 0.01, heap: tuple[int | None, int | None, int] | None = None) -> list[dict]:
    """Findings for the candidate's summary against the baseline's (None: nothing runs there now).
    heap: (the candidate's peak flow heap, the baseline's or None, the board's heap_bytes)."""
    findings: list[dict] = []
    if memory_error:
        findings.append({"kind": "memory", "node": None, "detail": memory_error[:ERROR_TEXT_MAX], "count": 1})
    if heap and heap[0] is not None:
        peak, base_peak, board_heap = heap
        budget = heap_budget(board_heap)
        if peak > budget and (base_peak is None or peak > base_peak):
            findings.append({"kind": "heap", "node": None, "count": 1,
                             "detail": f"the flow took {peak} bytes of heap on the twin, more than the board's "
                                       f"flow share of {budget} (heap_bytes {board_heap} / {FLOW_HEAP_SHARE})"
                                       + (f" and the version running now ({base_peak})" if base_peak else "")})
    base_nodes = (baseline or {}).get("nodes", {})
    for node_id, s in candidate["nodes"].items():
        b = base_nodes.get(node_id)
        if s["errors"] and (b is None or b["type"] != s["type"] or not b["errors"]):
            findings.append({"kind": "new_error", "node": node_id, "detail": s["error"], "count": s["errors"],
                             "runs": s["runs"]})
        elif b is not None and b["type"] == s["type"] and not s["errors"]:
            pairs = list(zip(b["outs"], s["outs"]))
            diff = sum(1 for x, y in pairs if _differs(x, y, tolerance))
            if diff:
                findings.append({"kind": "output_diff", "node": node_id, "count": diff, "runs": len(pairs),
                                 "detail": f"{diff} of {len(pairs)} outputs differ (tolerance {tolerance:g})"})
    base_failed = set((baseline or {}).get("failed_runs", ()))
    for err in candidate["failed_runs"]:
        if err not in base_failed and ("budget" in err or "memory" in err.lower()):
            kind = "memory" if "memory" in err.lower() and "budget" not in err else "budget"
            findings.append({"kind": kind, "node": None, "detail": err, "count": candidate["failed_runs"].count(err)})
            base_failed.add(err)
    return findings


def verdict(findings: list[dict]) -> tuple[str, str]:
    """("passed", "") or ("failed", the first failing finding in words)."""
    for f in findings:
        if f["kind"] in FAILING:
            where = f"{f['node']}: " if f.get("node") else ""
            return "failed", f"rehearsal: {f['kind'].replace('_', ' ')}: {where}{f['detail']}"
    return "passed", ""
