// Who is logged in, with which role; the session's refresh before it expires.

import { createContext, useCallback, useContext, useEffect, useRef, useState } from "react";
import type { ReactNode } from "react";
import { ApiError, apiKey, cookie, get, post, setApiKey, setSessionHooks } from "./api";

export type Role = "admin" | "operator" | "viewer";

export interface User {
  id?: string;
  email: string;
  role: Role;
  created_at?: string;
}

export interface Session {
  user: User | null;
  mode: "session" | "key" | null;
  loading: boolean;
  login(email: string, password: string): Promise<void>;
  register(email: string, password: string): Promise<void>;
  useKey(key: string): Promise<void>;
  logout(): Promise<void>;
}

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

/** May this role do what needs `need`? (the API keys' matrix: docs/api.md, "Access") */
export function allowed(role: Role | undefined, need: Role): boolean {
  return role !== undefined && RANK[role] >= RANK[need];
}

const Ctx = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(Ctx);
  if (!s) throw new Error("useSession outside <SessionProvider>");
  return s;
}

/** Shows its children only when the user's role may do what they do. */
export function Can({ role, children }: { role: Role; children: ReactNode }) {
  const { user } = useSession();
  return allowed(user?.role, role) ? <>{children}</> : null;
}

interface AuthAnswer {
  user: User;
  expires_at?: string;
  refresh_expires_at?: string;
}

// The role of an API key: /auth/me names it (`{"user": null, "key": {role}}`);
// a server from before accounts has no /auth/me, so ask there for what only
// an admin may read (operator and viewer keys then look alike; the API still
// refuses what a key may not do, and the page shows its answer).
async function keyRole(): Promise<Role> {
  try {
    const me = await get<{ user: User | null; key?: { role: Role } }>("/auth/me");
    if (me.key?.role) return me.key.role;
    if (me.user?.role) return me.user.role;
  } catch (e) {
    if (!(e instanceof ApiError) || e.status === 401) throw e;
  }
  try {
    await get("/keys");
    return "admin";
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) throw e;
    return "operator";
  }
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const [user, setUser] = useState<User | null>(null);
  const [mode, setMode] = useState<Session["mode"]>(null);
  const [loading, setLoading] = useState(true);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);

  const schedule = useCallback((answer: AuthAnswer) => {
    if (timer.current) clearTimeout(timer.current);
    if (!answer.expires_at) return;
    // Refresh five minutes before the session expires (at least 30 s from now).
    const ms = Math.max(30000, Date.parse(answer.expires_at) - Date.now() - 300000);
    timer.current = setTimeout(() => { refresh(); }, Math.min(ms, 2 ** 31 - 1));
  }, []);

  const accept = useCallback((answer: AuthAnswer) => {
    setApiKey(null);
    setUser(answer.user);
    setMode("session");
    schedule(answer);
  }, [schedule]);

  const refresh = useCallback(async (): Promise<boolean> => {
    if (apiKey() || !cookie("ff_csrf")) return false;
    try {
      accept(await post<AuthAnswer>("/auth/refresh"));
      return true;
    } catch {
      return false;
    }
  }, [accept]);

  const dropUser = useCallback(() => {
    setUser(null);
    setMode(null);
  }, []);

  useEffect(() => {
    setSessionHooks(refresh, dropUser);
    (async () => {
      try {
        if (apiKey()) {
          setUser({ email: "API key", role: await keyRole() });
          setMode("key");
        } else if (cookie("ff_csrf")) {
          // A session cookie is only there with its CSRF cookie: without it,
          // nobody is logged in and the login page shows without a 401.
          const me = await get<AuthAnswer>("/auth/me");
          if (!me.user) throw new Error("no user");
          accept(me);
        }
      } catch (e) {
        if (!(await refresh())) {
          setApiKey(null);
          dropUser();
        }
      } finally {
        setLoading(false);
      }
    })();
    return () => { if (timer.current) clearTimeout(timer.current); };
  }, [refresh, dropUser]);

  const session: Session = {
    user, mode, loading,
    async login(email, password) {
      accept(await post<AuthAnswer>("/auth/login", { email, password }));
    },
    async register(email, password) {
      accept(await post<AuthAnswer>("/auth/register", { email, password }));
    },
    async useKey(key) {
      setApiKey(key);
      try {
        const role = await keyRole();
        setUser({ email: "API key", role });
        setMode("key");
      } catch (e) {
        setApiKey(null);
        throw e;
      }
    },
    async logout() {
      if (timer.current) clearTimeout(timer.current);
      if (mode === "session") {
        try { await post("/auth/logout"); } catch { /* the session is gone either way */ }
      }
      setApiKey(null);
      dropUser();
    },
  };
  return <Ctx.Provider value={session}>{children}</Ctx.Provider>;
}
