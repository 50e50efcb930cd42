// Server-sent events over fetch (so an API key header works as well as the
// session cookie), reconnecting after a drop with backoff and Last-Event-ID.

import { apiPath, authHeaders } from "./api";

export interface SseEvent {
  event: string;
  data: any;
  id: string | null;
}

/** Parses a text/event-stream chunk by chunk; returns the complete events seen. */
export class SseParser {
  private buf = "";
  private event = "message";
  private data: string[] = [];
  private id: string | null = null;
  lastId: string | null = null;

  feed(chunk: string): SseEvent[] {
    this.buf += chunk;
    const out: SseEvent[] = [];
    let nl: number;
    while ((nl = this.buf.search(/\r\n|\n|\r/)) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + (this.buf.startsWith("\r\n", nl) ? 2 : 1));
      if (line === "") {
        if (this.data.length) {
          const text = this.data.join("\n");
          let data: any = text;
          try { data = JSON.parse(text); } catch { /* plain text data */ }
          if (this.id !== null) this.lastId = this.id;
          out.push({ event: this.event, data, id: this.id });
        }
        this.event = "message";
        this.data = [];
        this.id = null;
        continue;
      }
      if (line.startsWith(":")) continue; // a comment (keepalive)
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") this.event = value;
      else if (field === "data") this.data.push(value);
      else if (field === "id") this.id = value;
    }
    return out;
  }
}

export interface StreamHandle {
  close(): void;
}

export interface StreamOptions {
  onEvent: (e: SseEvent) => void;
  onState?: (state: "live" | "reconnecting" | "closed" | "unavailable") => void;
  /** Stop for good after this event (e.g. `complete`). */
  finalEvent?: string;
}

/** Follows a stream until closed; reconnects after a drop (1, 2, 4 ... 15 s). */
export function openStream(path: string, opts: StreamOptions): StreamHandle {
  let closed = false;
  let controller: AbortController | null = null;
  let delay = 1000;
  let lastId: string | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;

  const run = async () => {
    if (closed) return;
    controller = new AbortController();
    const headers: Record<string, string> = { accept: "text/event-stream", ...authHeaders("GET") };
    if (lastId) headers["Last-Event-ID"] = lastId;
    let finished = false;
    try {
      const resp = await fetch(apiPath(path), { headers, credentials: "same-origin", signal: controller.signal });
      if (resp.status === 404 || resp.status === 405) {
        opts.onState?.("unavailable");
        return;
      }
      if (!resp.ok || !resp.body) throw new Error(`stream answered ${resp.status}`);
      opts.onState?.("live");
      delay = 1000;
      const parser = new SseParser();
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        for (const ev of parser.feed(decoder.decode(value, { stream: true }))) {
          if (ev.id) lastId = ev.id;
          opts.onEvent(ev);
          if (opts.finalEvent && ev.event === opts.finalEvent) finished = true;
          if (ev.event === "error") break; // dropped for falling behind: reconnect for a sync
        }
        if (finished) break;
      }
    } catch (err) {
      if (closed) return;
    }
    if (finished || closed) {
      closed = true;
      opts.onState?.("closed");
      controller?.abort();
      return;
    }
    opts.onState?.("reconnecting");
    timer = setTimeout(run, delay);
    delay = Math.min(delay * 2, 15000);
  };
  run();
  return {
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      controller?.abort();
    },
  };
}
