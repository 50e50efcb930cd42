// A node's params as a form generated from the catalog: the field for each
// type, its default as the placeholder, its bounds as the hint, and the
// problems that point at it under it.

import type { ParamSpec } from "../catalog";
import { bounds, paramText, parseParam } from "../flowmodel";

export function fieldId(node: string, param: string) {
  return `param-${node}-${param}`.replace(/[^A-Za-z0-9_-]/g, "_");
}

export function ParamField({ node, spec, value, problems, disabled, onChange }: {
  node: string; spec: ParamSpec; value: unknown; problems?: string[]; disabled?: boolean;
  onChange(v: unknown): void;
}) {
  const id = fieldId(node, spec.name);
  const hintId = id + "-hint";
  const bad = !!problems?.length;
  const def = spec.default === undefined || spec.default === null ? "" : paramText(spec.default);
  const hint = [spec.type === "pin" ? `GPIO pin (${spec.use})` : spec.type === "ms" ? "duration: ms, or 2s, 5m" : spec.type,
                bounds(spec), spec.required ? "required" : def !== "" ? `default ${def}` : "", "or $variable"]
    .filter(Boolean).join(" · ");
  let input;
  if (spec.type === "bool") {
    const checked = value === undefined ? spec.default === true : value === true;
    input = (
      <select id={id} name={spec.name} aria-invalid={bad} aria-describedby={hintId} disabled={disabled}
              value={value === undefined ? "" : paramText(value)}
              onChange={(e) => onChange(e.target.value === "" ? undefined : e.target.value === "true" ? true : e.target.value === "false" ? false : e.target.value)}>
        <option value="">default ({checked ? "true" : "false"})</option>
        <option value="true">true</option><option value="false">false</option>
      </select>
    );
  } else if (spec.type === "enum") {
    input = (
      <select id={id} name={spec.name} aria-invalid={bad} aria-describedby={hintId} disabled={disabled}
              value={value === undefined ? "" : paramText(value)} onChange={(e) => onChange(e.target.value || undefined)}>
        <option value="">{spec.required ? "choose…" : `default (${def})`}</option>
        {spec.choices?.map((c) => <option key={c} value={c}>{c}</option>)}
        {typeof value === "string" && value.startsWith("$") && <option value={value}>{value}</option>}
      </select>
    );
  } else {
    const numeric = ["int", "num", "pin"].includes(spec.type);
    input = (
      <input id={id} name={spec.name} aria-invalid={bad} aria-describedby={hintId} disabled={disabled}
             inputMode={numeric ? "decimal" : undefined} placeholder={def}
             value={paramText(value)} onChange={(e) => onChange(parseParam(spec, e.target.value))} />
    );
  }
  return (
    <div className={`field${bad ? " field-bad" : ""}`} data-param={spec.name}>
      <label htmlFor={id}>{spec.name}{spec.required && <span aria-hidden="true"> *</span>}</label>
      {input}
      <span id={hintId} className="hint">{hint}</span>
      {problems?.map((m, i) => <span key={i} className="field-problem" role="alert">{m}</span>)}
    </div>
  );
}

export default function ParamsForm({ node, specs, config, problems, disabled, onChange }: {
  node: string; specs: ParamSpec[]; config: Record<string, unknown>; problems?: Record<string, string[]>;
  disabled?: boolean; onChange(name: string, value: unknown): void;
}) {
  if (!specs.length) return <p className="hint">This node takes no params.</p>;
  return (
    <div className="params">
      {specs.map((s) => (
        <ParamField key={s.name} node={node} spec={s} value={config[s.name]} problems={problems?.[s.name]}
                    disabled={disabled} onChange={(v) => onChange(s.name, v)} />
      ))}
    </div>
  );
}
