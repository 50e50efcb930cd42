// Deployments, newest first, with their counts.

import { useEffect, useState } from "react";
import { get, query } from "../api";
import { Badge, Empty, ErrorBox, LiveDot, Pager, usePages, useLoad } from "../components/common";
import { openStream } from "../sse";
import { ago } from "../format";
import { Link } from "../router";

export default function Deployments() {
  const [status, setStatus] = useState("");
  const first = "/deployments" + query({ status, limit: 50 });
  const paging = usePages(first);
  const list = useLoad<{ deployments: any[]; next: string | null }>(() => get(paging.url), [paging.url]);
  const [live, setLive] = useState("connecting");
  // Status, phase and counts of the listed deployments follow the fleet stream's `deployment` events.
  useEffect(() => {
    const s = openStream("/streams/fleet", {
      onState: setLive,
      onEvent: (ev) => {
        if (ev.event !== "deployment" || !ev.data?.deployment?.id) return;
        const change = ev.data.deployment;
        list.setData((cur) => cur && {
          ...cur,
          deployments: cur.deployments.map((d) => (d.id === change.id ? { ...d, ...change,
            completed_targets: change.counts?.success ?? d.completed_targets, failed_targets: change.counts?.failed ?? d.failed_targets } : d)),
        });
      },
    });
    return () => s.close();
  }, []);
  return (
    <section>
      <div className="title-row"><h1>Deployments</h1><LiveDot state={live} />
        <label className="inline">Status<select name="status" value={status} onChange={(e) => { setStatus(e.target.value); paging.reset(); }}>
          <option value="">any</option>{["pending", "running", "paused", "completed", "failed", "rolled_back", "cancelled"].map((s) => <option key={s}>{s}</option>)}
        </select></label></div>
      <p className="hint">Deploy a published flow from its page (Flows → the flow → Deploy).</p>
      <ErrorBox error={list.error} />
      {list.data && list.data.deployments.length === 0 && <Empty>No deployment yet.</Empty>}
      {list.data && list.data.deployments.length > 0 && (
        <div className="table-wrap"><table className="cards">
          <thead><tr><th>Deployment</th><th>Status</th><th>Flow</th><th>Strategy</th><th>Targets</th><th>Created</th></tr></thead>
          <tbody>{list.data.deployments.map((d) => (
            <tr key={d.id} data-deployment={d.id}>
              <td data-label="Deployment"><Link to={`/deployments/${d.id}`}>{d.id}</Link></td>
              <td data-label="Status"><Badge status={d.status} /></td>
              <td data-label="Flow"><Link to={`/flows/${d.flow_id}`}>{d.flow_id}</Link> v{d.version}</td>
              <td data-label="Strategy">{d.strategy}</td>
              <td data-label="Targets">{d.completed_targets ?? 0}/{d.total_targets} done{d.failed_targets ? `, ${d.failed_targets} failed` : ""}</td>
              <td data-label="Created">{ago(d.created_at)}</td>
            </tr>))}</tbody>
        </table></div>
      )}
      <Pager {...paging.pager(list.data?.next)} />
    </section>
  );
}
