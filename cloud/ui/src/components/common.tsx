// Pieces every page uses: a status badge, an error box, a pager, a loader.

import { useCallback, useEffect, useState } from "react";
import type { ReactNode } from "react";
import { ApiError } from "../api";

export function Badge({ status, children }: { status: string | null | undefined; children?: ReactNode }) {
  const s = status || "unknown";
  return <span className={`badge s-${s}`} data-status={s}>{children ?? s.replace(/_/g, " ")}</span>;
}

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const e = error as Error;
  const problems = error instanceof ApiError ? error.problems : [];
  return (
    <div className="error" role="alert">
      <strong>{error instanceof ApiError && error.status ? `${error.status}: ` : ""}{e.message}</strong>
      {problems.length > 0 && (
        <ul>{problems.map((p, i) => <li key={i}><code>{p.pointer}</code> {p.message}</li>)}</ul>
      )}
    </div>
  );
}

/** Loads `fn()` on mount and whenever `deps` change; `reload()` loads again. */
export function useLoad<T>(fn: () => Promise<T>, deps: unknown[]) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setLoading(true);
    fn().then((d) => { if (live) { setData(d); setError(null); } },
              (e) => { if (live) setError(e); })
      .finally(() => { if (live) setLoading(false); });
    return () => { live = false; };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, setData, error, loading, reload };
}

/** Runs an action with a busy flag and its error kept for display. */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const run = useCallback(async <T,>(fn: () => Promise<T>): Promise<T | undefined> => {
    setBusy(true);
    setError(null);
    try {
      return await fn();
    } catch (e) {
      setError(e);
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, setError, run };
}

/** Paging by the API's `next` links: `url` is the page shown (`first` until
 * Next is pressed), `reset()` goes back to page 1 (a filter changed), and
 * `pager(next)` gives <Pager> its props, `page` is the page's number; the pages before are kept for Previous. */
export function usePages(first: string) {
  const [pages, setPages] = useState<string[]>([]);
  const [url, setUrl] = useState("");
  const shown = url || first;
  return {
    url: shown,
    page: pages.length + 1,
    reset() { setPages([]); setUrl(""); },
    pager(next: string | null | undefined) {
      return {
        hasPrev: pages.length > 0, hasNext: !!next,
        onPrev() { const p = [...pages]; setUrl(p.pop() ?? ""); setPages(p); },
        onNext() { if (next) { setPages([...pages, shown]); setUrl(next); } },
      };
    },
  };
}

export function Pager({ hasPrev, hasNext, onPrev, onNext, label }: {
  hasPrev: boolean; hasNext: boolean; onPrev(): void; onNext(): void; label?: string;
}) {
  return (
    <nav className="pager" aria-label="pages">
      <button type="button" onClick={onPrev} disabled={!hasPrev}>← Previous</button>
      {label && <span>{label}</span>}
      <button type="button" onClick={onNext} disabled={!hasNext}>Next →</button>
    </nav>
  );
}

export function LiveDot({ state }: { state: string }) {
  const text = state === "live" ? "live" : state === "reconnecting" ? "reconnecting…" :
    state === "unavailable" ? "no live stream" : state;
  return <span className={`live live-${state}`} role="status" aria-live="polite">{text}</span>;
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>;
}
