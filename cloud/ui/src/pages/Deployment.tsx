// A deployment, live from its stream: phase, batch n/N, countdowns for the
// delay and each trial, per-device acks as they arrive, the events, and the
// failing device's own error as the reason; the rehearsal on simulated twins
// and what it found; pause, resume, rollback, cancel.

import { useEffect, useRef, useState } from "react";
import { get, getAll, post } from "../api";
import { Can } from "../auth";
import { Badge, ErrorBox, LiveDot, useAction } from "../components/common";
import RehearsalPanel from "../components/Rehearsal";
import { duration, when } from "../format";
import { Link } from "../router";
import { openStream } from "../sse";
import { batchCount } from "../strategies";

export interface Target { device_id: string; status: string; batch: number; board?: string; step?: string | null;
  ack?: string | null; seq?: number | null; reason?: string | null; updated_at?: string | null }

/** Applies a stream `update` to the deployment document. */
export function applyUpdate(doc: any, upd: any): any {
  const next = { ...doc, ...(upd.deployment || {}) };
  if (upd.targets?.length && doc.targets) {
    const byId = new Map<string, Target>(doc.targets.map((t: Target) => [t.device_id, t]));
    for (const t of upd.targets) byId.set(t.device_id, { ...(byId.get(t.device_id) || {}), ...t });
    next.targets = doc.targets.map((t: Target) => byId.get(t.device_id));
  }
  return next;
}

