// Hash routes (#/fleet, #/devices/dev_1 ...): the server serves only `/`.

import { useEffect, useState } from "react";
import type { AnchorHTMLAttributes } from "react";

export interface Location {
  path: string;
  params: URLSearchParams;
}

function current(): Location {
  const raw = window.location.hash.replace(/^#/, "") || "/fleet";
  const [path, q] = raw.split("?");
  return { path: path || "/fleet", params: new URLSearchParams(q || "") };
}

export function useLocation(): Location {
  const [loc, setLoc] = useState(current);
  useEffect(() => {
    const on = () => setLoc(current());
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return loc;
}

export function navigate(to: string) {
  window.location.hash = to;
}

/** Matches `/flows/:id/compare` against a path; null when it does not match. */
export function match(pattern: string, path: string): Record<string, string> | null {
  const p = pattern.split("/");
  const s = path.split("/");
  if (p.length !== s.length) return null;
  const out: Record<string, string> = {};
  for (let i = 0; i < p.length; i++) {
    if (p[i].startsWith(":")) out[p[i].slice(1)] = decodeURIComponent(s[i]);
    else if (p[i] !== s[i]) return null;
  }
  return out;
}

export function Link({ to, ...rest }: { to: string } & AnchorHTMLAttributes<HTMLAnchorElement>) {
  return <a href={"#" + to} {...rest} />;
}
