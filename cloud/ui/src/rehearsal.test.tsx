import { afterEach, describe, expect, it } from "vitest";
import { cleanup, render, screen, within } from "@testing-library/react";
import RehearsalPanel, { rehearsalSummary } from "./components/Rehearsal";
import type { Rehearsal } from "./components/Rehearsal";
import { applyUpdate } from "./pages/Deployment";
import { rehearseByDefault } from "./strategies";

const FAILED: Rehearsal = {
  status: "failed", runs: 20, reason: "rehearsal: new error: n2: KeyError: temperatur",
  baseline: { flow: "f1", version: 1 }, inputs_from: ["sim-001", "sim-002"], processes: 2, seconds: 1.4,
  boards: [{ board: "unix-sim", readings_replayed: 40, runs: { candidate: 20, baseline: 20 }, errors: { candidate: 20, baseline: 0 },
             findings: [{ kind: "new_error", node: "n2", detail: "KeyError: temperatur", count: 20, runs: 20, board: "unix-sim" },
                        { kind: "output_diff", node: "n3", detail: "3 of 20 outputs differ (tolerance 0.01)", count: 3, runs: 20, board: "unix-sim" }] }],
};

afterEach(cleanup);

describe("rehearsal", () => {
  it("is on by default as the API has it", () => {
    expect(rehearseByDefault("canary", 1)).toBe(true);
    expect(rehearseByDefault("rolling", 0)).toBe(true);
    expect(rehearseByDefault("blue_green", 3)).toBe(true);
    expect(rehearseByDefault("all_at_once", 1)).toBe(false);
    expect(rehearseByDefault("all_at_once", 2)).toBe(true);
  });

  it("shows nothing for a deployment that does not rehearse", () => {
    const { container } = render(<RehearsalPanel rehearsal={null} />);
    expect(container).toBeEmptyDOMElement();
  });

  it("says it is running, then passed", () => {
    const { rerender } = render(<RehearsalPanel rehearsal={{ status: "running", runs: 20 }} />);
    expect(screen.getByRole("status")).toHaveTextContent("rehearsing on simulated twins");
    expect(screen.getByTestId("rehearsal")).toHaveAttribute("data-status", "running");
    rerender(<RehearsalPanel rehearsal={{ status: "passed", runs: 20, baseline: null, inputs_from: [], seconds: 0.8,
      boards: [{ board: "unix-sim", readings_replayed: 0, runs: { candidate: 20, baseline: null }, errors: { candidate: 0, baseline: null }, findings: [] }] }} />);
    expect(screen.getByRole("status")).toHaveTextContent("passed: 20 runs on 1 board in 0.8 s, no new error");
    expect(screen.getByText(/Nothing runs on the targets yet/)).toBeInTheDocument();
    expect(screen.queryByRole("table")).toBeNull();
  });

  it("a failure gives its reason and each finding by board and node, the failing ones marked", () => {
    render(<RehearsalPanel rehearsal={FAILED} />);
    expect(screen.getByRole("status")).toHaveTextContent("failed: new error: n2: KeyError: temperatur (20 runs on 1 board in 1.4 s)");
    expect(screen.getByText(/Compared with v1, which the targets run now, fed the readings sim-001, sim-002 recorded/)).toBeInTheDocument();
    const rows = within(screen.getByRole("table", { name: "rehearsal findings" })).getAllByRole("row").slice(1);
    expect(rows).toHaveLength(2);
    expect(rows[0]).toHaveTextContent("unix-sim");
    expect(rows[0]).toHaveTextContent("n2");
    expect(rows[0]).toHaveTextContent("new error");
    expect(rows[0]).toHaveTextContent("KeyError: temperatur");
    expect(rows[0]).toHaveClass("bad");
    expect(rows[1]).toHaveTextContent("outputs differ (reported)");
    expect(rows[1]).not.toHaveClass("bad");
    expect(screen.getByText("unix-sim", { selector: "strong" }).parentElement).toHaveTextContent("20 node errors (running version: 0)");
  });

  it("the stream's update replaces the rehearsal on the live page", () => {
    const doc = { id: "dep_1", status: "pending", phase: "rehearsal", rehearsal: { status: "running", runs: 20 }, targets: [] };
    const next = applyUpdate(doc, { deployment: { rehearsal: FAILED, status: "failed", reason: FAILED.reason }, targets: [] });
    expect(next.rehearsal.status).toBe("failed");
    expect(rehearsalSummary(next.rehearsal)).toMatch(/^failed: new error: n2/);
  });
});
