import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { SessionProvider } from "./auth";
import Pipeline from "./pages/Pipeline";
import { choiceOf, PipelineForm } from "./pages/Pipelines";
import { targetBody } from "./components/Targets";

afterEach(() => { cleanup(); vi.unstubAllGlobals(); });

const PIPE = {
  id: "pl_1", name: "nightly", description: "clean then report", targets: { target_tags: ["lab"], environment: "prod" },
  steps: [{ flow_id: "f1", flow_name: "clear", on_failure: "stop", manual: false },
          { flow_id: "f_old", flow_name: "archived one", on_failure: "stop", manual: true }],
};

describe("pipeline form", () => {
  it("turns stored targets back into the form's choice", () => {
    for (const t of [{ all: true }, { target_devices: ["a", "b"] }, { target_tags: ["lab", "x"], environment: "prod" }]) {
      expect(targetBody(choiceOf(t))).toEqual(t);
    }
    expect(choiceOf(null).mode).toBe("all");
  });

  it("edits a pipeline prefilled, and saves by PATCH with the whole step list", async () => {
    const calls: { url: string; method: string; body: any }[] = [];
    vi.stubGlobal("fetch", vi.fn(async (url: string, init: RequestInit = {}) => {
      calls.push({ url, method: init.method || "GET", body: init.body ? JSON.parse(init.body as string) : null });
      if (url.startsWith("/api/v1/flows")) return new Response(JSON.stringify({ flows: [{ id: "f1", name: "clear" }], next: null }));
      if (url.startsWith("/api/v1/devices")) return new Response(JSON.stringify({ devices: [], next: null }));
      return new Response(JSON.stringify({ ...PIPE, name: "nightly 2" }));
    }));
    const saved = vi.fn();
    render(<PipelineForm pipeline={PIPE} onSaved={saved} onCancel={() => {}} />);
    expect(screen.getByLabelText("Name")).toHaveValue("nightly");
    expect(screen.getByLabelText("Description")).toHaveValue("clean then report");
    expect(screen.getByLabelText("Tags (all of them, comma-separated)")).toHaveValue("lab");
    // a step's flow that is no longer in the published list is still shown by name
    expect(screen.getByLabelText("step 2 flow")).toHaveDisplayValue("archived one");
    await screen.findByRole("option", { name: "clear" });
    fireEvent.change(screen.getByLabelText("Name"), { target: { value: "nightly 2" } });
    fireEvent.change(screen.getByLabelText("step 1 on failure"), { target: { value: "continue" } });
    fireEvent.click(screen.getByRole("button", { name: "Save changes" }));
    await waitFor(() => expect(saved).toHaveBeenCalled());
    const sent = calls.find((c) => c.method === "PATCH")!;
    expect(sent.url).toBe("/api/v1/pipelines/pl_1");
    expect(sent.body).toEqual({
      name: "nightly 2", description: "clean then report", targets: { target_tags: ["lab"], environment: "prod" },
      steps: [{ flow_id: "f1", on_failure: "continue", manual: false }, { flow_id: "f_old", on_failure: "stop", manual: true }],
    });
    expect(saved.mock.calls[0][0].name).toBe("nightly 2");
  });
});

const COUNTS = { total: 0, completed: 0, failed: 0, running: 0 };

/** The pipeline page's API: GET the pipeline, and its stream sending `events`
 * a moment later, as a server does (then it stays open). */
function pipelineApi(events: [string, unknown][]) {
  vi.stubGlobal("fetch", vi.fn(async (url: string) => {
    if (url.endsWith("/stream")) {
      const text = events.map(([name, data], i) => `id: ${i + 1}\nevent: ${name}\ndata: ${JSON.stringify(data)}\n\n`).join("");
      const body = new ReadableStream({ start(c) { setTimeout(() => c.enqueue(new TextEncoder().encode(text)), 50); } });
      return new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } });
    }
    return new Response(JSON.stringify({ ...PIPE, runs: COUNTS }));
  }));
}

describe("pipeline page, live", () => {
  it("shows an edit made elsewhere as its stream tells it", async () => {
    pipelineApi([["metadata", { pipeline: { ...PIPE, runs: COUNTS }, runs: [] }],
                 ["pipeline", { pipeline: { ...PIPE, name: "nightly, renamed", runs: COUNTS } }]]);
    render(<SessionProvider><Pipeline id="pl_1" /></SessionProvider>);
    expect(await screen.findByRole("heading", { name: "nightly, renamed" })).toBeInTheDocument();
  });

  it("says so when the pipeline is deleted elsewhere", async () => {
    pipelineApi([["metadata", { pipeline: { ...PIPE, runs: COUNTS }, runs: [] }], ["deleted", { id: "pl_1" }]]);
    render(<SessionProvider><Pipeline id="pl_1" /></SessionProvider>);
    expect(await screen.findByText(/This pipeline was deleted/)).toBeInTheDocument();
    expect(screen.getByRole("link", { name: "All pipelines" })).toHaveAttribute("href", "#/pipelines");
  });
});
