// Executions: run a published flow once on devices with overrides (a form
// from its variables and params), and the list of past ones.

import { useEffect, useState } from "react";
import { get, getAll, idempotencyKey, post, query } from "../api";
import { Can } from "../auth";
import { Badge, Empty, ErrorBox, Pager, usePages, useLoad } from "../components/common";
import ParamsForm from "../components/ParamsForm";
import Targets, { NO_TARGETS, targetBody } from "../components/Targets";
import type { Preview, TargetChoice } from "../components/Targets";
import { CATALOG } from "../catalog";
import { ApiError } from "../api";
import { ago } from "../format";
import { Link, navigate } from "../router";

/** The overrides body: only the values set. */
export function overridesBody(vars: Record<string, string>, params: Record<string, Record<string, unknown>>) {
  const out: { vars?: Record<string, string>; params?: Record<string, Record<string, unknown>> } = {};
  const v = Object.fromEntries(Object.entries(vars).filter(([, x]) => x !== ""));
  if (Object.keys(v).length) out.vars = v;
  const p = Object.fromEntries(Object.entries(params)
    .map(([n, c]) => [n, Object.fromEntries(Object.entries(c).filter(([, x]) => x !== undefined))] as const)
    .filter(([, c]) => Object.keys(c).length));
  if (Object.keys(p).length) out.params = p;
  return out;
}

function NewExecution({ flowId }: { flowId: string }) {
  const data = useLoad(async () => {
    const flow = await get(`/flows/${flowId}`);
    const v = flow.version ? await get(`/flows/${flowId}/versions/${flow.version}`) : null;
    return { flow, version: v };
  }, [flowId]);
  const [vars, setVars] = useState<Record<string, string>>({});
  const [params, setParams] = useState<Record<string, Record<string, unknown>>>({});
  const [targets, setTargets] = useState<TargetChoice>(NO_TARGETS);
  const [timeout, setTimeoutS] = useState("60s");
  const [error, setError] = useState<unknown>(null);
  const [problems, setProblems] = useState<Record<string, string[]>>({});
  const [key] = useState(idempotencyKey);
  const [busy, setBusy] = useState(false);
  const [preview, setPreview] = useState<Preview>({ targeted: 0, missing: 0 });
  if (data.error) return <ErrorBox error={data.error} />;
  if (!data.data) return null;
  const { flow, version } = data.data;
  if (!version) return <p>Flow {flow.name} has no published version: publish it first.</p>;
  const body = version.definition || version;
  const nodes: any[] = body.nodes || (body.steps || []).map((s: any, i: number) => ({ id: `s${i + 1}`, type: s.node, config: s.params || {} }));
  const variables: any[] = body.variables || version.variables || [];

  async function submit() {
    setBusy(true); setError(null); setProblems({});
    try {
      const exe = await post("/executions", {
        flow_id: flowId, version: version.version, ...targetBody(targets), overrides: overridesBody(vars, params), timeout,
      }, { "Idempotency-Key": key });
      navigate(`/executions/${exe.id}`);
    } catch (e) {
      if (e instanceof ApiError) {
        const byPointer: Record<string, string[]> = {};
        for (const p of e.problems) (byPointer[p.pointer] ??= []).push(p.message);
        setProblems(byPointer);
      }
      setError(e);
    } finally { setBusy(false); }
  }
  const at = (node: string, param: string) => problems[`/overrides/params/${node}/${param}`];
  return (
    <form className="card" aria-label="execute" onSubmit={(e) => { e.preventDefault(); submit(); }}>
      <h2>Execute {flow.name} v{version.version}</h2>
      <p className="hint">Runs once on each target, with these overrides; nothing is stored on the devices.</p>
      {variables.length > 0 && <fieldset><legend>Variables</legend>
        <div className="settings">{variables.map((v) => (
          <div className="field" key={v.name}>
            <label htmlFor={`var-${v.name}`}>{v.name} ({v.type})</label>
            <input id={`var-${v.name}`} name={`var-${v.name}`} placeholder={String(v.value ?? "")} value={vars[v.name] ?? ""}
                   onChange={(e) => setVars({ ...vars, [v.name]: e.target.value })} aria-invalid={!!problems[`/overrides/vars/${v.name}`]} />
            {problems[`/overrides/vars/${v.name}`]?.map((m, i) => <span key={i} className="field-problem" role="alert">{m}</span>)}
          </div>))}</div>
      </fieldset>}
      <details><summary>Node params</summary>
        {nodes.map((n) => CATALOG[n.type] && (
          <fieldset key={n.id}><legend>{n.id} · {n.type}</legend>
            <ParamsForm node={`exec-${n.id}`} specs={CATALOG[n.type].params.filter((p) => p.type !== "pin")}
                        config={params[n.id] || {}}
                        problems={Object.fromEntries(CATALOG[n.type].params.map((p) => [p.name, at(n.id, p.name)]).filter(([, m]) => m))}
                        onChange={(name, value) => setParams({ ...params, [n.id]: { ...(params[n.id] || {}), [name]: value } })} />
            <p className="hint">Empty: the flow's value ({Object.entries(n.config || {}).map(([k, v]) => `${k} ${JSON.stringify(v)}`).join(", ") || "defaults"}). Pins are never overridden.</p>
          </fieldset>))}
      </details>
      <Targets value={targets} onChange={setTargets} types={version.types || []} onPreview={setPreview} />
      <label>Timeout<input name="timeout" value={timeout} onChange={(e) => setTimeoutS(e.target.value)} /></label>
      <ErrorBox error={error} />
      <button type="submit" className="primary" disabled={busy || preview.targeted === 0 || preview.missing > 0}>Execute</button>
    </form>
  );
}

