// The flow being edited, as pure data and functions: problems checked from
// the catalog as you type, the API's JSON pointers mapped to nodes and
// fields, and the body sent back (positions as x/y).

import type { Problem } from "./api";
import type { NodeSpec, ParamSpec } from "./catalog";
import { CATALOG } from "./catalog";

export interface FlowNode {
  id: string;
  type: string;
  name?: string | null;
  config: Record<string, unknown>;
  x?: number | null;
  y?: number | null;
  [extra: string]: unknown;
}

export interface Connection { source: string; target: string; port?: number }
export interface Variable { name: string; type?: string; value: unknown }

export interface Definition { nodes: FlowNode[]; connections: Connection[]; variables: Variable[] }

/** Where problems point: per node, the node itself and each of its fields. */
export interface NodeProblems { node: string[]; fields: Record<string, string[]> }
export interface Problems {
  nodes: Record<string, NodeProblems>;
  connections: Record<number, string[]>;
  variables: Record<number, string[]>;
  other: string[];
}

export function emptyProblems(): Problems {
  return { nodes: {}, connections: {}, variables: {}, other: [] };
}

function addNode(p: Problems, id: string, field: string | null, msg: string) {
  const n = (p.nodes[id] ??= { node: [], fields: {} });
  if (field) (n.fields[field] ??= []).push(msg);
  else n.node.push(msg);
}

/** The API's problems (pointers into the body just sent) placed on the
 * nodes, fields, connections and variables they name. `ids` is the node
 * order of that body (graph nodes or steps). */
export function placeProblems(problems: Problem[], ids: string[], form: "graph" | "steps" = "graph"): Problems {
  const out = emptyProblems();
  for (const pr of problems) {
    const parts = pr.pointer.split("/").slice(1).map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
    const base = form === "graph" ? (parts[0] === "definition" ? parts.slice(1) : parts) : parts;
    const [section, index, key, field] = base;
    const i = Number(index);
    const nodeSection = form === "graph" ? "nodes" : "steps";
    if (section === nodeSection && Number.isInteger(i) && ids[i] !== undefined) {
      const isParam = (key === "config" || key === "params") && field !== undefined;
      addNode(out, ids[i], isParam ? field : key && key !== "config" && key !== "params" ? key : null, pr.message);
    } else if (section === "connections" && Number.isInteger(i)) {
      (out.connections[i] ??= []).push(pr.message);
    } else if (section === "variables" && Number.isInteger(i)) {
      (out.variables[i] ??= []).push(pr.message);
    } else {
      out.other.push(`${pr.pointer || "(flow)"}: ${pr.message}`);
    }
  }
  return out;
}

export function isVarRef(v: unknown): boolean {
  return typeof v === "string" && /^\$[A-Za-z_][A-Za-z0-9_]*$/.test(v);
}

const DURATION = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/;
const UNIT: Record<string, number> = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000 };

export function durationMs(v: unknown): number | null {
  if (typeof v === "number") return v;
  if (typeof v !== "string") return null;
  const m = DURATION.exec(v);
  return m ? Math.round(parseFloat(m[1]) * UNIT[m[2] || "ms"]) : null;
}

/** What a param field's text becomes in the body: numbers as numbers,
 * `$var` references and durations ("2s") as written, "" as unset. */
export function parseParam(spec: ParamSpec, text: string): unknown {
  const t = text.trim();
  if (t === "") return undefined;
  if (isVarRef(t)) return t;
  switch (spec.type) {
    case "int": case "num": case "pin": {
      const n = Number(t);
      return Number.isFinite(n) ? n : t;
    }
    case "ms": {
      const n = Number(t);
      return Number.isFinite(n) ? n : t;
    }
    case "any":
      try { return JSON.parse(t); } catch { return t; }
    default:
      return text;
  }
}

export function paramText(v: unknown): string {
  if (v === undefined || v === null) return "";
  return typeof v === "string" ? v : JSON.stringify(v);
}

export function bounds(spec: ParamSpec): string {
  const what = spec.type === "str" || spec.type === "topic" ? " characters" : spec.type === "ms" ? " ms" : "";
  if (spec.min !== undefined && spec.max !== undefined) return `${spec.min} to ${spec.max}${what}`;
  if (spec.min !== undefined) return `at least ${spec.min}${what}`;
  if (spec.max !== undefined) return `at most ${spec.max}${what}`;
  return "";
}

