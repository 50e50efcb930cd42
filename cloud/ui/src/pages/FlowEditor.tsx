// A flow: the graph editor (React Flow) for the graph form, an ordered list
// for the step form, variables, problems on the node and field they point
// at (checked from the catalog as you edit, and the API's on save/publish),
// publish, versions (compare, restore), deploy and execute.

import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState } from "react";
import type { DragEvent } from "react";
import {
  addEdge, applyEdgeChanges, applyNodeChanges, Background, Controls, Handle, Position, ReactFlow,
  ReactFlowProvider, useReactFlow,
} from "@xyflow/react";
import type { Connection as RFConnection, Edge, EdgeChange, Node, NodeChange, NodeProps } from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import { ApiError, get, post, put } from "../api";
import { allowed, useSession } from "../auth";
import { CATALOG, grouped } from "../catalog";
import { Badge, ErrorBox, useLoad } from "../components/common";
import ParamsForm from "../components/ParamsForm";
import type { Definition, FlowNode, Problems, Variable } from "../flowmodel";
import {
  checkDefinition, emptyProblems, mergeProblems, newNodeId, placeProblems, problemCount,
} from "../flowmodel";
import { ago } from "../format";
import { Link, navigate } from "../router";

export interface NodeData extends Record<string, unknown> {
  type: string;
  name?: string | null;
  config: Record<string, unknown>;
  extra?: Record<string, unknown>; // on_failure, retries, backoff_ms: kept as they were
  diff?: "added" | "removed" | "changed";
}

export const ProblemsCtx = createContext<Problems>(emptyProblems());

const KIND_LABEL: Record<string, string> = { source: "sensor", logic: "logic", sink: "output", maint: "maintenance" };

/** A node on the canvas: its input on the left, one output per port, its problems. */
export function FlowNodeView({ id, data, selected }: NodeProps<Node<NodeData>>) {
  const problems = useContext(ProblemsCtx).nodes[id];
  const spec = CATALOG[data.type];
  const msgs = problems ? [...problems.node, ...Object.entries(problems.fields).map(([f, m]) => `${f}: ${m[0]}`)] : [];
  const ports = spec?.ports ?? 1;
  return (
    <div className={`fnode kind-${spec?.kind ?? "unknown"}${msgs.length ? " fnode-bad" : ""}${selected ? " fnode-selected" : ""}${data.diff ? " diff-" + data.diff : ""}`}
         data-node-id={id} data-problems={msgs.length}>
      {spec?.kind !== "source" && <Handle type="target" position={Position.Left} aria-label={`${id} input`} />}
      <div className="fnode-title">{data.name || id}</div>
      <div className="fnode-type">{data.type} · {KIND_LABEL[spec?.kind ?? ""] ?? "unknown type"}</div>
      {msgs.length > 0 && (
        <div className="fnode-problems" role="note" title={msgs.join("\n")}>⚠ {msgs[0]}{msgs.length > 1 ? ` (+${msgs.length - 1})` : ""}</div>
      )}
      {Array.from({ length: ports }, (_, i) => (
        <Handle key={i} type="source" position={Position.Right} id={`p${i}`}
                style={ports > 1 ? { top: `${((i + 1) * 100) / (ports + 1)}%` } : undefined}
                aria-label={`${id} output ${i}`}>
          {ports > 1 && <span className="port-label">{data.type === "switch" ? (i === 0 ? "yes" : "no") : i}</span>}
        </Handle>
      ))}
    </div>
  );
}

export const NODE_TYPES = { flow: FlowNodeView };

const EXTRA_KEYS = ["on_failure", "retries", "backoff_ms"];

export function toRfNodes(nodes: FlowNode[]): Node<NodeData>[] {
  return nodes.map((n, i) => ({
    id: n.id, type: "flow",
    position: { x: typeof n.x === "number" ? n.x : 80 + 220 * i, y: typeof n.y === "number" ? n.y : 120 },
    data: {
      type: n.type, name: n.name ?? null, config: { ...(n.config || {}) },
      extra: Object.fromEntries(EXTRA_KEYS.filter((k) => n[k] !== undefined).map((k) => [k, n[k]])),
    },
  }));
}

