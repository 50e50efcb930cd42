"""The connection and graph checks of validate_flow: dangling ends, ports, cycles, reachability.

A mixin of the walker in shared_schema/validate.py: it reads the nodes the
walker collected (`self.nodes`, with `id`, `type`, `index`, `ptr`) and adds
problems with `self.add(pointer, message)`; `self.edges`/`self.edge_ptrs`
end up holding the valid connections, which the compiler turns into edges.
"""

from __future__ import annotations

from typing import Any

from shared_schema import graph
from shared_schema.problems import describe, join, suggest

MAX_EDGES = 256  # firmware/fleetflow/program.py: the loader's limit


class GraphChecks:
    def _connections(self, conns: Any) -> None:
        base = "/definition/connections"
        if conns is None:
            return
        if not isinstance(conns, list):
            return self.add(base, f"'connections' must be a list of {{source, target, port}}, got {describe(conns)}")
        if len(conns) > MAX_EDGES:
            self.add(base, f"{len(conns)} connections: a device takes at most {MAX_EDGES} per flow")
        ids = {n.id: n for n in self.nodes if n.id is not None}
        seen: dict[tuple[int, int, int], str] = {}
        for k, c in enumerate(conns):
            ptr = join(base, k)
            if not isinstance(c, dict):
                self.add(ptr, f"a connection is an object {{source, target, port}}, got {describe(c)}")
                continue
            ends = []
            for key in ("source", "target"):
                ref = c.get(key)
                if not isinstance(ref, str) or not ref:
                    self.add(join(ptr, key), f"missing {key}: the id of a node ({', '.join(ids) or 'no nodes yet'})")
                elif ref not in ids:
                    self.add(join(ptr, key), f"no node has id {ref!r}{suggest(ref, ids)}; node ids: {', '.join(ids)}")
                else:
                    ends.append(ids[ref])
            port = c.get("port", 0)
            if port is None:
                port = 0
            if isinstance(port, bool) or not isinstance(port, int) or port < 0:
                self.add(join(ptr, "port"), f"port must be an output port number (0, or 1 for a switch's 'otherwise'), got {describe(port)}")
                continue
            if len(ends) != 2:
                continue
            src, dst = ends
            if src.type is not None and port >= self.specs[src.type]["ports"]:
                n_ports = self.specs[src.type]["ports"]
                self.add(join(ptr, "port"), f"node {src.id!r} ({src.type}) has {n_ports} output port{'s' if n_ports > 1 else ''} "
                                            f"(0{'-' + str(n_ports - 1) if n_ports > 1 else ''}); port {port} does not exist")
                continue
            if dst.type is not None and self.specs[dst.type]["kind"] == "source":
                self.add(join(ptr, "target"), f"node {dst.id!r} is a {dst.type} source: it starts runs and takes no input; "
                                              f"connect from it, not to it")
                continue
            if src is dst:
                self.add(ptr, f"connection from {src.id!r} to itself is a cycle; flows must be acyclic")
                continue
            key3 = (src.index, port, dst.index)
            if key3 in seen:
                self.add(ptr, f"duplicate connection {src.id!r} -> {dst.id!r} on port {port} (also at {seen[key3]}); remove one")
                continue
            seen[key3] = ptr
            self.edges.append(key3)
            self.edge_ptrs.append(ptr)

    def _graph_checks(self) -> None:
        n = len(self.nodes)
        for k, cycle in graph.back_edges(n, self.edges):
            names = " -> ".join(repr(self.nodes[i].id) for i in cycle)
            self.add(self.edge_ptrs[k], f"this connection closes a cycle {names}; flows must be acyclic: remove a connection of the cycle")
        sources = [nd.index for nd in self.nodes if nd.type and self.specs[nd.type]["kind"] == "source"]
        if not sources:
            return  # an on-demand flow: every root runs when the flow is executed
        reached = graph.reachable(sources, n, self.edges)
        names = ", ".join(repr(self.nodes[i].id) for i in sources)
        for nd in self.nodes:
            if nd.index not in reached:
                label = repr(nd.id) if nd.id else f"at {nd.ptr}"
                self.add(nd.ptr, f"node {label} is not reachable from any source node ({names}); "
                                 f"connect it downstream of one, or remove it")
