import { describe, expect, it } from "vitest";
import { render, screen } from "@testing-library/react";
import { SseParser } from "./sse";
import { mergeDevice } from "./pages/Fleet";
import { allowed } from "./auth";
import { query } from "./api";
import { naturalCompare } from "./format";
import { Badge, ErrorBox, Pager } from "./components/common";
import { ApiError } from "./api";

describe("SseParser", () => {
  it("splits events across chunks, skips keepalive comments and keeps the last id", () => {
    const p = new SseParser();
    expect(p.feed("event: metadata\nid: 4\ndata: {\"id\":")).toEqual([]);
    const evs = p.feed("\"dep_1\"}\n\n: keepalive\n\nevent: update\ndata: {\"a\":1}\n\n");
    expect(evs).toEqual([
      { event: "metadata", id: "4", data: { id: "dep_1" } },
      { event: "update", id: null, data: { a: 1 } },
    ]);
    expect(p.lastId).toBe("4");
  });
  it("joins multi-line data and handles CRLF", () => {
    const p = new SseParser();
    expect(p.feed("data: one\r\ndata: two\r\n\r\n")).toEqual([{ event: "message", id: null, data: "one\ntwo" }]);
  });
});

describe("fleet rows", () => {
  const rows = [{ id: "a", board: "unix-sim", tags: [], online: false, state: "offline" },
                { id: "b", board: "unix-sim", tags: [], online: false, state: "offline" }];
  it("a device change updates only its row", () => {
    const out = mergeDevice(rows, { device: { id: "b", online: true, state: "online" } });
    expect(out[0]).toBe(rows[0]);
    expect(out[1]).toMatchObject({ id: "b", online: true, state: "online" });
  });
  it("a change for a device not on this page changes nothing", () => {
    expect(mergeDevice(rows, { device_id: "zz", online: true })).toBe(rows);
  });
  it("ids sort naturally", () => {
    expect(["node-10", "node-2", "node-1"].sort(naturalCompare)).toEqual(["node-1", "node-2", "node-10"]);
  });
});

describe("roles", () => {
  it("follows the keys' matrix", () => {
    expect(allowed("viewer", "operator")).toBe(false);
    expect(allowed("operator", "operator")).toBe(true);
    expect(allowed("operator", "admin")).toBe(false);
    expect(allowed("admin", "operator")).toBe(true);
    expect(allowed(undefined, "viewer")).toBe(false);
  });
});

describe("query", () => {
  it("leaves out empty values", () => {
    expect(query({ q: "", board: "unix-sim", online: null, limit: 25 })).toBe("?board=unix-sim&limit=25");
    expect(query({ q: "" })).toBe("");
  });
});

describe("components", () => {
  it("ErrorBox lists every problem with its pointer", () => {
    const e = new ApiError(422, { detail: "flow does not validate", errors: [
      { pointer: "/definition/nodes/0/config/pin", message: "missing required param 'pin'" }] });
    render(<ErrorBox error={e} />);
    expect(screen.getByRole("alert")).toHaveTextContent("422: flow does not validate");
    expect(screen.getByText("/definition/nodes/0/config/pin")).toBeInTheDocument();
  });
  it("Badge names the status without underscores", () => {
    render(<Badge status="rolled_back" />);
    expect(screen.getByText("rolled back")).toHaveAttribute("data-status", "rolled_back");
  });
  it("Pager disables what it cannot do", () => {
    render(<Pager hasPrev={false} hasNext={true} onPrev={() => {}} onNext={() => {}} />);
    expect(screen.getByRole("button", { name: /Previous/ })).toBeDisabled();
    expect(screen.getByRole("button", { name: /Next/ })).toBeEnabled();
  });
});
