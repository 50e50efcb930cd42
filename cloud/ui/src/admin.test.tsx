import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import Keys from "./pages/Keys";
import Webhooks, { eventList } from "./pages/Webhooks";

afterEach(() => { cleanup(); vi.unstubAllGlobals(); });

/** A scripted API: each call's method and path in `calls`, answered by `answer`. */
function api(answer: (method: string, url: string, body: any) => unknown) {
  const calls: string[] = [];
  vi.stubGlobal("fetch", vi.fn(async (url: string, init: RequestInit = {}) => {
    const method = init.method || "GET";
    calls.push(`${method} ${url}`);
    const out = answer(method, url, init.body ? JSON.parse(init.body as string) : null);
    return out === undefined ? new Response(null, { status: 204 }) : new Response(JSON.stringify(out), { status: 200 });
  }));
  return calls;
}

describe("admin pages", () => {
  it("webhook events: names, prefixes or * by default", () => {
    expect(eventList("deployment., execution.failed")).toEqual(["deployment.", "execution.failed"]);
    expect(eventList("  ")).toEqual(["*"]);
  });

  it("a new key's secret is shown once; a revoked key cannot be revoked again", async () => {
    let keys = [{ id: 1, name: "ci", role: "operator", prefix: "ffk_ab", created_at: null, revoked: false }];
    const calls = api((method, url, body) => {
      if (method === "GET") return { keys, next: null };
      if (url === "/api/v1/keys") {
        keys = [...keys, { id: 2, name: body.name, role: body.role, prefix: "ffk_cd", created_at: null, revoked: false }];
        return { ...keys[1], key: "ffk_cd-the-whole-secret" };
      }
      keys = keys.map((k) => (url.endsWith(`/keys/${k.id}/revoke`) ? { ...k, revoked: true } : k));
      return keys[0];
    });
    vi.stubGlobal("confirm", vi.fn(() => true));
    render(<Keys />);
    expect(await screen.findByText("ci")).toBeInTheDocument();
    fireEvent.change(screen.getByLabelText("Name"), { target: { value: "grafana" } });
    fireEvent.change(screen.getByLabelText("Role"), { target: { value: "viewer" } });
    fireEvent.click(screen.getByRole("button", { name: "Create key" }));
    expect(await screen.findByTestId("new-key")).toHaveTextContent("ffk_cd-the-whole-secret");
    expect(await screen.findByText("grafana")).toBeInTheDocument();
    fireEvent.click(screen.getByRole("button", { name: "revoke key ci" }));
    await waitFor(() => expect(screen.queryByRole("button", { name: "revoke key ci" })).toBeNull());
    expect(calls).toContain("POST /api/v1/keys/1/revoke");
    fireEvent.click(screen.getByRole("button", { name: "Done" }));
    expect(screen.queryByText("ffk_cd-the-whole-secret")).toBeNull();
  });

  it("a webhook is added with its events, its secret shown once, and removed", async () => {
    let hooks: any[] = [];
    const calls = api((method, _url, body) => {
      if (method === "GET") return { webhooks: hooks, next: null };
      if (method === "POST") { hooks = [{ id: 7, url: body.url, events: body.events, active: true, created_at: null }]; return { ...hooks[0], secret: "whsec_abc" }; }
      hooks = [];
      return undefined;
    });
    vi.stubGlobal("confirm", vi.fn(() => true));
    render(<Webhooks />);
    expect(await screen.findByText("No webhook yet.")).toBeInTheDocument();
    fireEvent.change(screen.getByLabelText("URL"), { target: { value: "https://example.com/h" } });
    fireEvent.change(screen.getByLabelText("Events"), { target: { value: "deployment., pipeline_run.failed" } });
    fireEvent.click(screen.getByRole("button", { name: "Add webhook" }));
    expect(await screen.findByTestId("new-webhook")).toHaveTextContent("whsec_abc");
    expect(await screen.findByText("events deployment., pipeline_run.failed", { exact: false })).toBeInTheDocument();
    fireEvent.click(screen.getByRole("button", { name: "remove webhook https://example.com/h" }));
    expect(await screen.findByText("No webhook yet.")).toBeInTheDocument();
    expect(calls).toContain("DELETE /api/v1/webhooks/7");
  });
});
