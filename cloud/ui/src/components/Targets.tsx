// Choosing targets (devices, tags and environment, or all) with a preview of
// who is targeted, who is offline or never seen, and who lacks a node.

import { useEffect, useMemo, useState } from "react";
import { getAll } from "../api";
import { naturalCompare } from "../format";
import type { Device } from "../pages/Fleet";

export interface TargetChoice { mode: "devices" | "tags" | "all"; devices: string[]; tags: string; environment: string }

export const NO_TARGETS: TargetChoice = { mode: "devices", devices: [], tags: "", environment: "" };

export function targetBody(t: TargetChoice): Record<string, unknown> {
  if (t.mode === "all") return { all: true };
  if (t.mode === "devices") return { target_devices: t.devices };
  const body: Record<string, unknown> = {};
  const tags = t.tags.split(",").map((s) => s.trim()).filter(Boolean);
  if (tags.length) body.target_tags = tags;
  if (t.environment.trim()) body.environment = t.environment.trim();
  return body;
}

/** The devices a choice names, as the API picks them (docs/api.md, "Targets"). */
export function targeted(devices: Device[], t: TargetChoice): Device[] {
  if (t.mode === "all") return devices;
  if (t.mode === "devices") return devices.filter((d) => t.devices.includes(d.id));
  const tags = t.tags.split(",").map((s) => s.trim()).filter(Boolean);
  const env = t.environment.trim();
  if (!tags.length && !env) return [];
  return devices.filter((d) => tags.every((g) => (d.tags || []).includes(g)) && (!env || d.environment === env));
}

/** Node types a device lacks among `types`; null when it has not said which it has. */
export function lacking(d: Device & { types?: string[] | null }, types: string[]): string[] | null {
  if (!d.types) return null;
  return types.filter((t) => !d.types!.includes(t));
}

export interface Preview { targeted: number; missing: number }

export default function Targets({ value, onChange, types, onPreview }: {
  value: TargetChoice; onChange(t: TargetChoice): void; types: string[]; onPreview?(p: Preview): void;
}) {
  const [devices, setDevices] = useState<Device[]>([]);
  useEffect(() => { getAll<Device>("/devices?limit=1000", "devices", 5000).then((d) => setDevices(d.sort((a, b) => naturalCompare(a.id, b.id))), () => {}); }, []);
  const chosen = useMemo(() => targeted(devices, value), [devices, value]);
  const offline = chosen.filter((d) => d.state === "offline");
  const never = chosen.filter((d) => d.state === "never_seen");
  const missing = chosen.map((d) => [d.id, lacking(d as any, types)] as const).filter(([, m]) => m && m.length);
  const set = (patch: Partial<TargetChoice>) => onChange({ ...value, ...patch });
  useEffect(() => { onPreview?.({ targeted: chosen.length, missing: missing.length }); }, [chosen.length, missing.length]);
  return (
    <fieldset className="targets">
      <legend>Targets</legend>
      <div className="actions" role="radiogroup" aria-label="choose targets by">
        {(["devices", "tags", "all"] as const).map((m) => (
          <label key={m} className="check"><input type="radio" name="target-mode" value={m} checked={value.mode === m}
                                                   onChange={() => set({ mode: m })} />
            {m === "devices" ? "devices" : m === "tags" ? "tags and environment" : "every device"}</label>
        ))}
      </div>
      {value.mode === "devices" && (
        <div className="device-picks">
          <div className="actions">
            <button type="button" onClick={() => set({ devices: devices.map((d) => d.id) })}>Select all</button>
            <button type="button" onClick={() => set({ devices: [] })}>None</button>
          </div>
          <ul className="picks">{devices.map((d) => (
            <li key={d.id}><label className="check"><input type="checkbox" name="target-device" value={d.id} checked={value.devices.includes(d.id)}
                                                           onChange={(e) => set({ devices: e.target.checked ? [...value.devices, d.id] : value.devices.filter((x) => x !== d.id) })} />
              {d.id} <span className={`badge s-${d.state}`}>{d.state.replace("_", " ")}</span></label></li>))}
          </ul>
        </div>
      )}
      {value.mode === "tags" && (
        <div className="actions">
          <label>Tags (all of them, comma-separated)<input name="target-tags" value={value.tags} onChange={(e) => set({ tags: e.target.value })} /></label>
          <label>Environment<input name="target-environment" value={value.environment} onChange={(e) => set({ environment: e.target.value })} /></label>
        </div>
      )}
      <div className="preview" aria-live="polite" data-targeted={chosen.length}>
        <strong>{chosen.length} device{chosen.length === 1 ? "" : "s"} targeted</strong>
        {offline.length > 0 && <p className="warn">offline (they get it when they come back, or time out): {offline.map((d) => d.id).join(", ")}</p>}
        {never.length > 0 && <p className="warn">never seen: {never.map((d) => d.id).join(", ")}</p>}
        {missing.length > 0 && (
          <p className="bad" role="alert">lack a node this flow uses (the API refuses them): {missing.map(([id, m]) => `${id} (${m!.join(", ")})`).join("; ")}</p>
        )}
      </div>
    </fieldset>
  );
}
