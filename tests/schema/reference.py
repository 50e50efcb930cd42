"""A reference evaluation of flow definitions, in CPython, written from the docs.

It reads the *definition* (not the compiled program) and follows
docs/program-format.md ("Messages", "Runs") and the node docs of the catalog:
nodes run in definition order (the generator keeps it topological), once per
message delivered to them; a switch delivers on port 0 when its comparison
holds, else port 1; sources emit their reading; a dht read that fails after
its retries is reported as data and delivers nothing. Node state (switch
hysteresis, counters, deadbands, sensor scripts, pin levels) lives across
runs, as on the device. The property test checks the firmware against it.
"""

from __future__ import annotations

from shared_schema.catalog import param_specs

_CMP = {
    "gt": lambda v, a, b: v > a, "lt": lambda v, a, b: v < a, "ge": lambda v, a, b: v >= a,
    "le": lambda v, a, b: v <= a, "eq": lambda v, a, b: v == a, "ne": lambda v, a, b: v != a,
    "between": lambda v, a, b: a <= v <= b,
}


def _typed(var_type, value):
    """A variable's value as its declared type: definitions may write numbers as text ("30")."""
    if var_type in ("number", "integer") and isinstance(value, str):
        number = float(value)
        return int(number) if var_type == "integer" or number.is_integer() else number
    return value


class Reference:
    def __init__(self, definition: dict, sim: dict):
        self.nodes = definition["nodes"]
        self.ids = [n["id"] for n in self.nodes]
        self.index = {nid: i for i, nid in enumerate(self.ids)}
        self.edges = [(self.index[c["source"]], c.get("port", 0), self.index[c["target"]]) for c in definition["connections"]]
        self.vars = {v["name"]: _typed(v.get("type"), v["value"]) for v in definition.get("variables", [])}
        self.state: list[dict] = [{} for _ in self.nodes]
        self.scripts = {int(pin): d["script"] for pin, d in (sim.get("dht") or {}).items()}
        self.reads = {pin: 0 for pin in self.scripts}
        self.pins: dict[int, int] = {}
        self.adc: dict[int, int] = {}

    def _params(self, i: int, vars_: dict, overrides: dict) -> dict:
        node = self.nodes[i]
        out = {}
        for name, spec in param_specs(node["type"]).items():
            v = node.get("config", {}).get(name, spec.get("default"))
            if isinstance(v, str) and v.startswith("$"):
                v = v[1:] if v.startswith("$$") else vars_[v[1:]]
            out[name] = v
        out.update(overrides.get(node["id"], {}))
        return out

    def run(self, adc: dict, overrides: dict | None, now_ms: int) -> dict:
        """One on-demand run: every root gets `{}`; returns rows, publications, pin levels."""
        overrides = overrides or {}
        self.adc.update({int(k): v for k, v in adc.items()})
        vars_ = dict(self.vars, **overrides.get("vars", {}))
        inbox: list[list] = [[] for _ in self.nodes]
        has_input = {dst for _s, _p, dst in self.edges}
        for i in range(len(self.nodes)):
            if i not in has_input:
                inbox[i].append({})
        rows, pubs = [], []
        for i, node in enumerate(self.nodes):
            for msg in inbox[i]:
                p = self._params(i, vars_, overrides.get("params", {}))
                out, port = self._node(i, node["type"], p, msg, now_ms, pubs)
                rows.append([node["id"], port])
                if port is None:
                    continue
                for src, eport, dst in self.edges:
                    if src == i and eport == port:
                        inbox[dst].append(out)
        return {"status": "completed", "rows": rows, "pub": pubs, "pins": dict(self.pins)}

    def _dht(self, p: dict):
        pin = p["pin"]
        script = self.scripts[pin]
        for _ in range(p["retries"] + 1):
            step = script[min(self.reads[pin], len(script) - 1)]
            self.reads[pin] += 1
            if not isinstance(step, str):
                return {"value": step[0], "temperature": step[0], "humidity": step[1]}
        return None

    def _node(self, i: int, kind: str, p: dict, msg: dict, now: int, pubs: list):
        """(message passed on, port) -- port None when nothing is delivered."""
        st = self.state[i]
        if kind == "dht":
            out = self._dht(p)
            return (out, 0) if out is not None else (None, None)
        if kind == "adc":
            raw = self.adc.get(p["pin"], 0)
            return {"value": raw * p["scale"] + p["offset"], "raw": raw, "pin": p["pin"]}, 0
        if kind == "inject":
            return {"value": now if p["payload"] is None else p["payload"], "ts": now}, 0
        if kind == "switch":
            v, ref, h = msg[p["property"]], p["value"], p["hysteresis"]
            if h and st.get("held"):  # once it holds, it keeps holding until the value leaves the band
                ref = ref - h if p["op"] == "gt" else ref + h if p["op"] == "lt" else ref
            st["held"] = _CMP[p["op"]](v, ref, p["value2"])
            return msg, 0 if st["held"] else 1
        if kind == "change":
            out, k = dict(msg), p["property"]
            out[k] = {"set": lambda: p["value"], "scale": lambda: out[k] * p["value"],
                      "offset": lambda: out[k] + p["value"]}[p["action"]]()
            return out, 0
        if kind == "counter":
            if "start" not in st:
                st["start"], st["count"] = now, 0
            elif p["reset_every"] and now - st["start"] >= p["reset_every"]:
                st["start"], st["count"] = now, 0
            st["count"] += 1
            return dict(msg, value=st["count"], count=st["count"]), 0
        if kind == "deadband":
            v = msg[p["property"]]
            last = st.get("last")
            silent = p["max_silence"] and now - st.get("when", 0) >= p["max_silence"]
            if last is None or abs(v - last) >= p["delta"] or silent:
                st["last"], st["when"] = v, now
                return msg, 0
            return None, None
        if kind == "mqtt_out":
            pubs.append([p["topic"], msg])
            return msg, 0
        if kind == "gpio_out":
            pin = p["pin"]
            level = self.pins.get(pin, 0)
            self.pins[pin] = {"set": lambda: p["value"], "toggle": lambda: 1 - level,
                              "follow": lambda: 1 if msg.get("value") else 0}[p["mode"]]()
            return msg, 0
        raise AssertionError(f"the reference does not model {kind}")