export function toRfEdges(conns: { source: string; target: string; port?: number }[]): Edge[] {
  return conns.map((c) => ({
    id: `${c.source}:${c.port ?? 0}->${c.target}`, source: c.source, target: c.target, sourceHandle: `p${c.port ?? 0}`,
  }));
}

/** The definition as the API takes it, positions as x/y. */
export function toDefinition(nodes: Node<NodeData>[], edges: Edge[], variables: Variable[]): Definition {
  return {
    nodes: nodes.map((n) => {
      const config = Object.fromEntries(Object.entries(n.data.config).filter(([, v]) => v !== undefined));
      const out: FlowNode = { id: n.id, type: n.data.type, config, x: Math.round(n.position.x), y: Math.round(n.position.y) };
      if (n.data.name) out.name = n.data.name;
      Object.assign(out, n.data.extra || {});
      return out;
    }),
    connections: edges.map((e) => {
      const port = Number((e.sourceHandle || "p0").slice(1)) || 0;
      return port ? { source: e.source, target: e.target, port } : { source: e.source, target: e.target };
    }),
    variables: variables.map((v) => ({ ...v })),
  };
}

function Palette({ onAdd, disabled }: { onAdd(type: string): void; disabled: boolean }) {
  return (
    <nav className="palette" aria-label="node catalog">
      <p className="hint">Drag a node onto the canvas, or press it to add it.</p>
      {grouped().map((g) => (
        <div key={g.kind} className="palette-group">
          <h3>{g.label}</h3>
          {g.types.map((t) => (
            <button key={t} type="button" className={`palette-item kind-${g.kind}`} draggable={!disabled} disabled={disabled}
                    title={CATALOG[t].doc} data-type={t}
                    onDragStart={(e: DragEvent) => { e.dataTransfer.setData("application/fleetflow-node", t); e.dataTransfer.effectAllowed = "move"; }}
                    onClick={() => onAdd(t)}>{t}</button>
          ))}
        </div>
      ))}
    </nav>
  );
}

