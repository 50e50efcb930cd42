// Your account: who you are, your session, and changing your own password
// (POST /auth/password: the current one first; your other sessions end).

import { useState } from "react";
import { get, post } from "../api";
import { useSession } from "../auth";
import { ErrorBox, useAction, useLoad } from "../components/common";
import { when } from "../format";

const MIN_CHARS = 8; // cloud.sessions.PASSWORD_MIN_CHARS: the API says so too, at /new_password

/** What stops the form before it is sent, or null. */
export function passwordProblem(next: string, again: string): string | null {
  if (next.length < MIN_CHARS) return `the new password needs at least ${MIN_CHARS} characters`;
  if (next !== again) return "the two new passwords differ";
  return null;
}

export function ChangePassword() {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [again, setAgain] = useState("");
  const [done, setDone] = useState(false);
  const act = useAction();
  const problem = next || again ? passwordProblem(next, again) : null;
  async function submit() {
    setDone(false);
    const ok = await act.run(() => post("/auth/password", { current_password: current, new_password: next }));
    if (ok) { setCurrent(""); setNext(""); setAgain(""); setDone(true); }
  }
  return (
    <form className="card stack" aria-label="change password" onSubmit={(e) => { e.preventDefault(); submit(); }}>
      <h2>Change password</h2>
      <label>Current password<input type="password" name="current-password" autoComplete="current-password" required
                                    value={current} onChange={(e) => setCurrent(e.target.value)} /></label>
      <label>New password<input type="password" name="new-password" autoComplete="new-password" required minLength={MIN_CHARS}
                                value={next} onChange={(e) => setNext(e.target.value)} /></label>
      <label>New password again<input type="password" name="new-password-again" autoComplete="new-password" required
                                      value={again} onChange={(e) => setAgain(e.target.value)} /></label>
      {problem && <p className="hint" data-testid="password-problem">{problem}</p>}
      <ErrorBox error={act.error} />
      {done && <p className="notice" role="status">Password changed. Your other sessions have ended; this one goes on.</p>}
      <div className="actions"><button type="submit" className="primary" disabled={act.busy || !current || !!problem}>Change password</button></div>
    </form>
  );
}

export default function Account() {
  const { user, mode } = useSession();
  const me = useLoad<any>(() => get("/auth/me"), []);
  return (
    <section>
      <h1>Account</h1>
      <div className="card">
        <dl>
          <dt>Email</dt><dd>{user?.email}</dd>
          <dt>Role</dt><dd>{user?.role}</dd>
          {me.data?.expires_at && <><dt>Session expires</dt><dd>{when(me.data.expires_at)} (refreshed until {when(me.data.refresh_expires_at)})</dd></>}
        </dl>
      </div>
      {mode === "session" ? <ChangePassword /> :
        <p className="hint">You are using an API key: it has no password. Log in with email and password to change yours.</p>}
    </section>
  );
}
