// Webhooks (admin): subscribe a URL to events (the signing secret is shown
// once), its deliveries with dead letters to redeliver, remove it.

import { useState } from "react";
import { del, get, post } from "../api";
import { Badge, Empty, ErrorBox, useAction, useLoad } from "../components/common";
import { ago, when } from "../format";

/** The events field's text as the API's list: names, prefixes ending in "." or "*". */
export function eventList(text: string): string[] {
  const events = text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
  return events.length ? events : ["*"];
}

function Deliveries({ id }: { id: number }) {
  const list = useLoad<{ deliveries: any[] }>(() => get(`/webhooks/${id}/deliveries?limit=20`), [id]);
  const act = useAction();
  const items = list.data?.deliveries || [];
  return (
    <div>
      <ErrorBox error={act.error || list.error} />
      {list.data && items.length === 0 && <p className="hint">No delivery yet.</p>}
      {items.length > 0 && (
        <div className="table-wrap"><table className="cards compact" aria-label={`deliveries of webhook ${id}`}>
          <thead><tr><th>Event</th><th>Status</th><th>Attempts</th><th>When</th><th>Last error</th><th></th></tr></thead>
          <tbody>{items.map((d) => (
            <tr key={d.id} data-delivery={d.id}>
              <td data-label="Event">{d.event}</td>
              <td data-label="Status"><Badge status={d.status} /></td>
              <td data-label="Attempts">{d.attempts}</td>
              <td data-label="When">{when(d.delivered_at || d.created_at)}{d.next_at ? ` · next try ${when(d.next_at)}` : ""}</td>
              <td data-label="Last error" className={d.last_error ? "bad" : ""}>{d.last_error || "—"}</td>
              <td>{d.status === "dead" && <button type="button" onClick={async () => { if (await act.run(() => post(`/webhooks/${id}/deliveries/${d.id}/redeliver`))) list.reload(); }}>Redeliver</button>}</td>
            </tr>))}</tbody>
        </table></div>
      )}
      <button type="button" onClick={list.reload}>Read again</button>
    </div>
  );
}

export default function Webhooks() {
  const list = useLoad<{ webhooks: any[] }>(() => get("/webhooks?limit=200"), []);
  const [url, setUrl] = useState("");
  const [events, setEvents] = useState("*");
  const [made, setMade] = useState<any>(null);
  const act = useAction();
  async function create() {
    const w = await act.run(() => post("/webhooks", { url: url.trim(), events: eventList(events) }));
    if (w) { setMade(w); setUrl(""); setEvents("*"); list.reload(); }
  }
  async function remove(w: any) {
    if (!window.confirm(`Remove the webhook to ${w.url}? Its deliveries go with it.`)) return;
    if (await act.run(async () => { await del(`/webhooks/${w.id}`); return true; })) list.reload();
  }
  const hooks = list.data?.webhooks || [];
  return (
    <section>
      <h1>Webhooks</h1>
      <form className="card actions" aria-label="new webhook" onSubmit={(e) => { e.preventDefault(); create(); }}>
        <label className="grow">URL<input type="url" name="webhook-url" required placeholder="https://example.com/hooks/fleetflow" value={url} onChange={(e) => setUrl(e.target.value)} /></label>
        <label>Events<input name="webhook-events" value={events} onChange={(e) => setEvents(e.target.value)} /></label>
        <button type="submit" className="primary" disabled={act.busy}>Add webhook</button>
        <p className="hint">Events: names (<code>deployment.failed</code>), prefixes ending in a dot (<code>deployment.</code>, <code>execution.</code>, <code>pipeline_run.</code>) or <code>*</code>, separated by commas. Deliveries are signed as Standard Webhooks say (docs/api.md).</p>
      </form>
      {made && (
        <div className="notice" role="status" data-testid="new-webhook">
          <strong>Signing secret for {made.url}, shown this once: copy it now.</strong>
          <pre className="secret" tabIndex={0}>{made.secret}</pre>
          <button type="button" onClick={() => setMade(null)}>Done</button>
        </div>
      )}
      <ErrorBox error={act.error || list.error} />
      {list.data && hooks.length === 0 && <Empty>No webhook yet.</Empty>}
      {hooks.map((w) => (
        <div className="card" key={w.id} data-webhook={w.url}>
          <div className="title-row">
            <strong className="mono">{w.url}</strong>
            <button type="button" className="danger" aria-label={`remove webhook ${w.url}`} onClick={() => remove(w)}>Remove</button>
          </div>
          <p className="hint">events {w.events.join(", ")} · {w.active ? "active" : "inactive"} · added {ago(w.created_at)}</p>
          <details><summary>Deliveries</summary><Deliveries id={w.id} /></details>
        </div>
      ))}
    </section>
  );
}
