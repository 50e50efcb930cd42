// Log in with email and password; the very first visitor registers (and
// becomes admin). An API key works too, for a server from before accounts.

import { useEffect, useState } from "react";
import type { FormEvent } from "react";
import { ApiError, get } from "../api";
import { useSession } from "../auth";
import { ErrorBox } from "../components/common";

export default function Login() {
  const session = useSession();
  const [hasUsers, setHasUsers] = useState<boolean | null>(null);
  const [accounts, setAccounts] = useState(true);
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [key, setKey] = useState("");
  const [showKey, setShowKey] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    get<{ has_users: boolean }>("/auth/status")
      .then((s) => setHasUsers(s.has_users))
      .catch((e) => {
        // A server without accounts (no /auth/status): API keys only.
        if (e instanceof ApiError && [401, 404, 405].includes(e.status)) { setAccounts(false); setShowKey(true); }
        setHasUsers(true);
      });
  }, []);

  const registering = hasUsers === false;

  async function submit(ev: FormEvent) {
    ev.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (registering) await session.register(email.trim(), password);
      else await session.login(email.trim(), password);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  async function submitKey(ev: FormEvent) {
    ev.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await session.useKey(key.trim());
    } catch (e) {
      setError(e instanceof ApiError && e.status === 401 ? new Error("that API key is not valid (unknown or revoked)") : e);
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="login">
      <h1>fleetflow</h1>
      {accounts && hasUsers !== null && (
        <form onSubmit={submit} className="card" aria-label={registering ? "register" : "log in"}>
          <h2>{registering ? "Create the first account" : "Log in"}</h2>
          {registering && <p className="hint">No one has an account yet: this one becomes the admin. Admins add everyone else (Users).</p>}
          <label>Email
            <input type="email" name="email" autoComplete="username" required value={email}
                   onChange={(e) => setEmail(e.target.value)} autoFocus />
          </label>
          <label>Password
            <input type="password" name="password" required minLength={registering ? 8 : undefined}
                   autoComplete={registering ? "new-password" : "current-password"}
                   value={password} onChange={(e) => setPassword(e.target.value)} />
          </label>
          <button type="submit" className="primary" disabled={busy}>{registering ? "Create account" : "Log in"}</button>
        </form>
      )}
      <ErrorBox error={error} />
      {accounts && !showKey && (
        <button type="button" className="link" onClick={() => setShowKey(true)}>Use an API key instead</button>
      )}
      {showKey && (
        <form onSubmit={submitKey} className="card" aria-label="API key">
          <h2>API key</h2>
          <p className="hint">A key from <code>fleetflow keys create --role admin</code>; it stays in this tab only.</p>
          <label>Key
            <input type="password" name="api-key" placeholder="ffk_…" required value={key}
                   onChange={(e) => setKey(e.target.value)} />
          </label>
          <button type="submit" disabled={busy}>Use key</button>
        </form>
      )}
    </main>
  );
}