/** The problems a param's value has that the catalog alone can tell. */
export function checkParam(spec: ParamSpec, value: unknown, vars: Variable[]): string | null {
  if (value === undefined || value === null || value === "") {
    return spec.required ? `required: ${spec.type === "pin" ? "the GPIO pin number" : spec.name}` : null;
  }
  if (isVarRef(value)) {
    const name = (value as string).slice(1);
    return vars.some((v) => v.name === name) ? null : `variable ${name} is not declared`;
  }
  const outside = (n: number) => (spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max);
  switch (spec.type) {
    case "int": case "pin":
      if (typeof value !== "number" || !Number.isInteger(value)) return "a whole number";
      return outside(value) ? `must be ${bounds(spec)}` : null;
    case "num":
      if (typeof value !== "number") return "a number";
      return outside(value) ? `must be ${bounds(spec)}` : null;
    case "ms": {
      const ms = durationMs(value);
      if (ms === null) return 'a duration: milliseconds, or "500ms", "2s", "5m", "1h"';
      return outside(ms) ? `must be ${bounds(spec)}` : null;
    }
    case "bool":
      return typeof value === "boolean" ? null : "true or false";
    case "enum":
      return spec.choices?.includes(value as string) ? null : `one of ${spec.choices?.join(", ")}`;
    case "str": case "topic": {
      if (typeof value !== "string") return "text";
      if (outside(value.length)) return `must be ${bounds(spec)}`;
      if (spec.type === "topic" && (/[+#]/.test(value) || value.startsWith("$") || value.split("/").some((l) => !l)))
        return "a topic without +, #, empty levels or a leading $";
      return null;
    }
    default:
      return null;
  }
}

/** Every problem the catalog can tell about the definition, as you edit. */
export function checkDefinition(def: Definition, catalog: Record<string, NodeSpec> = CATALOG): Problems {
  const out = emptyProblems();
  const ids = new Set<string>();
  const incoming = new Set(def.connections.map((c) => c.target));
  for (const node of def.nodes) {
    if (ids.has(node.id)) addNode(out, node.id, null, `duplicate node id ${node.id}`);
    ids.add(node.id);
    const spec = catalog[node.type];
    if (!spec) { addNode(out, node.id, null, `unknown node type ${node.type}`); continue; }
    for (const p of spec.params) {
      const msg = checkParam(p, node.config?.[p.name], def.variables);
      if (msg) addNode(out, node.id, p.name, msg);
    }
    for (const key of Object.keys(node.config || {})) {
      if (!spec.params.some((p) => p.name === key)) addNode(out, node.id, key, `${node.type} has no param ${key}`);
    }
    if (spec.kind === "source" && incoming.has(node.id)) addNode(out, node.id, null, "a source takes no input");
  }
  def.connections.forEach((c, i) => {
    if (!ids.has(c.source) || !ids.has(c.target)) (out.connections[i] ??= []).push("connects a node that is not there");
  });
  def.variables.forEach((v, i) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,31}$/.test(v.name || "")) (out.variables[i] ??= []).push("a name: letters, digits, _ (not first), at most 32");
  });
  return out;
}

/** Both sets of problems; where `b` (the API's) has something to say about
 * a field, its words replace `a`'s (the catalog check's) for that field. */
export function mergeProblems(a: Problems, b: Problems): Problems {
  const out = emptyProblems();
  for (const p of [a, b]) {
    for (const [id, n] of Object.entries(p.nodes)) {
      const t = (out.nodes[id] ??= { node: [], fields: {} });
      for (const m of n.node) if (!t.node.includes(m)) t.node.push(m);
      for (const [f, ms] of Object.entries(n.fields)) {
        if (p === b && ms.length) t.fields[f] = [];
        const tf = (t.fields[f] ??= []);
        for (const m of ms) if (!tf.includes(m)) tf.push(m);
      }
    }
    for (const [i, ms] of Object.entries(p.connections)) (out.connections[+i] ??= []).push(...ms);
    for (const [i, ms] of Object.entries(p.variables)) (out.variables[+i] ??= []).push(...ms);
    out.other.push(...p.other);
  }
  return out;
}

export function problemCount(p: Problems): number {
  let n = p.other.length;
  for (const x of Object.values(p.nodes)) n += x.node.length + Object.values(x.fields).reduce((a, f) => a + f.length, 0);
  for (const x of Object.values(p.connections)) n += x.length;
  for (const x of Object.values(p.variables)) n += x.length;
  return n;
}

/** A fresh node id not yet used: n1, n2, ... */
export function newNodeId(nodes: { id: string }[], prefix = "n"): string {
  const used = new Set(nodes.map((n) => n.id));
  for (let i = 1; ; i++) if (!used.has(prefix + i)) return prefix + i;
}
