// The shell: login when nobody is, else the navigation and the page the hash names.

import { Component, lazy, Suspense, useState } from "react";
import type { ReactNode } from "react";
import { allowed, useSession } from "./auth";
import Device from "./pages/Device";
import Fleet from "./pages/Fleet";
import Login from "./pages/Login";
import { Link, match, useLocation } from "./router";

const Flows = lazy(() => import("./pages/Flows"));
const FlowEditor = lazy(() => import("./pages/FlowEditor"));
const Compare = lazy(() => import("./pages/Compare"));
const Deploy = lazy(() => import("./pages/Deploy"));
const Deployments = lazy(() => import("./pages/Deployments"));
const Deployment = lazy(() => import("./pages/Deployment"));
const Executions = lazy(() => import("./pages/Executions"));
const Execution = lazy(() => import("./pages/Execution"));
const Pipelines = lazy(() => import("./pages/Pipelines"));
const Pipeline = lazy(() => import("./pages/Pipeline"));
const Users = lazy(() => import("./pages/Users"));
const Account = lazy(() => import("./pages/Account"));
const Keys = lazy(() => import("./pages/Keys"));
const Webhooks = lazy(() => import("./pages/Webhooks"));

const NAV: [string, string][] = [
  ["/fleet", "Fleet"], ["/flows", "Flows"], ["/deployments", "Deployments"],
  ["/executions", "Executions"], ["/pipelines", "Pipelines"],
];

function route(path: string, params: URLSearchParams, admin: boolean): ReactNode {
  let m;
  if (path === "/fleet") return <Fleet />;
  if ((m = match("/devices/:id", path))) return <Device id={m.id} />;
  if (path === "/flows") return <Flows />;
  if ((m = match("/flows/:id/compare", path))) return <Compare id={m.id} v1={params.get("v1")} v2={params.get("v2")} />;
  if ((m = match("/flows/:id/deploy", path))) return <Deploy id={m.id} />;
  if ((m = match("/flows/:id", path))) return <FlowEditor id={m.id} />;
  if (path === "/deployments") return <Deployments />;
  if ((m = match("/deployments/:id", path))) return <Deployment id={m.id} />;
  if (path === "/executions") return <Executions flow={params.get("flow")} />;
  if ((m = match("/executions/:id", path))) return <Execution id={m.id} />;
  if (path === "/pipelines") return <Pipelines />;
  if ((m = match("/pipelines/:id", path))) return <Pipeline id={m.id} />;
  if (path === "/account") return <Account />;
  if (path === "/users") return admin ? <Users /> : <p>Only an admin manages users. <Link to="/fleet">Go to the fleet</Link>.</p>;
  if (path === "/keys") return admin ? <Keys /> : <p>Only an admin manages API keys. <Link to="/fleet">Go to the fleet</Link>.</p>;
  if (path === "/webhooks") return admin ? <Webhooks /> : <p>Only an admin manages webhooks. <Link to="/fleet">Go to the fleet</Link>.</p>;
  return <p>No page at {path}. <Link to="/fleet">Go to the fleet</Link>.</p>;
}

/** A page that fails to render says so (and how to go on) instead of blanking the app. */
class PageBoundary extends Component<{ path: string; children: ReactNode }, { error: Error | null; path: string }> {
  state = { error: null as Error | null, path: this.props.path };
  static getDerivedStateFromError(error: Error) { return { error }; }
  static getDerivedStateFromProps(props: { path: string }, state: { error: Error | null; path: string }) {
    return props.path !== state.path ? { error: null, path: props.path } : null;
  }
  render() {
    if (this.state.error) {
      return <div className="error" role="alert"><strong>This page failed to show: {this.state.error.message}</strong>
        <p>Reload, or <a href="#/fleet">go to the fleet</a>.</p></div>;
    }
    return this.props.children;
  }
}

export default function App() {
  const session = useSession();
  const loc = useLocation();
  const [menu, setMenu] = useState(false);
  if (session.loading) return <p className="loading">Loading…</p>;
  if (!session.user) return <Login />;
  const section = "/" + loc.path.split("/")[1];
  const admin = allowed(session.user.role, "admin") && session.mode === "session";
  const nav: [string, string][] = [...NAV, ...(admin ? [["/users", "Users"], ["/keys", "Keys"], ["/webhooks", "Webhooks"]] as [string, string][] : [])];
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
          <Link to="/account" className="user" title={`your account: ${session.user.email}`}
                aria-current={section === "/account" ? "page" : undefined}>{session.user.email}</Link>
          <span className={`role role-${session.user.role}`}>{session.user.role}</span>
          <button type="button" onClick={() => session.logout()}>Log out</button>
        </div>
      </header>
      <main className="page">
        <PageBoundary path={loc.path}><Suspense fallback={<p className="loading">Loading…</p>}>{route(loc.path, loc.params, admin)}</Suspense></PageBoundary>
      </main>
    </>
  );
}
