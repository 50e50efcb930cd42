// One device: live status, health, slots, its last runs (per-node timing,
// output, errors), its log lines by severity, and its deployments.

import { useEffect, useState } from "react";
import { get, patch } from "../api";
import { Can } from "../auth";
import { Badge, Empty, ErrorBox, LiveDot, useAction, useLoad } from "../components/common";
import { ago, bytes, duration, json, when } from "../format";
import { Link } from "../router";
import { openStream } from "../sse";
import type { Device as Dev } from "./Fleet";
import { mergeDevice } from "./Fleet";

export const LEVELS = ["debug", "info", "warning", "error"];

interface RunNode { id: string; type: string; us?: number; port?: number | null; out?: unknown; err?: string | null }
interface Run { run?: number | string; status: string; err?: string | null; at?: string; received_at?: string; created_at?: string;
  flow?: string; ver?: number; nodes?: RunNode[]; logs?: [string, string, string][] }

/** A node's run time from its microseconds. */
export function micros(us: number | null | undefined): string {
  if (us === null || us === undefined) return "—";
  return us < 1000 ? `${us} µs` : `${(us / 1000).toFixed(1)} ms`;
}

/** Who a target selector picks, in words. */
export function selectorText(sel: any): string {
  if (!sel || sel.all || (!sel.target_devices?.length && !sel.target_tags?.length && !sel.environment)) return "every device";
  const parts = [];
  if (sel.target_devices?.length) parts.push(`devices ${sel.target_devices.join(", ")}`);
  if (sel.target_tags?.length) parts.push(`tagged ${sel.target_tags.join(" and ")}`);
  if (sel.environment) parts.push(`in ${sel.environment}`);
  return parts.join(", ");
}

export function NodeTable({ nodes }: { nodes: RunNode[] }) {
  if (!nodes?.length) return <p className="hint">no node ran</p>;
  return (
    <div className="table-wrap"><table className="compact">
      <thead><tr><th>node</th><th>type</th><th>time</th><th>port</th><th>output / error</th></tr></thead>
      <tbody>{nodes.map((n, i) => (
        <tr key={i} className={n.err ? "bad" : ""}>
          <td>{n.id}</td><td>{n.type}</td><td>{micros(n.us)}</td>
          <td>{n.port ?? "—"}</td><td className="mono">{n.err ? n.err : json(n.out ?? "")}</td>
        </tr>))}</tbody>
    </table></div>
  );
}

export function LogLines({ logs, level }: { logs: [string, string, string][]; level: string }) {
  const min = LEVELS.indexOf(level);
  const shown = (logs || []).filter((l) => LEVELS.indexOf(l[0]) >= min);
  if (!shown.length) return <p className="hint">no log line at {level} or above</p>;
  return (
    <ul className="logs">{shown.map((l, i) => (
      <li key={i} className={`log-${l[0]}`}><span className="sev">{l[0]}</span> <span className="node">{l[1]}</span> {l[2]}</li>
    ))}</ul>
  );
}

export function LevelFilter({ level, setLevel }: { level: string; setLevel(l: string): void }) {
  return (
    <label className="inline">Severity
      <select name="level" value={level} onChange={(e) => setLevel(e.target.value)}>
        {LEVELS.map((l) => <option key={l} value={l}>{l} and above</option>)}
      </select>
    </label>
  );
}

function EditDevice({ d, onSaved }: { d: Dev; onSaved(d: Dev): void }) {
  const [name, setName] = useState(d.name || "");
  const [tags, setTags] = useState((d.tags || []).join(", "));
  const [env, setEnv] = useState(d.environment || "");
  const act = useAction();
  async function save() {
    const out = await act.run(() => patch<Dev>(`/devices/${encodeURIComponent(d.id)}`, {
      name: name.trim() || null, tags: tags.split(",").map((t) => t.trim()).filter(Boolean), environment: env.trim() || null,
    }));
    if (out) onSaved(out);
  }
  return (
    <details className="card">
      <summary>Name, tags, environment</summary>
      <form className="actions" aria-label="edit device" onSubmit={(e) => { e.preventDefault(); save(); }}>
        <label>Name<input name="device-name" value={name} onChange={(e) => setName(e.target.value)} /></label>
        <label>Tags (comma-separated)<input name="device-tags" value={tags} onChange={(e) => setTags(e.target.value)} /></label>
        <label>Environment<input name="device-environment" value={env} onChange={(e) => setEnv(e.target.value)} /></label>
        <button type="submit" disabled={act.busy}>Save</button>
      </form>
      <ErrorBox error={act.error} />
    </details>
  );
}

