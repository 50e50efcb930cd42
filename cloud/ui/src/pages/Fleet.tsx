// The fleet: search, filters, sort, server-side paging by the API's `next`,
// rows kept live from the fleet stream.

import { useEffect, useMemo, useRef, useState } from "react";
import { get, query } from "../api";
import { Badge, Empty, ErrorBox, LiveDot, Pager, usePages } from "../components/common";
import { ago } from "../format";
import { Link } from "../router";
import { openStream } from "../sse";

export interface Device {
  id: string;
  name?: string | null;
  board: string;
  tags: string[];
  environment?: string | null;
  online: boolean;
  state: string;
  last_seen?: string | null;
  flow?: string | null;
  ver?: number | null;
  slot?: string | null;
  trial?: boolean | null;
  heap?: number | null;
  fw?: string | null;
  health?: Record<string, any> | null;
}

export const BOARDS = ["esp32-devkitc", "rp2-pico-w", "unix-sim"];
const PAGE = 25;

interface Filters {
  q: string; board: string; tag: string; environment: string; online: string;
  flow: string; version: string; trial: string; sort: string;
}

const EMPTY: Filters = { q: "", board: "", tag: "", environment: "", online: "", flow: "", version: "", trial: "", sort: "id" };

/** Applies a device change from the fleet stream to a row (fields it carries win). */
export function mergeDevice(rows: Device[], change: any): Device[] {
  const dev = change?.device ?? change;
  const id = dev?.id ?? dev?.device_id;
  if (!id) return rows;
  let hit = false;
  const out = rows.map((r) => {
    if (r.id !== id) return r;
    hit = true;
    return { ...r, ...dev, id };
  });
  return hit ? out : rows;
}

export default function Fleet() {
  const [filters, setFilters] = useState<Filters>(EMPTY);
  const [applied, setApplied] = useState<Filters>(EMPTY);
  const [rows, setRows] = useState<Device[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [live, setLive] = useState("connecting");
  const first = useMemo(() => "/devices" + query({ ...applied, limit: PAGE }), [applied]);
  const paging = usePages(first);
  const shown = paging.url;
  const qTimer = useRef<ReturnType<typeof setTimeout> | null>(null);
  // On a phone the filters fold away behind one line; wide screens show them.
  const [wide] = useState(() => window.matchMedia?.("(min-width: 701px)").matches ?? true);
  const setCount = (Object.keys(EMPTY) as (keyof Filters)[]).filter((k) => k !== "q" && k !== "sort" && filters[k] !== "").length;

  useEffect(() => {
    let on = true;
    get(shown).then((page) => {
      if (!on) return;
      setRows(page.devices || []);
      setNext(page.next || null);
      setError(null);
    }, (e) => on && setError(e));
    return () => { on = false; };
  }, [shown]);

  useEffect(() => {
    const s = openStream("/streams/fleet", {
      onState: setLive,
      onEvent: (ev) => {
        if (ev.event.startsWith("device") || ev.data?.device || ev.data?.device_id) {
          setRows((r) => (r ? mergeDevice(r, ev.data) : r));
        }
      },
    });
    return () => s.close();
  }, []);

  function set<K extends keyof Filters>(k: K, v: string) {
    const f = { ...filters, [k]: v };
    setFilters(f);
    if (qTimer.current) clearTimeout(qTimer.current);
    // The search box waits for a pause in typing; the selects apply at once.
    qTimer.current = setTimeout(() => { setApplied(f); paging.reset(); }, k === "q" || k === "tag" || k === "environment" || k === "flow" || k === "version" ? 300 : 0);
  }

  return (
    <section>
      <div className="title-row">
        <h1>Fleet</h1>
        <LiveDot state={live} />
      </div>
      <form className="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <label className="grow">Search<input type="search" name="q" placeholder="id or name" value={filters.q}
                                            onChange={(e) => set("q", e.target.value)} /></label>
        <details className="more-filters" open={wide}>
          <summary>Filters{setCount ? ` (${setCount} set)` : ""}</summary>
          <div className="filters">
        <label>Board<select name="board" value={filters.board} onChange={(e) => set("board", e.target.value)}>
          <option value="">any</option>{BOARDS.map((b) => <option key={b}>{b}</option>)}</select></label>
        <label>Tag<input name="tag" value={filters.tag} onChange={(e) => set("tag", e.target.value)} /></label>
        <label>Environment<input name="environment" value={filters.environment}
                                 onChange={(e) => set("environment", e.target.value)} /></label>
        <label>Online<select name="online" value={filters.online} onChange={(e) => set("online", e.target.value)}>
          <option value="">any</option><option value="true">online</option><option value="false">offline</option></select></label>
        <label>Flow<input name="flow" placeholder="flow id" value={filters.flow} onChange={(e) => set("flow", e.target.value)} /></label>
        <label>Version<input name="version" inputMode="numeric" value={filters.version}
                             onChange={(e) => set("version", e.target.value)} /></label>
        <label>Trial<select name="trial" value={filters.trial} onChange={(e) => set("trial", e.target.value)}>
          <option value="">any</option><option value="true">on trial</option><option value="false">not on trial</option></select></label>
        <label>Sort<select name="sort" value={filters.sort} onChange={(e) => set("sort", e.target.value)}>
          <option value="id">id</option><option value="-id">id, descending</option><option value="name">name</option>
          <option value="-last_seen">last seen, newest</option><option value="last_seen">last seen, oldest</option></select></label>
          </div>
        </details>
      </form>
      <ErrorBox error={error} />
      {rows && rows.length === 0 && <Empty>No device matches. Devices appear once provisioned (<code>fleetflow devices provision</code> or <code>fleetflow sim</code>).</Empty>}
      {rows && rows.length > 0 && (
        <div className="table-wrap">
          <table className="cards">
            <thead><tr><th>Device</th><th>State</th><th>Board</th><th>Flow</th><th>Tags</th><th>Last seen</th></tr></thead>
            <tbody>
              {rows.map((d) => (
                <tr key={d.id} data-device={d.id}>
                  <td data-label="Device"><Link to={`/devices/${encodeURIComponent(d.id)}`}>{d.id}</Link>
                    {d.name && <div className="sub">{d.name}</div>}</td>
                  <td data-label="State"><Badge status={d.state} />{d.trial ? <Badge status="trial">trial</Badge> : null}</td>
                  <td data-label="Board">{d.board}</td>
                  <td data-label="Flow">{d.flow ? `${d.flow} v${d.ver ?? "?"}` : "—"}</td>
                  <td data-label="Tags">{(d.tags || []).join(", ") || "—"}{d.environment ? ` · ${d.environment}` : ""}</td>
                  <td data-label="Last seen">{ago(d.last_seen)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <Pager {...paging.pager(next)} label={`page ${paging.page}`} />
    </section>
  );
}
