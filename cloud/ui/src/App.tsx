// The shell: login when nobody is, else the navigation and the page the hash names.

import { lazy, Suspense, useState } from "react";
import type { ReactNode } from "react";
import { allowed, useSession } from "./auth";
import Device from "./pages/Device";
import Fleet from "./pages/Fleet";
import Login from "./pages/Login";
import { Link, match, useLocation } from "./router";

const Flows = lazy(() => import("./pages/Flows"));
// const FlowEditor = lazy(() => import("./pages/FlowEditor"));
// const Compare = lazy(() => import("./pages/Compare"));
// const Deploy = lazy(() => import("./pages/Deploy"));
const Deployments = lazy(() => import("./pages/Deployments"));
// const Deployment = lazy(() => import("./pages/Deployment"));
// const Executions = lazy(() => import("./pages/Executions"));
// const Execution = lazy(() => import("./pages/Execution"));
// const Pipelines = lazy(() => import("./pages/Pipelines"));
// const Pipeline = lazy(() => import("./pages/Pipeline"));
// const Users = lazy(() => import("./pages/Users"));

const NAV: [string, string][] = [
  ["/fleet", "Fleet"], ["/flows", "Flows"], ["/deployments", "Deployments"],
  ["/executions", "Executions"], ["/pipelines", "Pipelines"],
];

function route(path: string, params: URLSearchParams): ReactNode {
  let m;
  if (path === "/fleet") return <Fleet />;
  if ((m = match("/devices/:id", path))) return <Device id={m.id} />;
  if (path === "/flows") return <Flows />;
  // ROUTES-FLOWS
  void params;
  if (path === "/deployments") return <Deployments />;
  // ROUTES-REST
  return <p>No page at {path}. <Link to="/fleet">Go to the fleet</Link>.</p>;
}

export default function App() {
  const session = useSession();
  const loc = useLocation();
  const [menu, setMenu] = useState(false);
  if (session.loading) return <p className="loading">Loading…</p>;
  if (!session.user) return <Login />;
  const section = "/" + loc.path.split("/")[1];
  const nav = [...NAV, ...(allowed(session.user.role, "admin") && session.mode === "session" ? [["/users", "Users"] as [string, string]] : [])];
  return (
    <>
      <header className="top">
        <a className="brand" href="#/fleet">fleetflow</a>
        <button type="button" className="menu" aria-expanded={menu} aria-controls="nav" onClick={() => setMenu(!menu)}>Menu</button>
        <nav id="nav" className={menu ? "open" : ""} aria-label="main">
          {nav.map(([to, label]) => (
            <Link key={to} to={to} onClick={() => setMenu(false)}
                  aria-current={to === section || (to === "/fleet" && section === "/devices") ? "page" : undefined}>{label}</Link>
          ))}
        </nav>
        <div className="who">
          <span className="user" title={session.user.email}>{session.user.email}</span>
          <span className={`role role-${session.user.role}`}>{session.user.role}</span>
          <button type="button" onClick={() => session.logout()}>Log out</button>
        </div>
      </header>
      <main className="page">
        <Suspense fallback={<p className="loading">Loading…</p>}>{route(loc.path, loc.params)}</Suspense>
      </main>
    </>
  );
}
