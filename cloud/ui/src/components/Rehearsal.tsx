// A deployment's rehearsal on simulated twins (docs/api.md, "Rehearsal on
// simulated twins"): running, passed, or failed with its reason, and what
// it found per board and node.

import { Badge } from "./common";

export interface Finding { kind: string; node?: string | null; detail?: string; count?: number; runs?: number; board?: string }
export interface BoardResult {
  board: string; readings_replayed?: number; runs?: { candidate: number; baseline: number | null };
  errors?: { candidate: number; baseline: number | null }; flow_heap_bytes?: number | null; findings: Finding[];
}
export interface Rehearsal {
  status: "pending" | "running" | "passed" | "failed" | "off"; runs?: number | null; reason?: string | null;
  baseline?: { flow: string; version: number } | null; inputs_from?: string[]; boards?: BoardResult[];
  processes?: number; seconds?: number;
}

/** The findings that fail a rehearsal (cloud/engine/rehearsal.py's FAILING); the others are reported. */
export const FAILING = ["new_error", "memory", "budget", "heap"];

const KIND: Record<string, string> = {
  new_error: "new error", memory: "out of memory", budget: "budget hit", heap: "heap above the board's share",
  output_diff: "outputs differ",
};

/** One line for the state of a rehearsal. */
export function rehearsalSummary(r: Rehearsal): string {
  if (r.status === "pending") return "waits for the start: the deployment is rehearsed on simulated twins first";
  if (r.status === "running") return "rehearsing on simulated twins… the deployment starts by itself when it passes";
  const boards = r.boards || [];
  const runs = boards.reduce((n, b) => n + (b.runs?.candidate || 0), 0);
  const where = `${runs} run${runs === 1 ? "" : "s"} on ${boards.length} board${boards.length === 1 ? "" : "s"}` +
    (r.seconds != null ? ` in ${r.seconds} s` : "");
  if (r.status === "passed") return `passed: ${where}, no new error`;
  return `failed: ${(r.reason || "no reason given").replace(/^rehearsal: /, "")}${boards.length ? ` (${where})` : ""}`;
}

export default function RehearsalPanel({ rehearsal: r }: { rehearsal: Rehearsal | null | undefined }) {
  if (!r || r.status === "off") return null;
  const findings = (r.boards || []).flatMap((b) => b.findings.map((f) => ({ ...f, board: f.board || b.board })));
  return (
    <div className="card rehearsal" data-testid="rehearsal" data-status={r.status}>
      <h2>Rehearsal on simulated twins <Badge status={r.status} /></h2>
      <p className={r.status === "failed" ? "bad" : ""} role="status" aria-live="polite">{rehearsalSummary(r)}</p>
      {(r.status === "passed" || r.status === "failed") && (
        <p className="hint">
          {r.baseline ? `Compared with v${r.baseline.version}, which the targets run now` : "Nothing runs on the targets yet: no version to compare with"}
          {r.inputs_from?.length ? `, fed the readings ${r.inputs_from.join(", ")} recorded` : ", no recorded readings to replay"}.
        </p>
      )}
      {(r.boards || []).length > 0 && (
        <ul className="rehearsal-boards">{r.boards!.map((b) => (
          <li key={b.board} data-board={b.board}><strong>{b.board}</strong>: {b.runs?.candidate ?? 0} runs
            {b.runs?.baseline != null ? ` (running version: ${b.runs.baseline})` : ""}, {b.errors?.candidate ?? 0} node errors
            {b.errors?.baseline != null ? ` (running version: ${b.errors.baseline})` : ""}, {b.readings_replayed ?? 0} readings replayed</li>))}
        </ul>
      )}
      {findings.length > 0 && (
        <div className="table-wrap"><table className="cards" aria-label="rehearsal findings">
          <thead><tr><th>Board</th><th>Node</th><th>Finding</th><th>Detail</th><th>Runs</th></tr></thead>
          <tbody>{findings.map((f, i) => (
            <tr key={i} data-kind={f.kind} className={FAILING.includes(f.kind) ? "bad" : ""}>
              <td data-label="Board">{f.board}</td>
              <td data-label="Node">{f.node || "—"}</td>
              <td data-label="Finding">{KIND[f.kind] || f.kind}{FAILING.includes(f.kind) ? "" : " (reported)"}</td>
              <td data-label="Detail">{f.detail || "—"}</td>
              <td data-label="Runs">{f.count ?? "—"}{f.runs ? ` of ${f.runs}` : ""}</td>
            </tr>))}</tbody>
        </table></div>
      )}
    </div>
  );
}
