// The one way the dashboard talks to the cloud: /api/v1, problem+json errors,
// the session cookie (with its CSRF header) or an API key, paging by `next`.

export const API = "/api/v1";

export interface Problem {
  pointer: string;
  message: string;
  boards?: string[];
}

export class ApiError extends Error {
  status: number;
  title: string;
  problems: Problem[];
  body: Record<string, unknown>;
  constructor(status: number, body: Record<string, unknown>) {
    const detail = (body.detail as string) || (body.title as string) || `HTTP ${status}`;
    super(detail);
    this.status = status;
    this.title = (body.title as string) || "";
    this.problems = Array.isArray(body.errors) ? (body.errors as Problem[]) : [];
    this.body = body;
  }
}

const KEY_STORE = "fleetflow-api-key";

export function apiKey(): string | null {
  return sessionStorage.getItem(KEY_STORE);
}

export function setApiKey(key: string | null) {
  if (key) sessionStorage.setItem(KEY_STORE, key);
  else sessionStorage.removeItem(KEY_STORE);
}

export function cookie(name: string): string | null {
  for (const part of document.cookie.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return decodeURIComponent(v.join("="));
  }
  return null;
}

export function authHeaders(method = "GET"): Record<string, string> {
  const headers: Record<string, string> = {};
  const key = apiKey();
  if (key) headers["x-api-key"] = key;
  else if (method !== "GET" && method !== "HEAD") {
    const csrf = cookie("ff_csrf");
    if (csrf) headers["X-CSRF-Token"] = csrf;
  }
  return headers;
}

// Called once when a request comes back 401 (the session expired): a
// successful refresh makes the request go again; `onUnauthorized` sends the
// user to the login page.
let refresher: (() => Promise<boolean>) | null = null;
let onUnauthorized: (() => void) | null = null;

export function setSessionHooks(refresh: () => Promise<boolean>, unauthorized: () => void) {
  refresher = refresh;
  onUnauthorized = unauthorized;
}

export function apiPath(path: string): string {
  return path.startsWith(API) ? path : API + path;
}

export async function request<T = any>(method: string, path: string, body?: unknown,
                                        extra: Record<string, string> = {}, retried = false): Promise<T> {
  const headers: Record<string, string> = { ...authHeaders(method), ...extra };
  if (body !== undefined) headers["content-type"] = "application/json";
  const resp = await fetch(apiPath(path), {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (resp.status === 401 && !retried && !path.startsWith("/auth/") && refresher) {
    if (await refresher()) return request<T>(method, path, body, extra, true);
    onUnauthorized?.();
  }
  if (resp.status === 204) return undefined as T;
  const text = await resp.text();
  let data: any = {};
  if (text) {
    try { data = JSON.parse(text); } catch { data = { detail: text.slice(0, 200) }; }
  }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data as T;
}

export const get = <T = any>(path: string) => request<T>("GET", path);
export const post = <T = any>(path: string, body?: unknown, headers?: Record<string, string>) =>
  request<T>("POST", path, body, headers);
export const put = <T = any>(path: string, body?: unknown) => request<T>("PUT", path, body);
export const patch = <T = any>(path: string, body?: unknown) => request<T>("PATCH", path, body);
export const del = <T = any>(path: string) => request<T>("DELETE", path);

/** Every item of a paged list: follows `next` until it is null. */
export async function getAll<T = any>(path: string, name: string, max = 10000): Promise<T[]> {
  let page = await get(path);
  const items: T[] = [...(page[name] || [])];
  while (page.next && items.length < max) {
    page = await get(page.next);
    items.push(...(page[name] || []));
  }
  return items;
}

/** A query string from the set values of `params` (empty ones left out). */
export function query(params: Record<string, string | number | boolean | null | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? "?" + s : "";
}

/** A key for the Idempotency-Key header of creating POSTs: a retried click never makes two. */
export function idempotencyKey(): string {
  const a = new Uint8Array(12);
  crypto.getRandomValues(a);
  return "ui-" + Array.from(a, (b) => b.toString(16).padStart(2, "0")).join("");
}
