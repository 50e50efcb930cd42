// A pipeline: its steps (edited in the form that made it), start, the
// active run's banner with step dots, cancel, and the run history with counters.

import { useEffect, useState } from "react";
import { del, get, idempotencyKey, post } from "../api";
import { Can } from "../auth";
import { Badge, ErrorBox, LiveDot, useAction, useLoad } from "../components/common";
import { ago, when } from "../format";
import { Link, navigate } from "../router";
import { openStream } from "../sse";
import { selectorText } from "./Device";
import { PipelineForm } from "./Pipelines";

const ACTIVE = ["pending", "running"];

export function StepDots({ steps }: { steps: any[] }) {
  return (
    <ol className="dots" aria-label="steps">
      {steps.map((s, i) => (
        <li key={i} className={`dot dot-${s.status}`} data-status={s.status} title={`${i + 1}. ${s.flow_name || s.flow_id}: ${s.status}${s.error ? " — " + s.error : ""}`}>
          <span className="dot-mark" aria-hidden="true" />
          <span className="dot-label">{i + 1}. {s.flow_name || s.flow_id} <em>{s.status}</em></span>
        </li>
      ))}
    </ol>
  );
}

/** Puts a run from the stream into the history (newest first), replacing its older copy. */
export function upsertRun(runs: any[], run: any): any[] {
  const rest = runs.filter((r) => r.id !== run.id);
  return [run, ...rest].sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0));
}