/** An event's detail as one line (it may be text or an object). */
export function eventDetail(d: unknown): string {
  if (d === null || d === undefined || d === "") return "";
  if (typeof d === "string") return d;
  if (typeof d === "object") return Object.entries(d as Record<string, unknown>)
    .map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`).join(", ");
  return String(d);
}

const ACTIONS: { verb: string; label: string; when: string[]; danger?: boolean }[] = [
  { verb: "start", label: "Start", when: ["pending"] },
  { verb: "pause", label: "Pause", when: ["running"] },
  { verb: "resume", label: "Resume", when: ["paused"] },
  { verb: "rollback", label: "Roll back", when: ["running", "paused", "completed", "failed"], danger: true },
  { verb: "cancel", label: "Cancel", when: ["pending", "running", "paused"], danger: true },
];

/** "on trial: 2 of 3 healthy runs, 18 s left": where a device on trial stands
 * against the health rule (the same words as `fleetflow deploy` prints). */
export function trialText(health: { runs?: number; seconds?: number }, ok: number | null, failed: number, onTrialS: number): string {
  const need = health.runs ?? 3;
  const seconds = health.seconds ?? 30;
  const left = Math.min(seconds, Math.max(0, seconds - onTrialS));
  let text = "on trial";
  if (ok !== null) {
    text += `: ${Math.min(ok, need)} of ${need} healthy run${need === 1 ? "" : "s"}`;
    if (failed) text += `, ${failed} failed`;
  }
  text += left > 0 ? `, ${Math.ceil(left)} s left` : ", time is up";
  if (left <= 0 && ok !== null && ok + failed < need) {
    const more = need - ok - failed;
    text += `, waiting for ${more} more run${more === 1 ? "" : "s"}`;
  }
  return text;
}

/** The runs a device made of this deployment's version since it applied it: [healthy, failed]. */
export function trialRuns(runs: any[], flowId: string, version: number, sinceMs: number): [number, number] {
  const mine = runs.filter((r) => r.flow === flowId && r.ver === version && !r.exec &&
    Date.parse(r.received_at || r.at || "") >= sinceMs - 2000);
  const ok = mine.filter((r) => r.status === "completed").length;
  return [ok, mine.length - ok];
}

const TRIAL_DEVICES_MAX = 8; // devices whose runs are read while on trial

export default function Deployment({ id }: { id: string }) {
  const [doc, setDoc] = useState<any>(null);
  const [events, setEvents] = useState<any[]>([]);
  const [live, setLive] = useState("connecting");
  const [error, setError] = useState<unknown>(null);
  const [now, setNow] = useState(Date.now());
  const [devices, setDevices] = useState<Record<string, any>>({});
  const phaseSeen = useRef<{ phase: string; at: number } | null>(null);
  const act = useAction();

  const loadEvents = () => getAll(`/deployments/${id}/events`, "events", 2000).then(setEvents, () => {});

  useEffect(() => {
    const s = openStream(`/deployments/${id}/stream`, {
      onState: (st) => {
        setLive(st);
        if (st === "unavailable") get(`/deployments/${id}`).then(setDoc, setError);
      },
      finalEvent: "complete",
      onEvent: (ev) => {
        if (ev.event === "metadata" || ev.event === "sync") { setDoc(ev.data); loadEvents(); }
        else if (ev.event === "update") {
          setDoc((d: any) => (d ? applyUpdate(d, ev.data) : d));
          if (ev.data.deployment?.phase) phaseSeen.current = { phase: ev.data.deployment.phase, at: Date.now() };
          loadEvents();
        } else if (ev.event === "complete") {
          get(`/deployments/${id}`).then(setDoc, setError);
          loadEvents();
        }
      },
    });
    const tick = setInterval(() => setNow(Date.now()), 1000);
    return () => { s.close(); clearInterval(tick); };
  }, [id]);

  // Devices on trial: their run records of the new version say how far the
  // trial got (the stream carries acks, not runs), read every 2 s meanwhile.
  const onTrial = (doc?.targets || []).filter((t: Target) => t.status === "deploying" && t.ack === "applied")
    .map((t: Target) => t.device_id).slice(0, TRIAL_DEVICES_MAX).join(",");
  useEffect(() => {
    if (!onTrial || !doc) return;
    const ids = onTrial.split(",");
    let on = true;
    const read = () => Promise.all(ids.map((d: string) => get(`/devices/${encodeURIComponent(d)}/runs?limit=50`).then((r) => [d, r.runs] as const, () => null)))
      .then((got) => { if (on) setDevices((cur) => ({ ...cur, ...Object.fromEntries(got.filter(Boolean) as [string, any[]][]) })); });
    read();
    const t = setInterval(read, 2000);
    return () => { on = false; clearInterval(t); };
  }, [onTrial]);

  async function command(verb: string) {
    const out = await act.run(() => post(`/deployments/${id}/${verb}`, verb === "rollback" ? { reason: "rolled back from the dashboard" } : undefined));
    if (out) setDoc((d: any) => ({ ...d, ...out, targets: out.targets ?? d?.targets }));
  }

  if (!doc) return <section><h1>{id}</h1><LiveDot state={live} /><ErrorBox error={error} /></section>;
  const settings = doc.settings || {};
  const health = settings.health || { runs: 3, seconds: 30 };
  const n = batchCount(doc.strategy, settings, doc.total_targets);
  const counts = doc.counts || {};
  const delayS = doc.strategy === "rolling" ? settings.batch_delay : doc.strategy === "canary" ? settings.canary_delay : doc.strategy === "blue_green" ? settings.switch_delay : null;
  let countdown: string | null = null;
  if ((doc.phase === "delay" || doc.phase === "switch_wait") && doc.status === "running" && delayS) {
    // The wait started when the batch's last target settled (or when this page saw it start).
    const batchTs = (doc.targets || []).filter((t: Target) => t.batch === doc.batch && t.updated_at).map((t: Target) => Date.parse(t.updated_at!));
    const since = phaseSeen.current && phaseSeen.current.phase === doc.phase ? phaseSeen.current.at : batchTs.length ? Math.max(...batchTs) : now;
    countdown = `${doc.phase === "delay" ? "next batch" : "switch"} in ${duration(delayS - (now - since) / 1000)}`;
  }
  // No Start while the twins run (it starts by itself), no Roll back after a failed rehearsal (nothing was sent).
  const actions = ACTIONS.filter((a) => a.when.includes(doc.status)
    && !(a.verb === "start" && doc.rehearsal?.status === "running")
    && !(a.verb === "rollback" && doc.rehearsal?.status === "failed"));
  const total = Math.max(doc.total_targets, 1);
  const pct = (k: number) => `${(100 * k) / total}%`;
  return (
    <section>
      <div className="title-row">
        <h1>Deployment {doc.id}</h1>
        <LiveDot state={live} />
      </div>
      <div className="grid">
        <div className="card">
          <dl>
            <dt>status</dt><dd><Badge status={doc.status} /></dd>
            <dt>flow</dt><dd><Link to={`/flows/${doc.flow_id}`}>{doc.flow_id}</Link> v{doc.version}</dd>
            <dt>strategy</dt><dd>{doc.strategy.replace(/_/g, " ")}</dd>
            <dt>phase</dt><dd data-testid="phase">{doc.phase || "—"}{n > 0 && doc.phase !== "done" ? ` · batch ${Math.min(doc.batch + 1, n)}/${n}` : ""}</dd>
            {doc.rate_per_minute != null && <><dt>rate</dt><dd data-testid="rate">{doc.rate_per_minute} a minute</dd></>}
            {countdown && <><dt>waiting</dt><dd data-testid="countdown">{countdown}</dd></>}
            <dt>started</dt><dd>{when(doc.started_at)}</dd>
            {doc.finished_at && <><dt>finished</dt><dd>{when(doc.finished_at)}</dd></>}
            {doc.reason && <><dt>reason</dt><dd className="bad" data-testid="reason">{doc.reason}</dd></>}
          </dl>
        </div>
        <div className="card">
          <h2 data-testid="progress">{counts.success ?? doc.completed_targets}/{doc.total_targets} updated{(counts.failed ?? doc.failed_targets) ? `, ${counts.failed ?? doc.failed_targets} failed` : ""}</h2>
          <div className="bar" aria-hidden="true">
            <span className="b-ok" style={{ width: pct(counts.success || 0) }} />
            <span className="b-bad" style={{ width: pct((counts.failed || 0) + (counts.rolled_back || 0)) }} />
            <span className="b-run" style={{ width: pct(counts.deploying || 0) }} />
          </div>
          <p className="hint">{Object.entries(counts).filter(([, v]) => v).map(([k, v]) => `${k.replace("_", " ")} ${v}`).join(" · ")}</p>
          <p className="hint">Health rule: {health.runs} runs, {health.seconds} s, at most {Math.round((health.max_error_rate ?? 0.25) * 100)}% failing.</p>
          <Can role="operator">
            <div className="actions">
              {actions.map((a) => (
                <button key={a.verb} type="button" className={a.danger ? "danger" : ""} disabled={act.busy} onClick={() => command(a.verb)}>{a.label}</button>
              ))}
            </div>
            <ErrorBox error={act.error} />
          </Can>
        </div>
      </div>
      <RehearsalPanel rehearsal={doc.rehearsal} />
      <div className="card">
        <h2>Devices</h2>
        {doc.targets ? (
          <div className="table-wrap"><table className="cards" aria-label="targets">
            <thead><tr><th>Device</th><th>Status</th><th>Batch</th><th>Step</th><th>Ack</th><th>Reason</th></tr></thead>
            <tbody>{doc.targets.map((t: Target) => {
              let trial: string | null = null;
              if (t.status === "deploying" && t.ack === "applied") {
                const since = t.updated_at ? Date.parse(t.updated_at) : now;
                const runs = devices[t.device_id];
                const [ok, failed] = runs ? trialRuns(runs, doc.flow_id, doc.version, since) : [null, 0];
                trial = trialText(health, ok, failed, (now - since) / 1000);
              }
              return (
                <tr key={t.device_id} data-target={t.device_id} data-status={t.status}>
                  <td data-label="Device"><Link to={`/devices/${encodeURIComponent(t.device_id)}`}>{t.device_id}</Link></td>
                  <td data-label="Status"><Badge status={t.status} />{trial && <div className="sub" data-testid="trial">{trial}</div>}</td>
                  <td data-label="Batch">{t.batch + 1}</td>
                  <td data-label="Step">{t.step || "—"}</td>
                  <td data-label="Ack">{t.ack || "—"}</td>
                  <td data-label="Reason" className={t.reason ? "bad" : ""}>{t.reason || "—"}</td>
                </tr>);
            })}</tbody>
          </table></div>
        ) : <p className="hint">{doc.total_targets} targets: too many to list live; <a href={doc.targets_url}>read them in pages</a>.</p>}
      </div>
      <div className="card">
        <h2>Events</h2>
        <ol className="events">{events.map((e, i) => (
          <li key={i}><span className="sub">{when(e.at || e.created_at || e.ts)}</span> <strong>{e.kind}</strong> {e.device_id || ""} <span className="mono">{eventDetail(e.detail)}</span></li>
        ))}</ol>
      </div>
    </section>
  );
}
