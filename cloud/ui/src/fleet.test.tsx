import { afterEach, describe, expect, it, vi } from "vitest";
import { fireEvent, render, screen, waitFor } from "@testing-library/react";
import Fleet from "./pages/Fleet";

// The server is scripted by URL (pages of devices; no fleet stream: a 404),
// to check the pager follows the API's `next` and goes back.
function server(pages: Record<string, unknown>) {
  const seen: string[] = [];
  vi.stubGlobal("fetch", vi.fn(async (url: string) => {
    seen.push(url);
    const body = pages[url];
    return body ? new Response(JSON.stringify(body), { status: 200 }) : new Response("{}", { status: 404 });
  }));
  return seen;
}

const dev = (id: string) => ({ id, board: "unix-sim", tags: [], online: true, state: "online", last_seen: null });

afterEach(() => vi.unstubAllGlobals());

describe("Fleet", () => {
  it("pages by the API's next and back, and a filter starts again from page 1", async () => {
    const seen = server({
      "/api/v1/devices?sort=id&limit=25": { devices: [dev("node-1"), dev("node-2")], next: "/api/v1/devices?limit=25&cursor=c1" },
      "/api/v1/devices?limit=25&cursor=c1": { devices: [dev("node-10")], next: null },
      "/api/v1/devices?board=esp32-devkitc&sort=id&limit=25": { devices: [], next: null },
    });
    render(<Fleet />);
    expect(await screen.findByText("node-2")).toBeInTheDocument();
    expect(screen.getByRole("button", { name: /Previous/ })).toBeDisabled();
    fireEvent.click(screen.getByRole("button", { name: /Next/ }));
    expect(await screen.findByText("node-10")).toBeInTheDocument();
    expect(screen.getByText("page 2")).toBeInTheDocument();
    expect(screen.getByRole("button", { name: /Next/ })).toBeDisabled();
    fireEvent.click(screen.getByRole("button", { name: /Previous/ }));
    expect(await screen.findByText("node-1")).toBeInTheDocument();
    fireEvent.change(screen.getByLabelText("Board"), { target: { value: "esp32-devkitc" } });
    expect(await screen.findByText(/No device matches/)).toBeInTheDocument();
    await waitFor(() => expect(screen.getByText("no live stream")).toBeInTheDocument());
    expect(seen).toContain("/api/v1/streams/fleet");
  });
});
