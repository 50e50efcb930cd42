// API keys (admin): for scripts and the CLI. Create one with a role (its
// secret is shown once), list them, revoke one.

import { useState } from "react";
import { get, post } from "../api";
import { Badge, Empty, ErrorBox, Pager, useAction, usePages, useLoad } from "../components/common";
import { ago } from "../format";

const ROLES = ["viewer", "operator", "admin"];

export default function Keys() {
  const first = "/keys?limit=50";
  const paging = usePages(first);
  const list = useLoad<{ keys: any[]; next: string | null }>(() => get(paging.url), [paging.url]);
  const [name, setName] = useState("");
  const [role, setRole] = useState("viewer");
  const [made, setMade] = useState<any>(null);
  const act = useAction();
  async function create() {
    const k = await act.run(() => post("/keys", { name: name.trim(), role }));
    if (k) { setMade(k); setName(""); list.reload(); }
  }
  async function revoke(k: any) {
    if (!window.confirm(`Revoke key ${k.name || k.prefix}? Scripts using it stop working at once.`)) return;
    if (await act.run(() => post(`/keys/${k.id}/revoke`))) list.reload();
  }
  const keys = list.data?.keys || [];
  return (
    <section>
      <h1>API keys</h1>
      <p className="hint">For scripts and the CLI (<code>x-api-key</code> or <code>Authorization: Bearer</code>); a key's role works as a user's.</p>
      <form className="card actions" aria-label="new API key" onSubmit={(e) => { e.preventDefault(); create(); }}>
        <label>Name<input name="key-name" maxLength={128} value={name} placeholder="ci, grafana…" onChange={(e) => setName(e.target.value)} /></label>
        <label>Role<select name="key-role" value={role} onChange={(e) => setRole(e.target.value)}>{ROLES.map((r) => <option key={r}>{r}</option>)}</select></label>
        <button type="submit" className="primary" disabled={act.busy}>Create key</button>
      </form>
      {made && (
        <div className="notice" role="status" data-testid="new-key">
          <strong>Key {made.name || made.id} ({made.role}), shown this once: copy it now.</strong>
          <pre className="secret" tabIndex={0}>{made.key}</pre>
          <button type="button" onClick={() => setMade(null)}>Done</button>
        </div>
      )}
      <ErrorBox error={act.error || list.error} />
      {list.data && keys.length === 0 && <Empty>No API key yet.</Empty>}
      {keys.length > 0 && (
        <div className="table-wrap"><table className="cards">
          <thead><tr><th>Name</th><th>Role</th><th>Starts with</th><th>Created</th><th>State</th><th></th></tr></thead>
          <tbody>{keys.map((k) => (
            <tr key={k.id} data-key={k.name || k.id}>
              <td data-label="Name">{k.name || "—"}<div className="sub">id {k.id}</div></td>
              <td data-label="Role">{k.role}</td>
              <td data-label="Starts with"><code>{k.prefix}…</code></td>
              <td data-label="Created">{ago(k.created_at)}</td>
              <td data-label="State"><Badge status={k.revoked ? "revoked" : "active"} /></td>
              <td>{!k.revoked && <button type="button" className="danger" aria-label={`revoke key ${k.name || k.id}`} onClick={() => revoke(k)}>Revoke</button>}</td>
            </tr>))}</tbody>
        </table></div>
      )}
      <Pager {...paging.pager(list.data?.next)} />
    </section>
  );
}
