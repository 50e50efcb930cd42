import { describe, expect, it, vi } from "vitest";
import { fireEvent, render, screen } from "@testing-library/react";
import { ReactFlow, ReactFlowProvider } from "@xyflow/react";
import { CATALOG, grouped } from "./catalog";
import {
  checkDefinition, checkParam, durationMs, mergeProblems, newNodeId, parseParam, placeProblems, problemCount,
} from "./flowmodel";
import ParamsForm from "./components/ParamsForm";
import { NODE_TYPES, ProblemsCtx, toDefinition, toRfEdges, toRfNodes } from "./pages/FlowEditor";
import { markNodes } from "./pages/Compare";
import { batchCount, configBody, HEALTH_DEFAULT, healthInWords } from "./strategies";
import { lacking, targetBody, targeted } from "./components/Targets";
import { applyUpdate, eventDetail, trialRuns, trialText } from "./pages/Deployment";
import { upsertRun } from "./pages/Pipeline";
import { overridesBody } from "./pages/Executions";

const dht = CATALOG.dht.params;
const spec = (name: string, type = "dht") => CATALOG[type].params.find((p) => p.name === name)!;

describe("catalog", () => {
  it("groups every node type as sensors, logic, outputs, maintenance", () => {
    const g = grouped();
    expect(g.map((x) => x.label)).toEqual(["Sensors", "Logic", "Outputs", "Maintenance"]);
    expect(g[0].types).toContain("dht");
    expect(g[1].types).toContain("switch");
    expect(g[2].types).toContain("mqtt_out");
    expect(g[3].types).toContain("set_log_level");
    expect(g.flatMap((x) => x.types).sort()).toEqual(Object.keys(CATALOG).sort());
  });
});

describe("params", () => {
  it("parses what a field holds into the body's value", () => {
    expect(parseParam(spec("pin"), "4")).toBe(4);
    expect(parseParam(spec("pin"), "")).toBeUndefined();
    expect(parseParam(spec("every"), "2s")).toBe("2s");
    expect(parseParam(spec("every"), "$period")).toBe("$period");
    expect(parseParam(spec("payload", "inject"), '{"a": 1}')).toEqual({ a: 1 });
    expect(durationMs("5m")).toBe(300000);
    expect(durationMs("nope")).toBeNull();
  });
  it("checks required, bounds, choices and variables as the catalog says", () => {
    expect(checkParam(spec("pin"), undefined, [])).toMatch(/required/);
    expect(checkParam(spec("every"), "1s", [])).toMatch(/2000 to 86400000 ms/);
    expect(checkParam(spec("every"), "2s", [])).toBeNull();
    expect(checkParam(spec("model"), "dht99", [])).toMatch(/one of dht22, dht11/);
    expect(checkParam(spec("retries"), 1.5, [])).toMatch(/whole number/);
    expect(checkParam(spec("every"), "$period", [])).toMatch(/not declared/);
    expect(checkParam(spec("every"), "$period", [{ name: "period", value: 5000 }])).toBeNull();
    expect(checkParam(spec("topic", "mqtt_out"), "a/#", [])).toMatch(/topic/);
  });
});

