// Two versions side by side on the canvas: added nodes green, removed red,
// changed amber, with the field diffs; restore either with one click.

import { useState } from "react";
import { ReactFlow, ReactFlowProvider, Background } from "@xyflow/react";
import type { Edge, Node } from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import { get, post } from "../api";
import { Can } from "../auth";
import { ErrorBox, useLoad } from "../components/common";
import { json } from "../format";
import { Link, navigate } from "../router";
import type { NodeData } from "./FlowEditor";
import { NODE_TYPES, toRfEdges, toRfNodes } from "./FlowEditor";

interface Diff {
  nodes: { added: any[]; removed: any[]; changed: { id: string; fields: string[]; from: any; to: any }[] };
  connections: { added: any[]; removed: any[] };
  variables: { added: any[]; removed: any[]; changed: any[] };
  same: boolean;
}

/** A version's nodes marked for one side of the compare view. */
export function markNodes(def: any, diff: Diff, side: "old" | "new"): Node<NodeData>[] {
  const added = new Set(diff.nodes.added.map((n) => n.id));
  const removed = new Set(diff.nodes.removed.map((n) => n.id));
  const changed = new Set(diff.nodes.changed.map((n) => n.id));
  return toRfNodes(def?.nodes || stepsAsNodes(def)).map((n) => ({
    ...n, draggable: false,
    data: { ...n.data, diff: side === "new" && added.has(n.id) ? "added" : side === "old" && removed.has(n.id) ? "removed" : changed.has(n.id) ? "changed" : undefined },
  }));
}

function stepsAsNodes(body: any) {
  return (body?.steps || []).map((s: any, i: number) => ({ id: s.id || `s${i + 1}`, type: s.node, config: s.params || {}, x: 80 + 220 * i, y: 120 }));
}

function edgesOf(def: any, diff: Diff, side: "old" | "new"): Edge[] {
  const conns = def?.connections || stepsAsNodes(def).slice(1).map((n: any, i: number) => ({ source: `s${i + 1}`, target: n.id }));
  const key = (c: any) => `${c.source}:${c.port ?? 0}->${c.target}`;
  const marked = new Set((side === "new" ? diff.connections.added : diff.connections.removed).map(key));
  return toRfEdges(conns).map((e, i) => {
    const hit = marked.has(key(conns[i]));
    return hit ? { ...e, className: side === "new" ? "edge-added" : "edge-removed", animated: true } : e;
  });
}

function Side({ title, def, diff, side }: { title: string; def: any; diff: Diff; side: "old" | "new" }) {
  return (
    <div className="compare-side card" aria-label={title}>
      <h2>{title}</h2>
      <div className="canvas small">
        <ReactFlowProvider>
          <ReactFlow nodes={markNodes(def?.definition || def, diff, side)} edges={edgesOf(def?.definition || def, diff, side)}
                     nodeTypes={NODE_TYPES} fitView nodesDraggable={false} nodesConnectable={false} proOptions={{ hideAttribution: true }}>
            <Background />
          </ReactFlow>
        </ReactFlowProvider>
      </div>
    </div>
  );
}

export default function Compare({ id, v1, v2 }: { id: string; v1: string | null; v2: string | null }) {
  const data = useLoad(async () => {
    const [a, b, diff] = await Promise.all([
      get(`/flows/${id}/versions/${v1}`), get(`/flows/${id}/versions/${v2}`),
      get<Diff>(`/flows/${id}/versions/compare?v1=${v1}&v2=${v2}`),
    ]);
    return { a, b, diff };
  }, [id, v1, v2]);
  const [error, setError] = useState<unknown>(null);
  async function restore(v: string) {
    try {
      await post(`/flows/${id}/versions/${v}/restore`);
      navigate(`/flows/${id}`);
    } catch (e) { setError(e); }
  }
  if (data.error) return <ErrorBox error={data.error} />;
  if (!data.data) return <p className="loading">Loading…</p>;
  const { a, b, diff } = data.data;
  return (
    <section>
      <div className="title-row">
        <h1>Compare v{v1} and v{v2}</h1>
        <div className="actions">
          <Link to={`/flows/${id}`}>back to the flow</Link>
          <Can role="operator">
            <button type="button" onClick={() => restore(v1!)}>Restore v{v1}</button>
            <button type="button" onClick={() => restore(v2!)}>Restore v{v2}</button>
          </Can>
        </div>
      </div>
      <p className="legend"><span className="diff-added">added</span> <span className="diff-removed">removed</span> <span className="diff-changed">changed</span></p>
      <ErrorBox error={error} />
      {diff.same && <p className="notice">The two versions are the same.</p>}
      <div className="compare">
        <Side title={`v${v1}`} def={a} diff={diff} side="old" />
        <Side title={`v${v2}`} def={b} diff={diff} side="new" />
      </div>
      <div className="card">
        <h2>What changed</h2>
        <ul className="changes">
          {diff.nodes.added.map((n) => <li key={"a" + n.id} className="diff-added">node {n.id} ({n.type ?? n.node}) added</li>)}
          {diff.nodes.removed.map((n) => <li key={"r" + n.id} className="diff-removed">node {n.id} ({n.type ?? n.node}) removed</li>)}
          {diff.nodes.changed.map((n) => (
            <li key={"c" + n.id} className="diff-changed">node {n.id}:
              <ul>{n.fields.map((f) => <li key={f}><code>{f}</code>: {json(n.from[f] ?? "—")} → {json(n.to[f] ?? "—")}</li>)}</ul>
            </li>))}
          {diff.connections.added.map((c, i) => <li key={"ca" + i} className="diff-added">connection {c.source} → {c.target}{c.port ? ` (port ${c.port})` : ""} added</li>)}
          {diff.connections.removed.map((c, i) => <li key={"cr" + i} className="diff-removed">connection {c.source} → {c.target}{c.port ? ` (port ${c.port})` : ""} removed</li>)}
          {diff.variables.added.map((v) => <li key={"va" + v.name} className="diff-added">variable {v.name} added</li>)}
          {diff.variables.removed.map((v) => <li key={"vr" + v.name} className="diff-removed">variable {v.name} removed</li>)}
          {diff.variables.changed.map((v) => <li key={"vc" + v.name} className="diff-changed">variable {v.name}: {v.fields.map((f: string) => `${f} ${json(v.from[f])} → ${json(v.to[f])}`).join(", ")}</li>)}
        </ul>
      </div>
    </section>
  );
}
