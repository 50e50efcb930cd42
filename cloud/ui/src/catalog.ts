// The node catalog (shared_schema/catalog.json, generated from the firmware's
// node table), bundled at build time: docs/decisions.md, "The dashboard".

import raw from "../../../shared_schema/catalog.json";

export interface ParamSpec {
  name: string;
  type: "int" | "num" | "bool" | "str" | "enum" | "pin" | "topic" | "ms" | "any";
  required: boolean;
  default?: unknown;
  min?: number;
  max?: number;
  choices?: string[];
  use?: string;
}

export interface NodeSpec {
  kind: "source" | "logic" | "sink" | "maint";
  doc: string;
  ports: number;
  trigger: string | null;
  emits?: string[];
  params: ParamSpec[];
}

export const CATALOG: Record<string, NodeSpec> = (raw as any).nodes;

export const GROUPS: { kind: NodeSpec["kind"]; label: string }[] = [
  { kind: "source", label: "Sensors" },
  { kind: "logic", label: "Logic" },
  { kind: "sink", label: "Outputs" },
  { kind: "maint", label: "Maintenance" },
];

export function grouped(catalog: Record<string, NodeSpec> = CATALOG) {
  return GROUPS.map((g) => ({
    ...g,
    types: Object.keys(catalog).filter((t) => catalog[t].kind === g.kind).sort(),
  }));
}