describe("problems", () => {
  it("places the API's pointers on the node and field they name", () => {
    const p = placeProblems([
      { pointer: "/definition/nodes/0/config/pin", message: "missing required param 'pin'" },
      { pointer: "/definition/nodes/1", message: "memory budget" },
      { pointer: "/definition/connections/0", message: "bad port" },
      { pointer: "/definition/variables/0/value", message: "not a number" },
      { pointer: "/name", message: "too long" },
    ], ["n1", "n2"]);
    expect(p.nodes.n1.fields.pin).toEqual(["missing required param 'pin'"]);
    expect(p.nodes.n2.node).toEqual(["memory budget"]);
    expect(p.connections[0]).toEqual(["bad port"]);
    expect(p.variables[0]).toEqual(["not a number"]);
    expect(p.other).toEqual(["/name: too long"]);
    expect(problemCount(p)).toBe(5);
  });
  it("places step-form pointers on the step", () => {
    const p = placeProblems([{ pointer: "/steps/1/params/level", message: "one of ..." }], ["s1", "s2"], "steps");
    expect(p.nodes.s2.fields.level).toEqual(["one of ..."]);
  });
  it("checks a definition as you edit, and merging keeps one copy of a message", () => {
    const def = {
      nodes: [{ id: "n1", type: "dht", config: {} }, { id: "n2", type: "nope", config: {} }, { id: "n3", type: "inject", config: {} }],
      connections: [{ source: "n2", target: "n3" }, { source: "n1", target: "n9" }],
      variables: [{ name: "9bad", value: 1 }],
    };
    const p = checkDefinition(def);
    expect(p.nodes.n1.fields.pin[0]).toMatch(/required/);
    expect(p.nodes.n2.node[0]).toMatch(/unknown node type nope/);
    expect(p.nodes.n3.node[0]).toMatch(/source takes no input/);
    expect(p.connections[1][0]).toMatch(/not there/);
    expect(p.variables[0][0]).toMatch(/name/);
    const twice = mergeProblems(p, placeProblems([{ pointer: "/definition/nodes/0/config/pin", message: "missing required param 'pin'" }], ["n1"]));
    expect(twice.nodes.n1.fields.pin).toEqual(["missing required param 'pin'"]); // the API's words win on a field
    expect(twice.nodes.n2.node[0]).toMatch(/unknown node type/);
  });
  it("gives new nodes the first free id", () => {
    expect(newNodeId([{ id: "n1" }, { id: "n3" }])).toBe("n2");
  });
});

describe("graph <-> definition", () => {
  it("round-trips nodes, ports and positions (x/y rounded), keeping retry fields", () => {
    const nodes = [{ id: "a", type: "switch", config: { op: "gt", value: 3 }, x: 10.4, y: 20.6, on_failure: "continue" },
                   { id: "b", type: "log", config: {}, name: "Log it" }];
    const conns = [{ source: "a", target: "b", port: 1 }];
    const def = toDefinition(toRfNodes(nodes), toRfEdges(conns), [{ name: "v", type: "number", value: "1" }]);
    expect(def.nodes[0]).toEqual({ id: "a", type: "switch", config: { op: "gt", value: 3 }, x: 10, y: 21, on_failure: "continue" });
    expect(def.nodes[1].name).toBe("Log it");
    expect(typeof def.nodes[1].x).toBe("number");
    expect(def.connections).toEqual([{ source: "a", target: "b", port: 1 }]);
    expect(def.variables).toEqual([{ name: "v", type: "number", value: "1" }]);
  });
  it("marks compare sides: added only on the new side, removed only on the old", () => {
    const diff = { nodes: { added: [{ id: "c" }], removed: [{ id: "a" }], changed: [{ id: "b", fields: ["config.x"], from: {}, to: {} }] },
                   connections: { added: [], removed: [] }, variables: { added: [], removed: [], changed: [] }, same: false };
    const old = markNodes({ nodes: [{ id: "a", type: "log", config: {} }, { id: "b", type: "log", config: {} }] }, diff, "old");
    const neu = markNodes({ nodes: [{ id: "b", type: "log", config: {} }, { id: "c", type: "log", config: {} }] }, diff, "new");
    expect(old.map((n) => n.data.diff)).toEqual(["removed", "changed"]);
    expect(neu.map((n) => n.data.diff)).toEqual(["changed", "added"]);
  });
});

