import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiError, getAll, request, setApiKey, setSessionHooks } from "./api";

// The server's answers are scripted here to inject the faults on purpose
// (an expired session, a refused refresh); the real server is in tests/ui.
function script(answers: [number, unknown][]) {
  const calls: { url: string; init: RequestInit }[] = [];
  vi.stubGlobal("fetch", vi.fn(async (url: string, init: RequestInit) => {
    calls.push({ url, init });
    const [status, body] = answers.shift()!;
    return new Response(body === undefined ? null : JSON.stringify(body), { status });
  }));
  return calls;
}

afterEach(() => {
  vi.unstubAllGlobals();
  setApiKey(null);
  document.cookie = "ff_csrf=; expires=Thu, 01 Jan 1970 00:00:00 GMT";
});

describe("request", () => {
  it("sends the CSRF cookie's value on a change, not on a read", async () => {
    document.cookie = "ff_csrf=tok123";
    const calls = script([[200, { ok: 1 }], [201, { id: "f" }]]);
    await request("GET", "/flows");
    await request("POST", "/flows", { name: "x" });
    expect((calls[0].init.headers as any)["X-CSRF-Token"]).toBeUndefined();
    expect((calls[1].init.headers as any)["X-CSRF-Token"]).toBe("tok123");
    expect(calls[1].init.credentials).toBe("same-origin");
  });
  it("an API key goes as x-api-key and needs no CSRF header", async () => {
    setApiKey("ffk_abc");
    document.cookie = "ff_csrf=tok123";
    const calls = script([[201, {}]]);
    await request("POST", "/flows", {});
    expect(calls[0].init.headers).toMatchObject({ "x-api-key": "ffk_abc" });
    expect((calls[0].init.headers as any)["X-CSRF-Token"]).toBeUndefined();
  });
  it("an expired session is refreshed once and the request goes again", async () => {
    const refresh = vi.fn(async () => true);
    const gone = vi.fn();
    setSessionHooks(refresh, gone);
    const calls = script([[401, { detail: "session expired" }], [200, { devices: [] }]]);
    expect(await request("GET", "/devices")).toEqual({ devices: [] });
    expect(refresh).toHaveBeenCalledTimes(1);
    expect(gone).not.toHaveBeenCalled();
    expect(calls).toHaveLength(2);
  });
  it("a refused refresh sends the user to the login page with the API's error", async () => {
    const gone = vi.fn();
    setSessionHooks(async () => false, gone);
    script([[401, { detail: "session expired", status: 401 }]]);
    await expect(request("GET", "/devices")).rejects.toMatchObject({ status: 401, message: "session expired" });
    expect(gone).toHaveBeenCalledTimes(1);
  });
  it("problem+json errors keep every problem's pointer", async () => {
    script([[422, { detail: "bad", errors: [{ pointer: "/definition/nodes/0/config/pin", message: "missing" }] }]]);
    const err = await request("POST", "/flows/f/publish").catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.problems[0].pointer).toBe("/definition/nodes/0/config/pin");
  });
  it("getAll follows next until it is null", async () => {
    const calls = script([[200, { flows: [1, 2], next: "/api/v1/flows?cursor=a" }], [200, { flows: [3], next: null }]]);
    expect(await getAll("/flows", "flows")).toEqual([1, 2, 3]);
    expect(calls[1].url).toBe("/api/v1/flows?cursor=a");
  });
});
