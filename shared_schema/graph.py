"""Graph algorithms over node indexes and edges `(src, port, dst)`. Pure, deterministic."""

from __future__ import annotations

import heapq


def _succ(n: int, edges) -> list[list[int]]:
    out: list[list[int]] = [[] for _ in range(n)]
    for src, _port, dst in edges:
        out[src].append(dst)
    return out


def back_edges(n: int, edges: list[tuple[int, int, int]]) -> list[tuple[int, list[int]]]:
    """Edges that close a cycle: `(edge_index, cycle as node indexes)`.

    Iterative DFS in node order, so the same graph always names the same
    edges. Self-loops count.
    """
    by_src: list[list[int]] = [[] for _ in range(n)]
    for k, (src, _port, _dst) in enumerate(edges):
        by_src[src].append(k)
    state = [0] * n  # 0 new, 1 on the stack, 2 done
    found: list[tuple[int, list[int]]] = []
    for root in range(n):
        if state[root]:
            continue
        path = [root]
        stack = [(root, iter(by_src[root]))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            k = next(it, None)
            if k is None:
                state[node] = 2
                stack.pop()
                path.pop()
                continue
            dst = edges[k][2]
            if state[dst] == 1:
                found.append((k, path[path.index(dst):] + [dst]))
            elif state[dst] == 0:
                state[dst] = 1
                path.append(dst)
                stack.append((dst, iter(by_src[dst])))
    return found


def topo_order(n: int, edges) -> list[int]:
    """Kahn's algorithm; ties go to the earlier node, so the order is stable.

    Nodes on a cycle are left out (callers refuse cyclic graphs first).
    """
    indeg = [0] * n
    succ = _succ(n, edges)
    for _src, _port, dst in edges:
        indeg[dst] += 1
    ready = [i for i in range(n) if indeg[i] == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in succ[i]:
            indeg[j] -= 1
            if indeg[j] == 0:
                heapq.heappush(ready, j)
    return order


def reachable(starts, n: int, edges) -> set[int]:
    succ = _succ(n, edges)
    seen = set(starts)
    todo = list(seen)
    while todo:
        for j in succ[todo.pop()]:
            if j not in seen:
                seen.add(j)
                todo.append(j)
    return seen


def worst_messages(n: int, edges) -> list[int]:
    """Per node, the most messages one run can deliver to it (a root gets one).

    A node runs once per message (fan-in), and every run sends its output on
    one port, so each distinct node before it can deliver it at most as many
    messages as that node ran: a switch with both ports wired to one node
    still sends it one message per run. Nodes on a cycle count 0.
    """
    preds: list[set[int]] = [set() for _ in range(n)]
    for src, _port, dst in edges:
        preds[dst].add(src)
    worst = [0] * n
    for i in topo_order(n, edges):
        worst[i] = sum(worst[p] for p in preds[i]) if preds[i] else 1
    return worst