describe("components", () => {
  it("ParamsForm builds a field per param with its default, bounds and problems", () => {
    const onChange = vi.fn();
    render(<ParamsForm node="n1" specs={dht} config={{ every: 5000 }} problems={{ pin: ["required: the GPIO pin number"] }} onChange={onChange} />);
    const pin = screen.getByLabelText(/^pin/);
    expect(pin).toHaveAttribute("aria-invalid", "true");
    expect(screen.getByRole("alert")).toHaveTextContent("required: the GPIO pin number");
    expect(screen.getByLabelText("model").tagName).toBe("SELECT");
    expect(screen.getByText(/2000 to 86400000 ms/)).toBeInTheDocument();
    fireEvent.change(pin, { target: { value: "4" } });
    expect(onChange).toHaveBeenCalledWith("pin", 4);
  });
  it("a node on the canvas shows its problem and one output per port", () => {
    const problems = placeProblems([{ pointer: "/definition/nodes/0/config/pin", message: "missing pin" }], ["n1", "n2"]);
    const { container } = render(
      <div style={{ width: 800, height: 600 }}>
        <ReactFlowProvider>
          <ProblemsCtx.Provider value={problems}>
            <ReactFlow nodes={toRfNodes([{ id: "n1", type: "dht", config: {} }, { id: "n2", type: "switch", config: {} }])} edges={[]} nodeTypes={NODE_TYPES} />
          </ProblemsCtx.Provider>
        </ReactFlowProvider>
      </div>,
    );
    const n1 = container.querySelector("[data-node-id=n1]")!;
    expect(n1.className).toContain("fnode-bad");
    expect(n1.textContent).toContain("pin: missing pin");
    const n2 = container.querySelector("[data-node-id=n2]")!;
    expect(n2.querySelectorAll(".react-flow__handle.source")).toHaveLength(2);
    expect(n1.querySelectorAll(".react-flow__handle.target")).toHaveLength(0); // a sensor takes no input
  });
});

describe("deploy", () => {
  it("sends only what differs from seed 001's defaults", () => {
    expect(configBody("rolling", {}, { ...HEALTH_DEFAULT })).toEqual({});
    expect(configBody("canary", { canary_percentage: "25", canary_delay: "30m", auto_rollback: false }, { runs: 2, seconds: 2, max_error_rate: 0.25 }))
      .toEqual({ canary_percentage: 25, auto_rollback: false, health: { runs: 2, seconds: 2, max_error_rate: 0.25 } });
    expect(configBody("rolling", { max_per_minute: "60", base_per_minute: "5", increment_factor: "1.5", min_executed: "" }, { ...HEALTH_DEFAULT }))
      .toEqual({ max_per_minute: 60, base_per_minute: 5, increment_factor: 1.5 });
    expect(configBody("blue_green", { max_per_minute: "60" }, { ...HEALTH_DEFAULT })).toEqual({});
    expect(healthInWords({ runs: 3, seconds: 30, max_error_rate: 0.25 })).toMatch(/3 runs.*25%.*30 s/);
  });
  it("counts batches as the engine plans them", () => {
    expect(batchCount("rolling", { batch_size: 10 }, 25)).toBe(3);
    expect(batchCount("canary", { canary_percentage: 10 }, 3)).toBe(2);
    expect(batchCount("canary", { canary_percentage: 10 }, 1)).toBe(1);
    expect(batchCount("all_at_once", {}, 5)).toBe(1);
  });
  it("previews targets by devices, tags and environment, or all, and who lacks a node", () => {
    const devs: any[] = [
      { id: "a", tags: ["x", "y"], environment: "prod", state: "online", types: ["dht", "log"] },
      { id: "b", tags: ["x"], environment: "dev", state: "never_seen", types: null },
    ];
    expect(targeted(devs, { mode: "tags", devices: [], tags: "x", environment: "" }).map((d) => d.id)).toEqual(["a", "b"]);
    expect(targeted(devs, { mode: "tags", devices: [], tags: "x, y", environment: "prod" }).map((d) => d.id)).toEqual(["a"]);
    expect(targeted(devs, { mode: "tags", devices: [], tags: "", environment: "" })).toEqual([]);
    expect(targeted(devs, { mode: "all", devices: [], tags: "", environment: "" })).toHaveLength(2);
    expect(targetBody({ mode: "tags", devices: [], tags: "x, y", environment: "prod" })).toEqual({ target_tags: ["x", "y"], environment: "prod" });
    expect(lacking(devs[0], ["dht", "pwm"])).toEqual(["pwm"]);
    expect(lacking(devs[1], ["dht"])).toBeNull();
  });
});

