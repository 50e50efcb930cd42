// Users (admin): add one with a role, change a role, remove one.

import { useState } from "react";
import { del, get, patch, post } from "../api";
import { useSession } from "../auth";
import { ErrorBox, useAction, useLoad } from "../components/common";
import { ago } from "../format";

const ROLES = ["admin", "operator", "viewer"];

export default function Users() {
  const { user } = useSession();
  const list = useLoad<{ users?: any[]; items?: any[] }>(() => get("/users?limit=200"), []);
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [role, setRole] = useState("viewer");
  const act = useAction();
  const users = list.data?.users || list.data?.items || [];
  async function create() {
    if (await act.run(() => post("/users", { email: email.trim(), password, role }))) {
      setEmail(""); setPassword(""); list.reload();
    }
  }
  return (
    <section>
      <h1>Users</h1>
      <form className="card actions" aria-label="add user" onSubmit={(e) => { e.preventDefault(); create(); }}>
        <label>Email<input type="email" name="new-email" required value={email} onChange={(e) => setEmail(e.target.value)} /></label>
        <label>Password<input type="password" name="new-password" autoComplete="new-password" required minLength={8} value={password} onChange={(e) => setPassword(e.target.value)} /></label>
        <label>Role<select name="new-role" value={role} onChange={(e) => setRole(e.target.value)}>{ROLES.map((r) => <option key={r}>{r}</option>)}</select></label>
        <button type="submit" className="primary" disabled={act.busy}>Add user</button>
      </form>
      <ErrorBox error={act.error || list.error} />
      <div className="table-wrap"><table className="cards">
        <thead><tr><th>Email</th><th>Role</th><th>Since</th><th></th></tr></thead>
        <tbody>{users.map((u) => (
          <tr key={u.id} data-user={u.email}>
            <td data-label="Email">{u.email}</td>
            <td data-label="Role"><select aria-label={`role of ${u.email}`} value={u.role} disabled={u.email === user?.email}
                                          onChange={async (e) => { if (await act.run(() => patch(`/users/${u.id}`, { role: e.target.value }))) list.reload(); }}>
              {ROLES.map((r) => <option key={r}>{r}</option>)}</select></td>
            <td data-label="Since">{ago(u.created_at)}</td>
            <td>{u.email !== user?.email && <button type="button" className="danger" onClick={async () => { if (await act.run(async () => { await del(`/users/${u.id}`); return true; })) list.reload(); }}>Remove</button>}</td>
          </tr>))}</tbody>
      </table></div>
    </section>
  );
}
