// Pipelines: two or more flows run in order on the same devices; the list
// with run counters, and the form that makes a new one or edits one (steps
// with stop/continue, targets).

import { useEffect, useState } from "react";
import { get, getAll, patch, post } from "../api";
import { Can } from "../auth";
import { Empty, ErrorBox, Pager, usePages, useAction, useLoad } from "../components/common";
import Targets, { NO_TARGETS, targetBody } from "../components/Targets";
import type { TargetChoice } from "../components/Targets";
import { ago } from "../format";
import { Link, navigate } from "../router";

export interface StepIn { flow_id: string; on_failure: "stop" | "continue"; manual?: boolean; flow_name?: string }

export function StepsList({ steps, setSteps, flows }: { steps: StepIn[]; setSteps(s: StepIn[]): void; flows: any[] }) {
  const set = (i: number, patch: Partial<StepIn>) => setSteps(steps.map((s, j) => (j === i ? { ...s, ...patch } : s)));
  const move = (i: number, d: number) => {
    const j = i + d;
    if (j < 0 || j >= steps.length) return;
    const s = [...steps];
    [s[i], s[j]] = [s[j], s[i]];
    setSteps(s);
  };
  return (
    <ol className="pipeline-steps">
      {steps.map((s, i) => (
        <li key={i} className="actions" data-step={i}>
          <select aria-label={`step ${i + 1} flow`} name={`step-${i}-flow`} value={s.flow_id} onChange={(e) => set(i, { flow_id: e.target.value })}>
            <option value="">choose a published flow…</option>
            {s.flow_id && !flows.some((f) => f.id === s.flow_id) && <option value={s.flow_id}>{s.flow_name || s.flow_id}</option>}
            {flows.map((f) => <option key={f.id} value={f.id}>{f.name}</option>)}
          </select>
          <select aria-label={`step ${i + 1} on failure`} name={`step-${i}-on-failure`} value={s.on_failure}
                  onChange={(e) => set(i, { on_failure: e.target.value as StepIn["on_failure"] })}>
            <option value="stop">on failure: stop</option><option value="continue">on failure: continue</option>
          </select>
          <label className="check"><input type="checkbox" name={`step-${i}-manual`} checked={!!s.manual}
                                          onChange={(e) => set(i, { manual: e.target.checked })} />waits on a person</label>
          <button type="button" aria-label={`move step ${i + 1} up`} disabled={i === 0} onClick={() => move(i, -1)}>↑</button>
          <button type="button" aria-label={`move step ${i + 1} down`} disabled={i === steps.length - 1} onClick={() => move(i, 1)}>↓</button>
          <button type="button" aria-label={`remove step ${i + 1}`} disabled={steps.length <= 2} onClick={() => setSteps(steps.filter((_, j) => j !== i))}>✕</button>
        </li>
      ))}
    </ol>
  );
}

/** The form's target choice for a pipeline's stored targets (the reverse of targetBody). */
export function choiceOf(t: any): TargetChoice {
  if (!t || t.all) return { ...NO_TARGETS, mode: "all" };
  if (t.target_devices?.length) return { ...NO_TARGETS, mode: "devices", devices: [...t.target_devices] };
  return { ...NO_TARGETS, mode: "tags", tags: (t.target_tags || []).join(", "), environment: t.environment || "" };
}

const NEW_STEPS: StepIn[] = [{ flow_id: "", on_failure: "stop" }, { flow_id: "", on_failure: "stop" }];

/** A new pipeline (POST) or, given `pipeline`, the same form prefilled to edit it (PATCH). */
export function PipelineForm({ pipeline, onSaved, onCancel }: { pipeline?: any; onSaved(p: any): void; onCancel?(): void }) {
  const [flows, setFlows] = useState<any[]>([]);
  const [name, setName] = useState(pipeline?.name ?? "");
  const [description, setDescription] = useState(pipeline?.description ?? "");
  const [steps, setSteps] = useState<StepIn[]>(pipeline
    ? pipeline.steps.map((s: any) => ({ flow_id: s.flow_id, flow_name: s.flow_name, on_failure: s.on_failure, manual: !!s.manual }))
    : NEW_STEPS);
  const [targets, setTargets] = useState<TargetChoice>(choiceOf(pipeline?.targets));
  const act = useAction();
  useEffect(() => { getAll("/flows?status=published&limit=200", "flows", 1000).then(setFlows, () => {}); }, []);
  async function save() {
    const body = { name: name.trim(), description: description.trim() || null, targets: targetBody(targets),
                   steps: steps.map(({ flow_id, on_failure, manual }) => ({ flow_id, on_failure, manual: !!manual })) };
    const p = await act.run(() => (pipeline ? patch(`/pipelines/${pipeline.id}`, body) : post("/pipelines", body)));
    if (p) onSaved(p);
  }
  const verb = pipeline ? "edit" : "new";
  return (
    <form aria-label={`${verb} pipeline`} onSubmit={(e) => { e.preventDefault(); save(); }}>
      <label>Name<input name="pipeline-name" required value={name} onChange={(e) => setName(e.target.value)} /></label>
      <label>Description<input name="pipeline-description" value={description} onChange={(e) => setDescription(e.target.value)} /></label>
      <h3>Steps, in order</h3>
      <StepsList steps={steps} setSteps={setSteps} flows={flows} />
      <button type="button" onClick={() => setSteps([...steps, { flow_id: "", on_failure: "stop" }])}>Add step</button>
      <Targets value={targets} onChange={setTargets} types={[]} />
      <ErrorBox error={act.error} />
      <div className="actions">
        <button type="submit" className="primary" disabled={act.busy}>{pipeline ? "Save changes" : "Create pipeline"}</button>
        {onCancel && <button type="button" onClick={onCancel}>Cancel</button>}
      </div>
    </form>
  );
}

function NewPipeline() {
  return (
    <details className="card">
      <summary>New pipeline</summary>
      <PipelineForm onSaved={(p) => navigate(`/pipelines/${p.id}`)} />
    </details>
  );
}

export default function Pipelines() {
  const first = "/pipelines?limit=50";
  const paging = usePages(first);
  const list = useLoad<{ pipelines: any[]; next: string | null }>(() => get(paging.url), [paging.url]);
  return (
    <section>
      <h1>Pipelines</h1>
      <Can role="operator"><NewPipeline /></Can>
      <ErrorBox error={list.error} />
      {list.data && list.data.pipelines.length === 0 && <Empty>No pipeline yet.</Empty>}
      {list.data && list.data.pipelines.length > 0 && (
        <div className="table-wrap"><table className="cards">
          <thead><tr><th>Pipeline</th><th>Steps</th><th>Runs</th><th>Last used</th></tr></thead>
          <tbody>{list.data.pipelines.map((p) => (
            <tr key={p.id} data-pipeline={p.id}>
              <td data-label="Pipeline"><Link to={`/pipelines/${p.id}`}>{p.name}</Link><div className="sub">{p.id}</div></td>
              <td data-label="Steps">{p.steps.length}</td>
              <td data-label="Runs">{p.runs.total} ({p.runs.completed} completed, {p.runs.failed} failed{p.runs.running ? `, ${p.runs.running} running` : ""})</td>
              <td data-label="Last used">{ago(p.last_used_at)}</td>
            </tr>))}</tbody>
        </table></div>
      )}
      <Pager {...paging.pager(list.data?.next)} />
    </section>
  );
}