describe("live pages", () => {
  it("applies a deployment stream update to the document and its targets", () => {
    const doc = { status: "running", counts: { success: 0 }, targets: [{ device_id: "a", status: "pending", batch: 0 }, { device_id: "b", status: "pending", batch: 1 }] };
    const next = applyUpdate(doc, { deployment: { phase: "delay" }, targets: [{ device_id: "b", status: "deploying", ack: "received" }] });
    expect(next.phase).toBe("delay");
    expect(next.targets[1]).toMatchObject({ device_id: "b", status: "deploying", ack: "received", batch: 1 });
    expect(next.targets[0]).toBe(doc.targets[0]);
  });
  it("counts a trial down with its healthy runs, as the CLI words it", () => {
    expect(trialText({ runs: 3, seconds: 30 }, 2, 0, 12)).toBe("on trial: 2 of 3 healthy runs, 18 s left");
    expect(trialText({ runs: 3, seconds: 30 }, null, 0, -1)).toBe("on trial, 30 s left");
    expect(trialText({ runs: 3, seconds: 30 }, 1, 1, 31)).toBe("on trial: 1 of 3 healthy runs, 1 failed, time is up, waiting for 1 more run");
    const since = Date.parse("2026-01-01T00:00:10Z");
    const runs = [
      { flow: "f", ver: 2, status: "completed", received_at: "2026-01-01T00:00:12Z" },
      { flow: "f", ver: 2, status: "failed", received_at: "2026-01-01T00:00:14Z" },
      { flow: "f", ver: 2, status: "completed", received_at: "2026-01-01T00:00:15Z", exec: "exe_1" },
      { flow: "f", ver: 1, status: "completed", received_at: "2026-01-01T00:00:13Z" },
      { flow: "f", ver: 2, status: "completed", received_at: "2026-01-01T00:00:01Z" },
    ];
    expect(trialRuns(runs, "f", 2, since)).toEqual([1, 1]);
  });
  it("shows an event's detail on one line", () => {
    expect(eventDetail({ strategy: "canary", targets: 3 })).toBe("strategy: canary, targets: 3");
    expect(eventDetail(null)).toBe("");
  });
  it("keeps pipeline runs newest first, one copy each", () => {
    const runs = [{ id: "r1", created_at: "2026-01-01T00:00:01Z", status: "completed" }];
    const out = upsertRun(upsertRun(runs, { id: "r2", created_at: "2026-01-01T00:00:02Z", status: "running" }),
                          { id: "r2", created_at: "2026-01-01T00:00:02Z", status: "completed" });
    expect(out.map((r) => [r.id, r.status])).toEqual([["r2", "completed"], ["r1", "completed"]]);
  });
  it("sends only the overrides that were set", () => {
    expect(overridesBody({ threshold: "10", other: "" }, { n1: { every: undefined }, n2: { op: "lt" } }))
      .toEqual({ vars: { threshold: "10" }, params: { n2: { op: "lt" } } });
  });
});

describe("words", async () => {
  const { micros, selectorText } = await import("./pages/Device");
  it("node time and target selectors read as text", () => {
    expect(micros(12)).toBe("12 µs");
    expect(micros(2500)).toBe("2.5 ms");
    expect(selectorText({ all: false, environment: null, target_devices: ["sim-002"], target_tags: [] })).toBe("devices sim-002");
    expect(selectorText({ target_tags: ["a", "b"], environment: "prod" })).toBe("tagged a and b, in prod");
    expect(selectorText({ all: true })).toBe("every device");
  });
});