export function VariablesEditor({ variables, setVariables, problems, disabled }: {
  variables: Variable[]; setVariables(v: Variable[]): void; problems: Record<number, string[]>; disabled: boolean;
}) {
  const set = (i: number, patch: Partial<Variable>) => setVariables(variables.map((v, j) => (j === i ? { ...v, ...patch } : v)));
  return (
    <div className="variables">
      <h3>Variables</h3>
      {variables.length === 0 && <p className="hint">None. A param written <code>$name</code> takes a variable's value; an execution may override it.</p>}
      {variables.map((v, i) => (
        <div key={i} className={`var-row${problems[i] ? " field-bad" : ""}`} data-variable={v.name}>
          <input aria-label="variable name" value={v.name} disabled={disabled} onChange={(e) => set(i, { name: e.target.value })} />
          <select aria-label="variable type" value={v.type || "number"} disabled={disabled} onChange={(e) => set(i, { type: e.target.value })}>
            {["number", "integer", "string", "boolean"].map((t) => <option key={t}>{t}</option>)}
          </select>
          <input aria-label="variable value" value={v.value === undefined || v.value === null ? "" : String(v.value)} disabled={disabled}
                 onChange={(e) => set(i, { value: e.target.value })} />
          {!disabled && <button type="button" aria-label={`remove variable ${v.name}`} onClick={() => setVariables(variables.filter((_, j) => j !== i))}>✕</button>}
          {problems[i]?.map((m, k) => <span key={k} className="field-problem" role="alert">{m}</span>)}
        </div>
      ))}
      {!disabled && <button type="button" onClick={() => setVariables([...variables, { name: `var${variables.length + 1}`, type: "number", value: "0" }])}>Add variable</button>}
    </div>
  );
}

/** The node's outgoing connections, editable without a mouse: one list per output port. */
function Outputs({ node, nodes, edges, editable, setEdges }: {
  node: Node<NodeData>; nodes: Node<NodeData>[]; edges: Edge[]; editable: boolean; setEdges(f: (e: Edge[]) => Edge[]): void;
}) {
  const ports = CATALOG[node.data.type]?.ports ?? 1;
  const others = nodes.filter((n) => n.id !== node.id && CATALOG[n.data.type]?.kind !== "source");
  return (
    <div className="outputs">
      <h4>Connections out</h4>
      {Array.from({ length: ports }, (_, p) => {
        const outs = edges.filter((e) => e.source === node.id && (e.sourceHandle || "p0") === `p${p}`);
        const free = others.filter((n) => !outs.some((e) => e.target === n.id));
        return (
          <div key={p} className="port-row">
            <span className="sub">{ports > 1 ? (node.data.type === "switch" ? (p === 0 ? "yes (port 0)" : "no (port 1)") : `port ${p}`) : "output"}</span>
            <ul>{outs.map((e) => (
              <li key={e.id}>→ {e.target}{editable && <button type="button" className="link" aria-label={`disconnect ${node.id} from ${e.target}`}
                                                              onClick={() => setEdges((es) => es.filter((x) => x.id !== e.id))}> remove</button>}</li>))}</ul>
            {editable && free.length > 0 && (
              <select aria-label={`connect ${node.id} ${ports > 1 ? `port ${p}` : "output"} to`} value=""
                      onChange={(ev) => { const t = ev.target.value; if (t) setEdges((es) => [...es, { id: `${node.id}:${p}->${t}`, source: node.id, target: t, sourceHandle: `p${p}` }]); }}>
                <option value="">connect to…</option>
                {free.map((n) => <option key={n.id} value={n.id}>{n.id} ({n.data.type})</option>)}
              </select>
            )}
          </div>
        );
      })}
    </div>
  );
}

function Inspector({ node, problems, editable, onChange, onRemove, nodes, edges, setEdges }: {
  node: Node<NodeData> | null; problems: Problems; editable: boolean;
  onChange(id: string, patch: Partial<NodeData>): void; onRemove(id: string): void;
  nodes: Node<NodeData>[]; edges: Edge[]; setEdges(f: (e: Edge[]) => Edge[]): void;
}) {
  if (!node) return <p className="hint">{editable ? "Select a node to edit its params." : "Select a node to see its params."}</p>;
  const spec = CATALOG[node.data.type];
  const np = problems.nodes[node.id];
  return (
    <div className="inspector" aria-label={`node ${node.id}`}>
      <h3>{node.id} <span className="sub">{node.data.type}</span></h3>
      {spec && <p className="hint">{spec.doc}</p>}
      {np?.node.map((m, i) => <p key={i} className="field-problem" role="alert">{m}</p>)}
      <div className="field">
        <label htmlFor={`name-${node.id}`}>name</label>
        <input id={`name-${node.id}`} value={node.data.name || ""} disabled={!editable} placeholder={node.id}
               onChange={(e) => onChange(node.id, { name: e.target.value || null })} />
      </div>
      {spec && (
        <ParamsForm node={node.id} specs={spec.params} config={node.data.config} problems={np?.fields} disabled={!editable}
                    onChange={(name, value) => onChange(node.id, { config: { ...node.data.config, [name]: value } })} />
      )}
      <Outputs node={node} nodes={nodes} edges={edges} editable={editable} setEdges={setEdges} />
      {editable && <button type="button" className="danger" onClick={() => onRemove(node.id)}>Remove node</button>}
    </div>
  );
}

function GraphEditor({ flow, editable, onSaved }: { flow: any; editable: boolean; onSaved(f: any): void }) {
  const def = flow.definition || { nodes: [], connections: [], variables: [] };
  const [nodes, setNodes] = useState<Node<NodeData>[]>(() => toRfNodes(def.nodes || []));
  const [edges, setEdges] = useState<Edge[]>(() => toRfEdges(def.connections || []));
  const [variables, setVariables] = useState<Variable[]>(() => def.variables || []);
  const [selected, setSelected] = useState<string | null>(null);
  const [server, setServer] = useState<Problems>(emptyProblems());
  const [error, setError] = useState<unknown>(null);
  const [notice, setNotice] = useState("");
  const [busy, setBusy] = useState(false);
  const wrapper = useRef<HTMLDivElement>(null);
  const rf = useReactFlow();
  // Fit the view to the nodes a flow opens with; an empty flow keeps the
  // view still (fitting when the first node lands would move the canvas under the pointer).
  const initialCount = useRef((def.nodes || []).length);

  const definition = useMemo(() => toDefinition(nodes, edges, variables), [nodes, edges, variables]);
  // What was last saved, to tell unsaved edits (and warn before leaving the page with them).
  const [savedText, setSavedText] = useState(() => JSON.stringify(definition));
  const dirty = editable && JSON.stringify(definition) !== savedText;
  useEffect(() => {
    if (!dirty) return;
    const warn = (e: BeforeUnloadEvent) => { e.preventDefault(); };
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, [dirty]);
  const problems = useMemo(() => mergeProblems(checkDefinition(definition), server), [definition, server]);
  const count = problemCount(problems);

  const onNodesChange = useCallback((changes: NodeChange<Node<NodeData>>[]) => {
    const allowedChanges = editable ? changes : changes.filter((c) => c.type === "select" || c.type === "dimensions");
    setNodes((ns) => applyNodeChanges(allowedChanges, ns));
    for (const c of allowedChanges) if (c.type === "select" && c.selected) setSelected(c.id);
  }, [editable]);
  const onEdgesChange = useCallback((changes: EdgeChange[]) => {
    if (editable) setEdges((es) => applyEdgeChanges(changes, es));
  }, [editable]);
  const onConnect = useCallback((c: RFConnection) => {
    setEdges((es) => addEdge({ ...c, id: `${c.source}:${(c.sourceHandle || "p0").slice(1)}->${c.target}` }, es));
  }, []);

  const add = useCallback((type: string, position?: { x: number; y: number }) => {
    setNodes((ns) => {
      const id = newNodeId(ns);
      const pos = position ?? { x: 80 + (ns.length % 4) * 220, y: 80 + Math.floor(ns.length / 4) * 140 };
      setSelected(id);
      // Added by a press (keyboard, or a phone): bring it into view.
      if (!position) setTimeout(() => rf.setCenter(pos.x + 80, pos.y + 30, { zoom: rf.getZoom(), duration: 200 }), 0);
      return [...ns.map((n) => ({ ...n, selected: false })),
              { id, type: "flow", position: pos, selected: true, data: { type, name: null, config: {}, extra: {} } }];
    });
  }, [rf]);

  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    const type = e.dataTransfer.getData("application/fleetflow-node");
    if (!type || !CATALOG[type]) return;
    add(type, rf.screenToFlowPosition({ x: e.clientX, y: e.clientY }));
  };

  const change = (id: string, patch: Partial<NodeData>) => {
    setNodes((ns) => ns.map((n) => (n.id === id ? { ...n, data: { ...n.data, ...patch } } : n)));
    // What the API said about the fields just edited is no longer known.
    if (patch.config) {
      setServer((s) => {
        const np = s.nodes[id];
        if (!np) return s;
        const old = nodes.find((n) => n.id === id)?.data.config || {};
        const fields = Object.fromEntries(Object.entries(np.fields).filter(([f]) => patch.config![f] === old[f]));
        return { ...s, nodes: { ...s.nodes, [id]: { node: np.node, fields } } };
      });
    }
  };
  const remove = (id: string) => {
    setNodes((ns) => ns.filter((n) => n.id !== id));
    setEdges((es) => es.filter((e) => e.source !== id && e.target !== id));
    setSelected(null);
  };

  async function save(publish: boolean) {
    setBusy(true); setError(null); setNotice("");
    const body = { definition };
    const ids = definition.nodes.map((n) => n.id);
    try {
      let saved = await put(`/flows/${flow.id}`, body);
      setSavedText(JSON.stringify(definition));
      setServer(emptyProblems());
      if (publish) {
        saved = await post(`/flows/${flow.id}/publish`);
        setNotice(`Published as version ${saved.version}.`);
      } else {
        setNotice("Draft saved.");
      }
      onSaved(saved);
    } catch (e) {
      if (e instanceof ApiError && e.problems.length) setServer(placeProblems(e.problems, ids, "graph"));
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  const sel = nodes.find((n) => n.id === selected) || null;
  return (
    <ProblemsCtx.Provider value={problems}>
      {editable && (
        <div className="actions editor-actions">
          <button type="button" onClick={() => save(false)} disabled={busy}>Save draft</button>
          <button type="button" className="primary" onClick={() => save(true)} disabled={busy}>Publish</button>
          {dirty && <span className="sub" data-testid="unsaved">unsaved changes</span>}
          <span className={count ? "bad" : "ok"} role="status" aria-live="polite" data-problem-count={count}>
            {count ? `${count} problem${count > 1 ? "s" : ""}` : "no problem found"}
          </span>
        </div>
      )}
      {notice && <div className="notice" role="status">{notice}</div>}
      <ErrorBox error={error} />
      {problems.other.length > 0 && <ul className="bad">{problems.other.map((m, i) => <li key={i}>{m}</li>)}</ul>}
      <div className={`editor${editable ? "" : " readonly"}`}>
        {editable && <Palette onAdd={(t) => add(t)} disabled={!editable} />}
        <div className="canvas" ref={wrapper} onDrop={onDrop} onDragOver={(e) => { e.preventDefault(); e.dataTransfer.dropEffect = "move"; }}
             aria-label="flow graph">
          <ReactFlow nodes={nodes} edges={edges} nodeTypes={NODE_TYPES} onNodesChange={onNodesChange}
                     onEdgesChange={onEdgesChange} onConnect={onConnect} fitView={initialCount.current > 0} fitViewOptions={{ maxZoom: 1.2 }}
                     nodesDraggable={editable} nodesConnectable={editable} elementsSelectable deleteKeyCode={editable ? ["Backspace", "Delete"] : null}
                     onPaneClick={() => setSelected(null)} proOptions={{ hideAttribution: true }}>
            <Background />
            <Controls showInteractive={false} />
          </ReactFlow>
          {nodes.length === 0 && <p className="canvas-empty">{editable ? "Empty: drag nodes here from the catalog." : "No node."}</p>}
        </div>
        <aside className="side">
          <Inspector node={sel} problems={problems} editable={editable} onChange={change} onRemove={remove}
                     nodes={nodes} edges={edges} setEdges={setEdges} />
          <VariablesEditor variables={variables} setVariables={setVariables} problems={problems.variables} disabled={!editable} />
        </aside>
      </div>
    </ProblemsCtx.Provider>
  );
}

interface Step { node: string; params: Record<string, unknown>; [k: string]: unknown }

function StepsEditor({ flow, editable, onSaved }: { flow: any; editable: boolean; onSaved(f: any): void }) {
  const [steps, setSteps] = useState<Step[]>(() => (flow.steps || []).map((s: Step) => ({ ...s, params: { ...(s.params || {}) } })));
  const [variables, setVariables] = useState<Variable[]>(() => flow.variables || []);
  const [adding, setAdding] = useState(Object.keys(CATALOG).sort()[0]);
  const [server, setServer] = useState<Problems>(emptyProblems());
  const [error, setError] = useState<unknown>(null);
  const [notice, setNotice] = useState("");
  const ids = steps.map((_, i) => `s${i + 1}`);
  const asNodes = useMemo(() => steps.map((s, i) => ({ id: `s${i + 1}`, type: s.node, config: s.params })), [steps]);
  const problems = mergeProblems(checkDefinition({ nodes: asNodes, connections: [], variables }), server);
  const move = (i: number, d: number) => {
    const j = i + d;
    if (j < 0 || j >= steps.length) return;
    const s = [...steps];
    [s[i], s[j]] = [s[j], s[i]];
    setSteps(s);
    setServer(emptyProblems());
  };
  async function save(publish: boolean) {
    setError(null); setNotice("");
    try {
      const body: any = { steps: steps.map((s) => ({ ...s, params: Object.fromEntries(Object.entries(s.params).filter(([, v]) => v !== undefined)) })) };
      if (variables.length) body.variables = variables;
      let saved = await put(`/flows/${flow.id}`, body);
      if (publish) saved = await post(`/flows/${flow.id}/publish`);
      setServer(emptyProblems());
      setNotice(publish ? `Published as version ${saved.version}.` : "Draft saved.");
      onSaved(saved);
    } catch (e) {
      if (e instanceof ApiError) setServer(placeProblems(e.problems, ids, "steps"));
      setError(e);
    }
  }
  return (
    <div>
      {editable && (
        <div className="actions">
          <button type="button" onClick={() => save(false)}>Save draft</button>
          <button type="button" className="primary" onClick={() => save(true)}>Publish</button>
          <span role="status">{problemCount(problems) ? `${problemCount(problems)} problems` : "no problem found"}</span>
        </div>
      )}
      {notice && <div className="notice" role="status">{notice}</div>}
      <ErrorBox error={error} />
      <ol className="steps">
        {steps.map((s, i) => {
          const np = problems.nodes[ids[i]];
          return (
            <li key={i} className={`card${np ? " fnode-bad" : ""}`} data-step={i}>
              <div className="title-row"><strong>{ids[i]} · {s.node}</strong>
                {editable && <span className="actions">
                  <button type="button" aria-label={`move step ${i + 1} up`} onClick={() => move(i, -1)} disabled={i === 0}>↑</button>
                  <button type="button" aria-label={`move step ${i + 1} down`} onClick={() => move(i, 1)} disabled={i === steps.length - 1}>↓</button>
                  <button type="button" className="danger" onClick={() => setSteps(steps.filter((_, j) => j !== i))}>Remove</button>
                </span>}
              </div>
              {np?.node.map((m, k) => <p key={k} className="field-problem" role="alert">{m}</p>)}
              {CATALOG[s.node] && (
                <ParamsForm node={ids[i]} specs={CATALOG[s.node].params} config={s.params} problems={np?.fields} disabled={!editable}
                            onChange={(name, value) => setSteps(steps.map((x, j) => (j === i ? { ...x, params: { ...x.params, [name]: value } } : x)))} />
              )}
            </li>
          );
        })}
      </ol>
      {editable && (
        <div className="actions">
          <label className="inline">Add step<select value={adding} onChange={(e) => setAdding(e.target.value)}>
            {grouped().map((g) => <optgroup key={g.kind} label={g.label}>{g.types.map((t) => <option key={t}>{t}</option>)}</optgroup>)}
          </select></label>
          <button type="button" onClick={() => setSteps([...steps, { node: adding, params: {} }])}>Add</button>
        </div>
      )}
      <VariablesEditor variables={variables} setVariables={setVariables} problems={problems.variables} disabled={!editable} />
    </div>
  );
}

function Versions({ flow, canEdit, onChanged }: { flow: any; canEdit: boolean; onChanged(f: any): void }) {
  const list = useLoad<{ versions: any[] }>(() => get(`/flows/${flow.id}/versions`), [flow.id, flow.version]);
  const versions = list.data?.versions || [];
  const [v1, setV1] = useState<string>("");
  const [v2, setV2] = useState<string>("");
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    if (versions.length >= 2) {
      setV1(String(versions[versions.length - 2].version));
      setV2(String(versions[versions.length - 1].version));
    }
  }, [versions.length]);
  async function restore(v: number) {
    setError(null);
    try {
      await post(`/flows/${flow.id}/versions/${v}/restore`);
      onChanged(await get(`/flows/${flow.id}`));
    } catch (e) { setError(e); }
  }
  if (!versions.length) return <div className="card"><h2>Versions</h2><p className="hint">None yet: publishing makes version 1.</p></div>;
  return (
    <div className="card versions">
      <h2>Versions</h2>
      <ErrorBox error={error} />
      <div className="table-wrap"><table className="compact">
        <thead><tr><th>version</th><th>boards</th><th>published</th><th></th></tr></thead>
        <tbody>{[...versions].reverse().map((v) => (
          <tr key={v.version} data-version={v.version}>
            <td>v{v.version}{v.restored_from ? ` (restored from v${v.restored_from})` : ""}</td>
            <td>{(v.boards || []).join(", ")}</td><td>{ago(v.created_at)}</td>
            <td>{canEdit && v.version !== flow.version && <button type="button" onClick={() => restore(v.version)}>Restore v{v.version}</button>}</td>
          </tr>))}</tbody>
      </table></div>
      {versions.length >= 2 && (
        <form className="actions" onSubmit={(e) => { e.preventDefault(); navigate(`/flows/${flow.id}/compare?v1=${v1}&v2=${v2}`); }}>
          <label className="inline">Compare<select aria-label="first version" value={v1} onChange={(e) => setV1(e.target.value)}>
            {versions.map((v) => <option key={v.version} value={v.version}>v{v.version}</option>)}</select></label>
          <label className="inline">with<select aria-label="second version" value={v2} onChange={(e) => setV2(e.target.value)}>
            {versions.map((v) => <option key={v.version} value={v.version}>v{v.version}</option>)}</select></label>
          <button type="submit">Compare</button>
        </form>
      )}
    </div>
  );
}

export default function FlowEditor({ id }: { id: string }) {
  const { user } = useSession();
  const flow = useLoad<any>(() => get(`/flows/${encodeURIComponent(id)}`), [id]);
  const [rev, setRev] = useState(0);
  const [error, setError] = useState<unknown>(null);
  const f = flow.data;
  const operator = allowed(user?.role, "operator");
  const editable = operator && f?.status === "draft";

  const saved = (doc: any) => { flow.setData(doc); };
  async function makeDraft() {
    setError(null);
    try {
      const doc = await post(`/flows/${id}/versions/${f.version}/restore`, { publish: false });
      flow.setData(doc);
      setRev((r) => r + 1);
    } catch (e) { setError(e); }
  }

  async function archive() {
    setError(null);
    try {
      flow.setData(await post(`/flows/${id}/archive`));
    } catch (e) { setError(e); }
  }

  if (flow.error) return <ErrorBox error={flow.error} />;
  if (!f) return <p className="loading">Loading…</p>;
  const graph = f.definition !== undefined && f.definition !== null;
  return (
    <section>
      <div className="title-row">
        <h1>{f.name}</h1>
        <div className="actions">
          <Badge status={f.status} />{f.version ? <span>latest v{f.version}</span> : null}
          {operator && f.status === "published" && <>
            <button type="button" onClick={makeDraft}>Edit (new draft from v{f.version})</button>
            <Link className="button primary" to={`/flows/${id}/deploy`}>Deploy</Link>
            <Link className="button" to={`/executions?flow=${id}`}>Execute</Link>
          </>}
          {operator && f.status === "draft" && f.version && <Link className="button" to={`/flows/${id}/deploy`}>Deploy v{f.version}</Link>}
          {operator && f.status !== "archived" && <button type="button" onClick={archive}>Archive</button>}
        </div>
      </div>
      <p className="sub">{f.id}{f.description ? ` · ${f.description}` : ""}</p>
      <ErrorBox error={error} />
      {!editable && operator && f.status !== "draft" && <p className="hint">Published versions do not change: make a draft to edit, then publish it as the next version.</p>}
      <ReactFlowProvider key={`${f.id}-${rev}`}>
        {graph ? <GraphEditor flow={f} editable={editable} onSaved={saved} />
               : <StepsEditor flow={f} editable={editable} onSaved={saved} />}
      </ReactFlowProvider>
      <Versions flow={f} canEdit={operator} onChanged={(doc) => { flow.setData(doc); setRev((r) => r + 1); }} />
    </section>
  );
}
