// One execution, live: status, each device's run with per-node timing and
// output, the log with a severity filter; cancel, retry, replay.

import { useEffect, useRef, useState } from "react";
import { get, post } from "../api";
import { Can } from "../auth";
import { Badge, ErrorBox, LiveDot, useAction } from "../components/common";
import { when } from "../format";
import { Link, navigate } from "../router";
import { openStream } from "../sse";
import { LevelFilter, LogLines, NodeTable } from "./Device";

const FINISHED = ["completed", "failed", "cancelled", "timed_out"];

export default function Execution({ id }: { id: string }) {
  const [doc, setDoc] = useState<any>(null);
  const [error, setError] = useState<unknown>(null);
  const [live, setLive] = useState("connecting");
  const [level, setLevel] = useState("info");
  const act = useAction();
  const pending = useRef<ReturnType<typeof setTimeout> | null>(null);

  // Every log line is fetched (level=debug) and filtered here, so changing
  // the filter needs no request.
  const load = () => get(`/executions/${id}?level=debug`).then((d) => { setDoc(d); setError(null); return d; }, setError);
  const loadSoon = () => {
    if (pending.current) return;
    pending.current = setTimeout(() => { pending.current = null; load(); }, 300);
  };

  useEffect(() => {
    let poll: ReturnType<typeof setInterval> | null = null;
    load();
    const s = openStream(`/executions/${id}/stream`, {
      finalEvent: "complete",
      onState: (st) => {
        setLive(st);
        // A server without the execution stream: follow it by reading it again until it finishes.
        if (st === "unavailable" && !poll) {
          poll = setInterval(async () => {
            const d: any = await load();
            if (d && FINISHED.includes(d.status) && poll) { clearInterval(poll); poll = null; }
          }, 1500);
        }
      },
      onEvent: () => loadSoon(),
    });
    return () => { s.close(); if (poll) clearInterval(poll); if (pending.current) clearTimeout(pending.current); };
  }, [id]);

  async function command(verb: string) {
    const out: any = await act.run(() => post(`/executions/${id}/${verb}`));
    if (!out) return;
    if (verb === "cancel") load();
    else navigate(`/executions/${out.id}`);
  }

  if (!doc) return <section><h1>{id}</h1><ErrorBox error={error} /></section>;
  const done = FINISHED.includes(doc.status);
  return (
    <section>
      <div className="title-row"><h1>Execution {doc.id}</h1><LiveDot state={done ? "closed" : live} /></div>
      <div className="card">
        <dl>
          <dt>status</dt><dd><Badge status={doc.status} /></dd>
          <dt>flow</dt><dd><Link to={`/flows/${doc.flow_id}`}>{doc.flow_id}</Link> v{doc.version}</dd>
          <dt>by</dt><dd>{doc.triggered_by || "—"}</dd>
          <dt>overrides</dt><dd className="mono">{JSON.stringify(doc.overrides || {})}</dd>
          <dt>started</dt><dd>{when(doc.started_at || doc.created_at)}</dd>
          {doc.retry_of && <><dt>retry of</dt><dd><Link to={`/executions/${doc.retry_of}`}>{doc.retry_of}</Link></dd></>}
          <dt>devices</dt><dd>{Object.entries(doc.counts || {}).filter(([, v]) => v).map(([k, v]) => `${k} ${v}`).join(" · ")}</dd>
        </dl>
        <Can role="operator">
          <div className="actions">
            {!done && <button type="button" className="danger" onClick={() => command("cancel")}>Cancel</button>}
            {done && <button type="button" onClick={() => command("retry")}>Retry the devices that did not complete</button>}
            {done && <button type="button" onClick={() => command("replay")}>Replay on every device</button>}
          </div>
          <ErrorBox error={act.error} />
        </Can>
      </div>
      <div className="title-row"><h2>Devices</h2><LevelFilter level={level} setLevel={setLevel} /></div>
      {(doc.targets || []).map((t: any) => (
        <div className="card" key={t.device_id} data-exec-target={t.device_id} data-status={t.status}>
          <div className="title-row"><h3><Link to={`/devices/${encodeURIComponent(t.device_id)}`}>{t.device_id}</Link> <Badge status={t.status} /></h3>
            {t.reason && <span className="bad">{t.reason}</span>}</div>
          {t.record ? <>
            <NodeTable nodes={t.record.nodes || []} />
            <h4>Log</h4>
            <LogLines logs={t.record.logs || []} level={level} />
          </> : <p className="hint">no run record yet</p>}
        </div>
      ))}
    </section>
  );
}
