/** Small shared pieces of the dashboard: the html tag, data loading hooks, error display, thumbnails, routing. */
import { h } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import htm from "htm";
import { ApiError, imageUrl } from "./api";

export const html = htm.bind(h);

/** Hash routes (#/datasets/ds_1?x=y): the Worker serves one index.html, and a reload keeps the page. */
export function parseRoute(hash: string): { parts: string[]; query: URLSearchParams } {
  const [path, query = ""] = hash.replace(/^#/, "").split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query) };
}
export const go = (path: string) => {
  location.hash = path;
};
export function useRoute() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return parseRoute(hash);
}

/** Loads data; `reload()` refreshes it; `every` ms polls while `keepPolling(data)` says so. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[], poll?: { every: number; while: (data: T) => boolean }) {
  const [state, setState] = useState<{ data: T | null; error: Error | null; loading: boolean }>({ data: null, error: null, loading: true });
  const generation = useRef(0);
  const reload = useCallback(async () => {
    const mine = ++generation.current;
    try {
      const data = await load();
      if (mine === generation.current) setState({ data, error: null, loading: false });
    } catch (error) {
      if (mine === generation.current) setState((s) => ({ data: s.data, error: error as Error, loading: false }));
    }
  }, deps);
  useEffect(() => {
    setState({ data: null, error: null, loading: true });
    reload();
    return () => {
      generation.current++;
    };
  }, [reload]);
  useEffect(() => {
    if (!poll || !state.data || !poll.while(state.data)) return;
    const timer = setTimeout(reload, poll.every);
    return () => clearTimeout(timer);
  }, [state.data, reload]);
  return { ...state, reload };
}

export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  const e = error as ApiError;
  return html`<p class="error" role="alert"><strong>${e.code ? `${e.code}: ` : ""}</strong>${e.message ?? String(error)}</p>`;
}

export function Loading({ what }: { what: string }) {
  return html`<p class="muted" role="status">Loading ${what}…</p>`;
}

/** A dataset image, fetched with the API key into an object URL. */
export function Thumb({ datasetId, sha256, alt, size = 96 }: { datasetId: string; sha256: string; alt: string; size?: number }) {
  const [src, setSrc] = useState<string | null>(null);
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    let live = true;
    imageUrl(datasetId, sha256).then((u) => live && setSrc(u), () => live && setFailed(true));
    return () => {
      live = false;
    };
  }, [datasetId, sha256]);
  if (failed) return html`<span class="thumb missing" style=${{ width: `${size}px`, height: `${size}px` }}>image unavailable</span>`;
  return src
    ? html`<img class="thumb" src=${src} alt=${alt} width=${size} height=${size} loading="lazy" decoding="async" />`
    : html`<span class="thumb loading" style=${{ width: `${size}px`, height: `${size}px` }} aria-hidden="true"></span>`;
}

/** A button that asks for a second click before doing something destructive (no blocking browser dialogs). */
export function ConfirmButton({ label, confirmLabel, onConfirm, disabled }: { label: string; confirmLabel: string; onConfirm: () => void | Promise<void>; disabled?: boolean }) {
  const [armed, setArmed] = useState(false);
  const [busy, setBusy] = useState(false);
  if (!armed) return html`<button type="button" class="danger" disabled=${disabled} onClick=${() => setArmed(true)}>${label}</button>`;
  return html`<span class="confirm">
    <button type="button" class="danger" disabled=${busy} onClick=${async () => {
      setBusy(true);
      try {
        await onConfirm();
      } finally {
        setBusy(false);
        setArmed(false);
      }
    }}>${confirmLabel}</button>
    <button type="button" onClick=${() => setArmed(false)}>Keep</button>
  </span>`;
}

export const when = (iso: string | null | undefined) => (iso ? new Date(iso).toLocaleString() : "–");

export function StatusBadge({ status }: { status: string }) {
  return html`<span class=${`badge status-${status}`}>${status}</span>`;
}

/** A horizontally scrollable, keyboard-focusable wrapper for wide tables on phones. */
export function TableWrap({ label, children }: { label: string; children: unknown }) {
  return html`<div class="table-wrap" role="region" aria-label=${label} tabindex="0">${children}</div>`;
}