export default function Device({ id }: { id: string }) {
  const dev = useLoad<Dev>(() => get(`/devices/${encodeURIComponent(id)}`), [id]);
  const runs = useLoad<{ runs: Run[] }>(() => get(`/devices/${encodeURIComponent(id)}/runs?limit=10`), [id]);
  const deps = useLoad<{ deployments: any[] }>(() => get(`/deployments?device_id=${encodeURIComponent(id)}&limit=20`), [id]);
  const [level, setLevel] = useState("info");
  const [live, setLive] = useState("connecting");

  // Live from the device's own stream: its status, each health message as
  // heard, and run records as stored. A server without it: the fleet stream.
  useEffect(() => {
    let fleet: { close(): void } | null = null;
    const s = openStream(`/devices/${encodeURIComponent(id)}/stream`, {
      onState: (st) => {
        setLive(st);
        if (st === "unavailable" && !fleet) {
          fleet = openStream("/streams/fleet", {
            onState: setLive,
            onEvent: (ev) => {
              const x = ev.data?.device;
              if (ev.event !== "device" || x?.id !== id) return;
              dev.setData((cur) => (cur ? mergeDevice([cur], ev.data)[0] : cur));
              runs.reload();
            },
          });
        }
      },
      onEvent: (ev) => {
        if (ev.event === "metadata" || ev.event === "sync") dev.setData(ev.data);
        else if (ev.event === "status") dev.setData((cur) => (cur ? mergeDevice([cur], ev.data)[0] : cur));
        else if (ev.event === "health") dev.setData((cur) => (cur ? { ...cur, health: ev.data.health, heap: ev.data.health?.heap ?? cur.heap } : cur));
        else if (ev.event === "runs") runs.setData((cur) => ({ runs: [...[...(ev.data.runs || [])].reverse(), ...(cur?.runs || [])].slice(0, 10) }));
      },
    });
    return () => { s.close(); fleet?.close(); };
  }, [id]);

  const d = dev.data;
  const h = (d?.health || {}) as Record<string, any>;
  const mine = deps.data?.deployments || [];
  const allLogs = (runs.data?.runs || []).flatMap((r) => r.logs || []);

  return (
    <section>
      <div className="title-row"><h1>{id}</h1><LiveDot state={live} /></div>
      <ErrorBox error={dev.error} />
      {d && (
        <div className="grid">
          <div className="card">
            <h2>Status</h2>
            <dl>
              <dt>state</dt><dd><Badge status={d.state} /> {d.trial ? <Badge status="trial">on trial</Badge> : null}</dd>
              <dt>name</dt><dd>{d.name || "—"}</dd>
              <dt>board</dt><dd>{d.board} · firmware {d.fw || "—"}</dd>
              <dt>last seen</dt><dd>{ago(d.last_seen)}</dd>
              <dt>tags</dt><dd>{(d.tags || []).join(", ") || "—"} {d.environment ? `· ${d.environment}` : ""}</dd>
            </dl>
          </div>
          <div className="card">
            <h2>Health</h2>
            <dl>
              <dt>free heap</dt><dd>{bytes(d.heap ?? h.heap_free ?? h.free)}</dd>
              <dt>uptime</dt><dd>{duration(h.uptime ?? h.uptime_s ?? null)}</dd>
              <dt>errors</dt><dd>{h.errors ?? h.err ?? h.error_count ?? "—"}</dd>
              <dt>runs</dt><dd>{h.runs ?? "—"}</dd>
            </dl>
            {Object.keys(h).length > 0 && <details><summary>all health fields</summary><pre>{JSON.stringify(h, null, 1)}</pre></details>}
          </div>
          <div className="card">
            <h2>Slots</h2>
            <dl>
              <dt>active slot</dt><dd>{d.slot ?? "—"}</dd>
              <dt>running</dt><dd>{d.flow ? <Link to={`/flows/${d.flow}`}>{d.flow} v{d.ver}</Link> : "no flow"}</dd>
              <dt>previous</dt><dd>{(d as any).previous ? json((d as any).previous) : (d.slot ? `slot ${d.slot === "a" ? "b" : "a"} (the one a rollback returns to)` : "—")}</dd>
            </dl>
          </div>
        </div>
      )}
      {d && <Can role="operator"><EditDevice key={d.id} d={d} onSaved={(x) => dev.setData((cur) => ({ ...cur!, ...x }))} /></Can>}
      <div className="card">
        <h2>Last runs</h2>
        <ErrorBox error={runs.error} />
        {runs.data && runs.data.runs.length === 0 && <Empty>No run recorded yet.</Empty>}
        {(runs.data?.runs || []).map((r, i) => (
          <details key={i} open={i === 0} className="run">
            <summary><Badge status={r.status} /> {r.flow ? `${r.flow} v${r.ver}` : ""} {when(r.received_at || r.at || r.created_at)} {r.err ? <span className="bad"> — {r.err}</span> : null}</summary>
            <NodeTable nodes={r.nodes || []} />
          </details>
        ))}
      </div>
      <div className="card">
        <div className="title-row"><h2>Log</h2><LevelFilter level={level} setLevel={setLevel} /></div>
        <LogLines logs={allLogs} level={level} />
      </div>
      <div className="card">
        <h2>Deployments</h2>
        {mine.length === 0 ? <Empty>No deployment has targeted this device.</Empty> : (
          <ul>{mine.map((x: any) => <li key={x.id}><Link to={`/deployments/${x.id}`}>{x.id}</Link> <Badge status={x.status} /> {x.flow_id} v{x.version}</li>)}</ul>
        )}
      </div>
    </section>
  );
}