function FlowPicker() {
  const [flows, setFlows] = useState<any[]>([]);
  const [pick, setPick] = useState("");
  useEffect(() => { getAll("/flows?status=published&limit=200", "flows", 1000).then(setFlows, () => {}); }, []);
  if (!flows.length) return null;
  return (
    <form className="card actions" aria-label="choose a flow to execute" onSubmit={(e) => { e.preventDefault(); if (pick) navigate(`/executions?flow=${pick}`); }}>
      <label className="inline">Execute<select name="flow" value={pick} onChange={(e) => setPick(e.target.value)}>
        <option value="">choose a published flow…</option>
        {flows.map((f) => <option key={f.id} value={f.id}>{f.name}</option>)}</select></label>
      <button type="submit" disabled={!pick}>Next</button>
    </form>
  );
}

export default function Executions({ flow }: { flow: string | null }) {
  const first = "/executions" + query({ flow_id: flow, limit: 50 });
  const paging = usePages(first);
  const list = useLoad<{ executions: any[]; next: string | null }>(() => get(paging.url), [paging.url]);
  return (
    <section>
      <h1>Executions</h1>
      <Can role="operator">{flow ? <NewExecution flowId={flow} /> : <FlowPicker />}</Can>
      <ErrorBox error={list.error} />
      {list.data && list.data.executions.length === 0 && <Empty>No execution yet.</Empty>}
      {list.data && list.data.executions.length > 0 && (
        <div className="table-wrap"><table className="cards">
          <thead><tr><th>Execution</th><th>Status</th><th>Flow</th><th>By</th><th>Created</th></tr></thead>
          <tbody>{list.data.executions.map((x) => (
            <tr key={x.id} data-execution={x.id}>
              <td data-label="Execution"><Link to={`/executions/${x.id}`}>{x.id}</Link></td>
              <td data-label="Status"><Badge status={x.status} /></td>
              <td data-label="Flow"><Link to={`/flows/${x.flow_id}`}>{x.flow_id}</Link> v{x.version}</td>
              <td data-label="By">{x.triggered_by || "—"}</td>
              <td data-label="Created">{ago(x.created_at)}</td>
            </tr>))}</tbody>
        </table></div>
      )}
      <Pager {...paging.pager(list.data?.next)} />
    </section>
  );
}
