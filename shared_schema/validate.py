"""Full validation of a flow against the catalog and a board: every problem at once.

`validate_flow(body, board) -> list[Problem]` walks the body *as submitted*
(a dict, either shape, see `shared_schema.models`), so each problem carries a
JSON pointer into it (`/definition/nodes/1/config/pin`, `/steps/0/node`).
`analyse` is the same walk, also returning what the compiler needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared_schema.boards import Board, format_pins, load_board
from shared_schema.catalog import load_catalog
from shared_schema.models import normalize_type, step_id
from shared_schema.params import (VAR_NAME, VAR_TYPES, RefError, check_value, coerce_var, expected,
                                  infer_var_type, parse_ms, var_fit_problem, var_ref)
from shared_schema.problems import Problem, describe, join, suggest
from shared_schema.rules import node_rule_problems
from shared_schema.validate_graph import GraphChecks

# The device's own limits (firmware/fleetflow/program.py): a flow that
# validates here must load there.
MAX_ID_LEN = 32
MAX_NODES = 64
MAX_RETRIES = 5
MAX_BACKOFF_MS = 10_000
_USE_WORDS = {"in": "an input", "out": "an output", "adc": "an analog input (ADC)", "pwm": "a PWM output"}


@dataclass
class NodeIn:
    index: int
    ptr: str  # the node's pointer: /definition/nodes/3 or /steps/3
    cfg_key: str  # "config" (graph) or "params" (steps)
    id: str | None = None
    type: str | None = None  # snake_case, set only when the catalog knows it
    params: dict[str, Any] = field(default_factory=dict)  # every param, defaults filled
    on_failure: str = "stop"
    retries: int = 0
    backoff_ms: int | None = None


@dataclass
class Analysis:
    problems: list[Problem]
    nodes: list[NodeIn]
    edges: list[tuple[int, int, int]]  # (src index, port, dst index) into nodes
    variables: dict[str, tuple[str, Any]]  # name -> (declared type, typed value)
    nodes_ptr: str  # /definition/nodes or /steps


def validate_flow(body: Any, board: Board | str, catalog: dict | None = None) -> list[Problem]:
    """Every problem of `body` for `board`; [] when it can be compiled and deployed."""
    board = load_board(board)
    result = analyse(body, board, catalog)
    if result.problems:
        return result.problems
    from shared_schema.compiler import fanin_problem, size_problem  # late: compiler builds on this module

    problem = size_problem(result, board) or fanin_problem(result, board)
    return [problem] if problem else []


def analyse(body: Any, board: Board | str, catalog: dict | None = None) -> Analysis:
    return _Walk(load_board(board), catalog or load_catalog()).run(body)


class _Walk(GraphChecks):
    def __init__(self, board: Board, catalog: dict):
        self.board, self.specs = board, catalog["nodes"]
        self.problems: list[Problem] = []
        self.vars: dict[str, tuple[str, Any]] = {}
        self.nodes: list[NodeIn] = []
        self.edges: list[tuple[int, int, int]] = []
        self.edge_ptrs: list[str] = []
        self.pins: dict[int, tuple[str, str]] = {}  # pin -> (node id, pointer) of its first user

    def add(self, ptr: str, message: str) -> None:
        self.problems.append(Problem(ptr, message))

    def run(self, body: Any) -> Analysis:
        nodes_ptr = "/definition/nodes"
        if not isinstance(body, dict):
            self.add("", f"a flow is a JSON object with 'definition' (graph form) or 'steps' (step form), got {describe(body)}")
        elif body.get("definition") is not None:
            if body.get("steps") is not None:
                self.add("/steps", "give either 'definition' (graph form) or 'steps' (step form), not both")
            self._graph(body["definition"])
        elif body.get("steps") is not None:
            nodes_ptr = "/steps"
            self._steps(body)
        else:
            self.add("", "empty flow: add 'definition' with nodes (graph form) or 'steps' (step form)")
        return Analysis(self.problems, self.nodes, self.edges, self.vars, nodes_ptr)

    # -- the two shapes -------------------------------------------------------

    def _graph(self, d: Any) -> None:
        if not isinstance(d, dict):
            return self.add("/definition", f"'definition' must be an object with nodes, connections, variables; got {describe(d)}")
        self._variables(d.get("variables"), "/definition/variables")
        nodes = d.get("nodes")
        if not self._nonempty_list(nodes, "/definition/nodes", "nodes"):
            return
        if len(nodes) > MAX_NODES:
            self.add("/definition/nodes", f"{len(nodes)} nodes: a device runs at most {MAX_NODES} per flow; split the flow")
        for i, raw in enumerate(nodes):
            self._node(i, raw, join("/definition/nodes", i), "type", "config", None)
        self._connections(d.get("connections", []))
        self._graph_checks()

    def _steps(self, body: dict) -> None:
        self._variables(body.get("variables"), "/variables")
        steps = body["steps"]
        if not self._nonempty_list(steps, "/steps", "steps"):
            return
        if len(steps) > MAX_NODES:
            self.add("/steps", f"{len(steps)} steps: a device runs at most {MAX_NODES} per flow; split the flow")
        for i, raw in enumerate(steps):
            self._node(i, raw, join("/steps", i), "node", "params", step_id(i))
        # Steps run in order: each feeds the next on port 0.
        for i in range(len(self.nodes) - 1):
            self.edges.append((i, 0, i + 1))
            self.edge_ptrs.append(join("/steps", i + 1))
        self._graph_checks()

    def _nonempty_list(self, value: Any, ptr: str, what: str) -> bool:
        if not isinstance(value, list):
            self.add(ptr, f"'{what}' must be a list of nodes, got {describe(value)}")
            return False
        if not value:
            self.add(ptr, f"empty flow: '{what}' has no nodes; add at least one (e.g. an inject or dht source)")
            return False
        return True

    # -- variables -------------------------------------------------------------

    def _variables(self, vs: Any, base: str) -> None:
        if vs is None:
            return
        if not isinstance(vs, list):
            return self.add(base, f"'variables' must be a list of {{name, type, value}}, got {describe(vs)}")
        for i, v in enumerate(vs):
            ptr = join(base, i)
            if not isinstance(v, dict):
                self.add(ptr, f"a variable is an object {{name, type, value}}, got {describe(v)}")
                continue
            name = v.get("name")
            if not isinstance(name, str) or not VAR_NAME.match(name):
                self.add(join(ptr, "name"), f"variable name {name!r} is not valid: letters, digits and '_', not starting with a digit, at most 32")
                continue
            if name in self.vars:
                self.add(join(ptr, "name"), f"variable {name!r} is declared twice; rename or remove one")
                continue
            vtype = v.get("type", infer_var_type(v.get("value")))
            if vtype not in VAR_TYPES:
                self.add(join(ptr, "type"), f"unknown variable type {vtype!r}{suggest(vtype, VAR_TYPES)}; use one of {', '.join(VAR_TYPES)}")
                continue
            if v.get("value") is None:
                self.add(join(ptr, "value"), f"variable {name!r} has no value; give it a {vtype} value")
                continue
            try:
                self.vars[name] = (vtype, coerce_var(vtype, v["value"]))
            except ValueError as exc:
                self.add(join(ptr, "value"), f"variable {name!r}: {exc}")

    # -- nodes -----------------------------------------------------------------

    def _node(self, i: int, raw: Any, ptr: str, type_key: str, cfg_key: str, default_id: str | None) -> None:
        node = NodeIn(index=i, ptr=ptr, cfg_key=cfg_key)
        self.nodes.append(node)
        if not isinstance(raw, dict):
            return self.add(ptr, f"a node is an object with id, {type_key} and {cfg_key}, got {describe(raw)}")
        self._node_id(node, raw.get("id", default_id))
        for key in ("name",):
            if raw.get(key) is not None and not isinstance(raw[key], str):
                self.add(join(ptr, key), f"'{key}' must be a string, got {describe(raw[key])}")
        for key in ("x", "y"):
            if raw.get(key) is not None and (isinstance(raw[key], bool) or not isinstance(raw[key], (int, float))):
                self.add(join(ptr, key), f"'{key}' is a canvas position and must be a number, got {describe(raw[key])}")
        self._retry(node, raw)
        spec = self._node_type(node, raw.get(type_key), join(ptr, type_key))
        cfg = raw.get(cfg_key, {})
        if cfg is None:
            cfg = {}
        if not isinstance(cfg, dict):
            return self.add(join(ptr, cfg_key), f"'{cfg_key}' must be an object of param values, got {describe(cfg)}")
        if spec is not None:
            self._params(node, spec, cfg)

    def _node_id(self, node: NodeIn, nid: Any) -> None:
        ptr = join(node.ptr, "id")
        if not isinstance(nid, str) or not nid.strip():
            return self.add(ptr, f"every node needs a non-empty string id, unique in the flow (e.g. 'n{node.index + 1}'); got {describe(nid)}")
        if len(nid) > MAX_ID_LEN:
            return self.add(ptr, f"node id is {len(nid)} characters; at most {MAX_ID_LEN}")
        for other in self.nodes[:-1]:
            if other.id == nid:
                return self.add(ptr, f"duplicate node id {nid!r} (also at {other.ptr}); ids must be unique")
        node.id = nid

    def _node_type(self, node: NodeIn, raw_type: Any, ptr: str) -> dict | None:
        if not isinstance(raw_type, str) or not raw_type.strip():
            self.add(ptr, f"missing node type; one of: {', '.join(sorted(self.specs))}")
            return None
        ntype = normalize_type(raw_type)
        if ntype not in self.specs:
            self.add(ptr, f"unknown node type {raw_type!r}{suggest(ntype, self.specs)}; known types: {', '.join(sorted(self.specs))}")
            return None
        if not self.board.has_node(ntype):
            self.add(ptr, f"node type {ntype!r} is not compiled into board {self.board.name!r}; "
                          f"it has: {', '.join(sorted(self.board.nodes))}")
            return None
        node.type = ntype
        return self.specs[ntype]

    def _retry(self, node: NodeIn, raw: dict) -> None:
        if raw.get("on_failure") is not None:
            if raw["on_failure"] in ("stop", "continue"):
                node.on_failure = raw["on_failure"]
            else:
                self.add(join(node.ptr, "on_failure"), f"on_failure must be 'stop' or 'continue', got {describe(raw['on_failure'])}")
        r = raw.get("retries")
        if r is not None:
            if isinstance(r, int) and not isinstance(r, bool) and 0 <= r <= MAX_RETRIES:
                node.retries = r
            else:
                self.add(join(node.ptr, "retries"), f"retries must be an integer between 0 and {MAX_RETRIES}, got {describe(r)}")
        if raw.get("backoff_ms") is not None:
            try:
                ms = parse_ms(raw["backoff_ms"])
                if not 0 <= ms <= MAX_BACKOFF_MS:
                    raise ValueError
                node.backoff_ms = ms
            except ValueError:
                self.add(join(node.ptr, "backoff_ms"), f"backoff_ms must be milliseconds between 0 and {MAX_BACKOFF_MS}, got {describe(raw['backoff_ms'])}")

    def _params(self, node: NodeIn, spec: dict, cfg: dict) -> None:
        base = join(node.ptr, node.cfg_key)
        before = len(self.problems)
        specs = {p["name"]: p for p in spec["params"]}
        for key in cfg:
            if key not in specs:
                names = ", ".join(specs) or "none"
                self.add(join(base, key), f"{node.type} has no param {key!r}{suggest(key, specs)}; its params: {names}")
        for name, ps in specs.items():
            ptr = join(base, name)
            if name not in cfg:
                if ps.get("required"):
                    self.add(ptr, f"missing required param {name!r} of {node.type}: {expected(ps)}")
                else:
                    node.params[name] = ps.get("default")
                continue
            value = cfg[name]
            try:
                ref = var_ref(value)
            except RefError as exc:
                self.add(ptr, str(exc))
                continue
            if ref is None:
                escaped = isinstance(value, str) and value.startswith("$$")
                value, problem = check_value(ps, value[1:] if escaped else value)
                if problem:
                    self.add(ptr, f"param {name!r} of {node.type}: {problem}")
                    continue
                node.params[name] = "$" + value if escaped else value  # the program keeps the escape
            elif ref not in self.vars:
                declared = ", ".join(self.vars) or "none"
                self.add(ptr, f"variable {ref!r} is not declared{suggest(ref, self.vars)} (declared: {declared}); "
                              f"declare it in the flow's variables or use a literal")
                continue
            else:
                vtype, vvalue = self.vars[ref]
                problem = var_fit_problem(ps, ref, vtype, vvalue)
                if problem:
                    self.add(ptr, problem)
                    continue
                node.params[name] = cfg[name]  # stays "$ref": resolved on the device, per run
                value = vvalue
            if ps["type"] == "pin":
                self._pin(node, int(value), ps.get("use", "in"), ptr)
        if len(self.problems) == before:
            for name, message in node_rule_problems(node.type, self._effective(node.params)):
                self.add(join(base, name), message)

    def _effective(self, params: dict) -> dict:
        """Params as the device sees them at load: references replaced, escapes undone."""
        out = {}
        for name, value in params.items():
            if isinstance(value, str) and value.startswith("$$"):
                value = value[1:]
            elif isinstance(value, str) and value.startswith("$"):
                value = self.vars[value[1:]][1]
            out[name] = value
        return out

    def _pin(self, node: NodeIn, pin: int, use: str, ptr: str) -> None:
        board, usable = self.board, format_pins(self.board.pins_for(use))
        uses = board.pin_uses(pin)
        if uses is None:
            if pin in board.reserved:
                self.add(ptr, f"GPIO {pin} is reserved on {board.name}: {board.reserved[pin]}; pins usable as {use}: {usable}")
            else:
                self.add(ptr, f"GPIO {pin} does not exist on {board.name}; pins usable as {use}: {usable}")
            return
        if use not in uses:
            why = " (it is input-only)" if use in ("out", "pwm") and "out" not in uses else ""
            self.add(ptr, f"GPIO {pin} on {board.name} cannot be {_USE_WORDS[use]}{why}; pins usable as {use}: {usable}")
            return
        if pin in self.pins:
            owner, owner_ptr = self.pins[pin]
            self.add(ptr, f"GPIO {pin} is already used by node {owner!r} ({owner_ptr}); one pin belongs to one node: pick another of {usable}")
            return
        self.pins[pin] = (node.id or "?", ptr)
