// A pipeline: its steps, start, the active run's banner with step dots,
// cancel, and the run history with counters.

import { useEffect, useState } from "react";
import { del, get, idempotencyKey, post } from "../api";
import { Can } from "../auth";
import { Badge, ErrorBox, useAction, useLoad } from "../components/common";
import { ago, when } from "../format";
import { Link, navigate } from "../router";

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

export default function Pipeline({ id }: { id: string }) {
  const pipe = useLoad<any>(() => get(`/pipelines/${id}`), [id]);
  const runs = useLoad<{ runs: any[] }>(() => get(`/pipelines/${id}/runs?limit=20`), [id]);
  const [active, setActive] = useState<any>(null);
  const act = useAction();
  const latest = runs.data?.runs?.[0];

  // The running run's state: there is no pipeline stream, so it is read again every 1.5 s while it runs.
  useEffect(() => {
    if (!latest || !ACTIVE.includes(latest.status)) { setActive(null); return; }
    let on = true;
    const read = async () => {
      const r = await get(`/pipelines/${id}/runs/${latest.id}`).catch(() => null);
      if (!on || !r) return;
      setActive(r);
      if (!ACTIVE.includes(r.status)) { runs.reload(); pipe.reload(); }
    };
    read();
    const t = setInterval(read, 1500);
    return () => { on = false; clearInterval(t); };
  }, [latest?.id, latest?.status]);

  async function start() {
    const r = await act.run(() => post(`/pipelines/${id}/runs`, undefined, { "Idempotency-Key": idempotencyKey() }));
    if (r) runs.reload();
  }
  async function cancel(runId: string) {
    if (await act.run(() => post(`/pipelines/${id}/runs/${runId}/cancel`))) runs.reload();
  }
  async function remove() {
    if (await act.run(async () => { await del(`/pipelines/${id}`); return true; })) navigate("/pipelines");
  }

  if (pipe.error) return <ErrorBox error={pipe.error} />;
  const p = pipe.data;
  if (!p) return <p className="loading">Loading…</p>;
  const shown = active && ACTIVE.includes(active.status) ? active : null;
  return (
    <section>
      <div className="title-row"><h1>{p.name}</h1>
        <Can role="operator"><div className="actions">
          <button type="button" className="primary" onClick={start} disabled={act.busy || !!shown}>Start run</button>
          <button type="button" className="danger" onClick={remove} disabled={act.busy || !!shown}>Delete</button>
        </div></Can>
      </div>
      <ErrorBox error={act.error} />
      {shown && (
        <div className="banner" role="status" aria-live="polite" data-run={shown.id}>
          <div className="title-row"><strong>Run {shown.id} <Badge status={shown.status} /> step {Math.min((shown.current_step ?? 0) + 1, shown.steps_snapshot.length)}/{shown.steps_snapshot.length}</strong>
            <Can role="operator"><button type="button" className="danger" onClick={() => cancel(shown.id)}>Cancel run</button></Can></div>
          <StepDots steps={shown.steps_snapshot} />
        </div>
      )}
      <div className="card">
        <h2>Steps</h2>
        <ol>{p.steps.map((s: any, i: number) => (
          <li key={i}><Link to={`/flows/${s.flow_id}`}>{s.flow_name || s.flow_id}</Link> · on failure: {s.on_failure}</li>))}</ol>
        <p className="hint">Targets: {p.targets?.all || !p.targets || Object.keys(p.targets).length === 0 ? "every device" : JSON.stringify(p.targets)}</p>
        <p className="hint">Runs: {p.runs.total} ({p.runs.completed} completed, {p.runs.failed} failed, {p.runs.running} running)</p>
      </div>
      <div className="card">
        <h2>Run history</h2>
        <ErrorBox error={runs.error} />
        {(runs.data?.runs || []).length === 0 && <p className="hint">No run yet.</p>}
        {(runs.data?.runs || []).map((r) => (
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
