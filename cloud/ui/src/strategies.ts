// Deployment strategies and their settings with seed 001's defaults
// (docs/api.md, "Deployments"); durations as "30m", percentages as numbers.

export type Strategy = "all_at_once" | "rolling" | "canary" | "blue_green";

export interface Setting {
  key: string;
  label: string;
  kind: "duration" | "percent" | "int" | "bool";
  default: string | number | boolean;
  help: string;
}

const timeout = (d: string): Setting => ({ key: "timeout", label: "Timeout", kind: "duration", default: d,
  help: "no device stays deploying longer than this from when its command was sent" });
const autoRollback: Setting = { key: "auto_rollback", label: "Auto-rollback", kind: "bool", default: true,
  help: "a failed deployment rolls back every device that may run the new version" };
const healthCheck: Setting = { key: "health_check", label: "Health check", kind: "bool", default: true,
  help: "each device runs the new flow on trial and keeps it only once healthy (the rule below)" };
const threshold = (what: string): Setting => ({ key: "failure_threshold", label: "Failure threshold (%)", kind: "percent",
  default: 20, help: `${what} fails when more than this share of it fails (exactly at it passes)` });

export const STRATEGIES: Record<Strategy, { label: string; about: string; settings: Setting[] }> = {
  all_at_once: {
    label: "All at once", about: "Every target at the same time. For small fleets or non-critical updates.",
    settings: [timeout("30m"), autoRollback, healthCheck,
      { ...threshold("The deployment"), default: 0 }],
  },
  rolling: {
    label: "Rolling", about: "Batch after batch, waiting between them; a batch over the failure threshold stops it.",
    settings: [
      { key: "batch_size", label: "Batch size", kind: "int", default: 10, help: "devices per batch" },
      { key: "batch_delay", label: "Batch delay", kind: "duration", default: "5m", help: "wait after a batch settles, watching it, before the next" },
      threshold("A batch"), timeout("30m"), autoRollback, healthCheck],
  },
  canary: {
    label: "Canary", about: "A small share first; after the watch time, the rest. Any canary failure rolls everything back.",
    settings: [
      { key: "canary_percentage", label: "Canary share (%)", kind: "percent", default: 10, help: "of the targets, at least one device" },
      { key: "canary_delay", label: "Canary watch time", kind: "duration", default: "30m", help: "how long the canaries run before the rest get it" },
      threshold("The rest"), timeout("2h"), autoRollback, healthCheck],
  },
  blue_green: {
    label: "Blue-green", about: "Stage the new flow everywhere beside the running one, wait, then switch all at once; any failure switches back.",
    settings: [
      { key: "switch_delay", label: "Switch delay", kind: "duration", default: "10m", help: "wait after every device has staged it" },
      timeout("1h"), autoRollback, healthCheck],
  },
};

/** Rate control (all but blue-green): unset by default, so only sent when filled in. */
export const RATE: Setting[] = [
  { key: "max_per_minute", label: "At most per minute", kind: "int", default: "", help: "deploys a minute; targets not sent yet stay pending" },
  { key: "base_per_minute", label: "Ramp: start per minute", kind: "int", default: "", help: "an exponential ramp starts at this rate (at most the maximum)" },
  { key: "increment_factor", label: "Ramp: factor", kind: "int", default: "", help: "multiplied by this (above 1, at most 5; default 2)…" },
  { key: "increment_after_successes", label: "Ramp: after successes", kind: "int", default: "", help: "…after every this many successful targets (default 10)" },
  { key: "min_executed", label: "Judge after", kind: "int", default: "", help: "judge the failure threshold over all finished targets once this many have, not batch by batch" },
];

export const HEALTH_DEFAULT = { runs: 3, seconds: 30, max_error_rate: 0.25 };

export function healthInWords(h: { runs: number; seconds: number; max_error_rate: number }): string {
  return `On trial, a device decides nothing before ${h.runs} run${h.runs === 1 ? "" : "s"} of the new flow; ` +
    `then more than ${Math.round(h.max_error_rate * 100)}% failed runs rolls it back at once, and otherwise ` +
    `it keeps the new flow once ${h.seconds} s have passed since it started it (and it is connected).`;
}

/** The config body for the chosen strategy: only what differs from the defaults. */
export function configBody(strategy: Strategy, values: Record<string, unknown>, health: Record<string, number>) {
  const out: Record<string, unknown> = {};
  for (const s of [...STRATEGIES[strategy].settings, ...(strategy === "blue_green" ? [] : RATE)]) {
    const v = values[s.key];
    if (v === undefined || v === "" || v === s.default) continue;
    out[s.key] = s.kind === "int" || s.kind === "percent" ? Number(v) : v;
  }
  if (health.runs !== HEALTH_DEFAULT.runs || health.seconds !== HEALTH_DEFAULT.seconds ||
      health.max_error_rate !== HEALTH_DEFAULT.max_error_rate) out.health = { ...health };
  return out;
}

/** How many batches a deployment of `total` targets makes (cloud/engine/decide.py, plan_batches). */
export function batchCount(strategy: string, settings: Record<string, any>, total: number): number {
  if (total <= 0) return 0;
  if (strategy === "rolling") return Math.ceil(total / (settings.batch_size || 10));
  if (strategy === "canary") {
    const canaries = Math.min(total, Math.max(1, Math.ceil((total * (settings.canary_percentage ?? 10)) / 100)));
    return canaries < total ? 2 : 1;
  }
  return 1;
}

/** Whether the API rehearses a deployment on simulated twins when the body does not say
 * (cloud/engine/rehearsal.py, `wanted`): on for canary, rolling and blue-green, and for
 * all at once on more than one device. */
export function rehearseByDefault(strategy: Strategy, targeted: number): boolean {
  return strategy !== "all_at_once" || targeted > 1;
}

export const REHEARSAL_RUNS_DEFAULT = 20;
