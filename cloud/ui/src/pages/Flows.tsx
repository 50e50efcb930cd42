// Flows: the list (drafts, published, archived on demand) and "new flow".

import { useState } from "react";
import { get, post, query } from "../api";
import { Can } from "../auth";
import { Badge, Empty, ErrorBox, Pager, useAction, usePages, useLoad } from "../components/common";
import { ago } from "../format";
import { Link, navigate } from "../router";

export default function Flows() {
  const [status, setStatus] = useState("");
  const first = "/flows" + query({ status, limit: 50 });
  const paging = usePages(first);
  const list = useLoad<{ flows: any[]; next: string | null }>(() => get(paging.url), [paging.url]);
  const act = useAction();
  const [name, setName] = useState("");
  const [form, setForm] = useState<"graph" | "steps">("graph");

  async function create() {
    const body = form === "graph"
      ? { name: name.trim(), definition: { nodes: [], connections: [], variables: [] } }
      : { name: name.trim(), steps: [] };
    const flow = await act.run(() => post("/flows", body));
    if (flow) navigate(`/flows/${flow.id}`);
  }

  return (
    <section>
      <div className="title-row"><h1>Flows</h1>
        <label className="inline">Show<select name="status" value={status} onChange={(e) => { setStatus(e.target.value); paging.reset(); }}>
          <option value="">drafts and published</option><option value="draft">drafts</option>
          <option value="published">published</option><option value="archived">archived</option></select></label>
      </div>
      <Can role="operator">
        <form className="card actions" aria-label="new flow" onSubmit={(e) => { e.preventDefault(); create(); }}>
          <label className="grow">New flow<input name="flow-name" required placeholder="name, e.g. Temperature alert" value={name}
                                                 onChange={(e) => setName(e.target.value)} /></label>
          <label>Form<select name="flow-form" value={form} onChange={(e) => setForm(e.target.value as any)}>
            <option value="graph">graph (nodes and connections)</option><option value="steps">ordered steps</option></select></label>
          <button type="submit" className="primary" disabled={act.busy || !name.trim()}>Create flow</button>
        </form>
        <ErrorBox error={act.error} />
      </Can>
      <ErrorBox error={list.error} />
      {list.data && list.data.flows.length === 0 && <Empty>No flow yet.</Empty>}
      {list.data && list.data.flows.length > 0 && (
        <div className="table-wrap"><table className="cards">
          <thead><tr><th>Flow</th><th>Status</th><th>Version</th><th>Nodes</th><th>Updated</th></tr></thead>
          <tbody>{list.data.flows.map((f) => (
            <tr key={f.id} data-flow={f.id}>
              <td data-label="Flow"><Link to={`/flows/${f.id}`}>{f.name}</Link><div className="sub">{f.id}</div></td>
              <td data-label="Status"><Badge status={f.status} /></td>
              <td data-label="Version">{f.version ? `v${f.version}` : "—"}</td>
              <td data-label="Nodes">{f.definition?.nodes?.length ?? f.steps?.length ?? 0}</td>
              <td data-label="Updated">{ago(f.updated_at)}</td>
            </tr>))}</tbody>
        </table></div>
      )}
      <Pager {...paging.pager(list.data?.next)} />
    </section>
  );
}