export default function Pipeline({ id }: { id: string }) {
  const pipe = useLoad<any>(() => get(`/pipelines/${id}`), [id]);
  const [runs, setRuns] = useState<any[]>([]);
  const [runsError, setRunsError] = useState<unknown>(null);
  const [live, setLive] = useState("connecting");
  const [editing, setEditing] = useState(false);
  const [deleted, setDeleted] = useState(false);
  const act = useAction();

  // Live from the pipeline's stream (metadata: the pipeline and its latest
  // runs; `run` whenever one starts, moves a step, or ends). A server
  // without it: read the runs again every 1.5 s while one is active.
  useEffect(() => {
    let poll: ReturnType<typeof setInterval> | null = null;
    const readRuns = () => get(`/pipelines/${id}/runs?limit=20`).then((r) => { setRuns(r.runs); setRunsError(null); return r.runs; }, setRunsError);
    const s = openStream(`/pipelines/${id}/stream`, {
      onState: (st) => {
        setLive(st);
        if (st === "unavailable" && !poll) {
          readRuns();
          poll = setInterval(readRuns, 1500);
        }
      },
      onEvent: (ev) => {
        if (ev.event === "metadata" || ev.event === "sync") {
          pipe.setData(ev.data.pipeline);
          setRuns(ev.data.runs || []);
        } else if (ev.event === "run") {
          pipe.setData(ev.data.pipeline);
          setRuns((rs) => upsertRun(rs, ev.data.run));
        } else if (ev.event === "pipeline") { // edited elsewhere (another tab, the CLI)
          pipe.setData(ev.data.pipeline);
        } else if (ev.event === "deleted") {
          setDeleted(true);
        }
      },
      finalEvent: "deleted",
    });
    return () => { s.close(); if (poll) clearInterval(poll); };
  }, [id]);

  async function start() {
    const r: any = await act.run(() => post(`/pipelines/${id}/runs`, undefined, { "Idempotency-Key": idempotencyKey() }));
    if (r) setRuns((rs) => upsertRun(rs, r));
  }
  async function cancel(runId: string) {
    const r: any = await act.run(() => post(`/pipelines/${id}/runs/${runId}/cancel`));
    if (r && r.id) setRuns((rs) => upsertRun(rs, r));
  }
  async function advance(runId: string, success: boolean) {
    const r: any = await act.run(() => post(`/pipelines/${id}/runs/${runId}/advance`, { success }));
    if (r && r.id) setRuns((rs) => upsertRun(rs, r));
  }
  async function remove() {
    if (await act.run(async () => { await del(`/pipelines/${id}`); return true; })) navigate("/pipelines");
  }

  if (pipe.error) return <ErrorBox error={pipe.error} />;
  if (deleted) return <p className="notice" role="status">This pipeline was deleted. <Link to="/pipelines">All pipelines</Link></p>;
  const p = pipe.data;
  if (!p) return <p className="loading">Loading…</p>;
  const shown = runs.find((r) => ACTIVE.includes(r.status)) || null;
  return (
    <section>
      <div className="title-row"><h1>{p.name}</h1><LiveDot state={live} />
        <Can role="operator"><div className="actions">
          <button type="button" className="primary" onClick={start} disabled={act.busy || !!shown || editing}>Start run</button>
          <button type="button" onClick={() => setEditing(true)} disabled={act.busy || !!shown || editing}
                  title={shown ? "a run in progress follows the steps as they are: edit once it ends" : undefined}>Edit</button>
          <button type="button" className="danger" onClick={remove} disabled={act.busy || !!shown}>Delete</button>
        </div></Can>
      </div>
      <ErrorBox error={act.error} />
      {shown && (
        <div className="banner" role="status" aria-live="polite" data-run={shown.id}>
          <div className="title-row"><strong>Run {shown.id} <Badge status={shown.status} /> step {Math.min((shown.current_step ?? 0) + 1, shown.steps_snapshot.length)}/{shown.steps_snapshot.length}</strong>
            <Can role="operator"><button type="button" className="danger" onClick={() => cancel(shown.id)}>Cancel run</button></Can></div>
          <StepDots steps={shown.steps_snapshot} />
          {shown.status === "running" && shown.steps_snapshot[shown.current_step]?.manual && (
            <Can role="operator"><div className="actions">
              <span>Step {shown.current_step + 1} waits on a person:</span>
              <button type="button" onClick={() => advance(shown.id, true)}>Step done</button>
              <button type="button" className="danger" onClick={() => advance(shown.id, false)}>Step failed</button>
            </div></Can>
          )}
        </div>
      )}
      {editing && !shown && (
        <div className="card">
          <h2>Edit pipeline</h2>
          <PipelineForm pipeline={p} onCancel={() => setEditing(false)}
                        onSaved={(saved) => { pipe.setData(saved); setEditing(false); }} />
        </div>
      )}
      <div className="card">
        <h2>Steps</h2>
        {p.description && <p>{p.description}</p>}
        <ol>{p.steps.map((s: any, i: number) => (
          <li key={i}><Link to={`/flows/${s.flow_id}`}>{s.flow_name || s.flow_id}</Link> · on failure: {s.on_failure}{s.manual ? " · waits on a person" : ""}</li>))}</ol>
        <p className="hint">Targets: {selectorText(p.targets)}</p>
        <p className="hint">Runs: {p.runs.total} ({p.runs.completed} completed, {p.runs.failed} failed, {p.runs.running} running)</p>
      </div>
      <div className="card">
        <h2>Run history</h2>
        <ErrorBox error={runsError} />
        {runs.length === 0 && <p className="hint">No run yet.</p>}
        {runs.map((r) => (
          <details key={r.id} className="run" data-run={r.id}>
            <summary><Badge status={r.status} /> {r.id} · {when(r.created_at)} · by {r.triggered_by || "—"}{r.completed_at ? ` · ended ${ago(r.completed_at)}` : ""}</summary>
            <StepDots steps={r.steps_snapshot || []} />
            <ul>{(r.steps_snapshot || []).map((s: any, i: number) => (
              <li key={i}>{i + 1}. {s.flow_name || s.flow_id}: <Badge status={s.status} />
                {s.execution_id && <Link to={`/executions/${s.execution_id}`}>{s.execution_id}</Link>} {s.error && <span className="bad">{s.error}</span>}</li>))}</ul>
          </details>
        ))}
      </div>
    </section>
  );
}
