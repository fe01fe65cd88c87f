/**
 * The dashboard's only way to the platform: the public /v1 API of the same origin, with the API key the user signed in
 * with (kept in sessionStorage: this tab only, gone when it closes). A thin client until the SDK (sdk/) is on main.
 */
import { createSseParser, type SseEvent } from "./shaping";

const KEY_ITEM = "edgetune.api_key";

export const session = {
  get key(): string | null {
    try {
      return sessionStorage.getItem(KEY_ITEM);
    } catch {
      return null;
    }
  },
  signIn(key: string) {
    sessionStorage.setItem(KEY_ITEM, key);
  },
  signOut() {
    sessionStorage.removeItem(KEY_ITEM);
  },
};

/** An API error with the platform's stable code and its message (which says what to fix). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

const onUnauthorized = new Set<() => void>();
export const whenSignedOut = (fn: () => void) => onUnauthorized.add(fn);

async function toError(res: Response): Promise<ApiError> {
  let body: any = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON */
  }
  const error = body?.error;
  return new ApiError(res.status, error?.code ?? `http_${res.status}`, error?.message ?? `The server answered ${res.status} ${res.statusText}.`, error?.details);
}

export interface RequestOptions {
  json?: unknown;
  body?: BodyInit;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  key?: string;
}

export async function raw(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  const key = options.key ?? session.key;
  if (key) headers.authorization = `Bearer ${key}`;
  let body = options.body;
  if (options.json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(options.json);
  }
  const res = await fetch(path, { method, headers, body, signal: options.signal });
  if (!res.ok) {
    const error = await toError(res);
    if (res.status === 401 && !options.key) for (const fn of onUnauthorized) fn();
    throw error;
  }
  return res;
}

export async function api<T = any>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
  const res = await raw(method, path, options);
  if (res.status === 204) return null as T;
  return (await res.json()) as T;
}

/** Every page of a list route (`{<name>: [...], next_cursor}`), up to `max` items. */
export async function listAll<T = any>(path: string, name: string, max = 500): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | null = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const page: any = await api("GET", `${path}${cursor ? `${sep}cursor=${encodeURIComponent(cursor)}` : ""}`);
    items.push(...(page[name] ?? []));
    cursor = page.next_cursor ?? null;
  } while (cursor && items.length < max);
  return items;
}

/** An image's bytes as an object URL (an <img src> cannot send the API key). Cached per sha256 for the tab. */
const imageUrls = new Map<string, Promise<string>>();
export function imageUrl(datasetId: string, sha256: string): Promise<string> {
  const cacheKey = `${datasetId}/${sha256}`;
  let url = imageUrls.get(cacheKey);
  if (!url) {
    url = raw("GET", `/v1/datasets/${datasetId}/images/${sha256}`).then(async (res) => URL.createObjectURL(await res.blob()));
    url.catch(() => imageUrls.delete(cacheKey));
    imageUrls.set(cacheKey, url);
  }
  return url;
}

/**
 * Follows a job's Server-Sent Events with fetch (EventSource cannot send Authorization), reconnecting after the
 * last event id until the stream says `end` or `signal` aborts.
 */
export async function followEvents(jobId: string, onEvent: (event: SseEvent) => void, signal: AbortSignal): Promise<void> {
  let lastId: string | null = null;
  for (let attempt = 0; !signal.aborted; attempt++) {
    try {
      const res = await raw("GET", `/v1/jobs/${jobId}/events`, { signal, headers: { accept: "text/event-stream", ...(lastId ? { "last-event-id": lastId } : {}) } });
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      const parse = createSseParser();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const event of parse(value)) {
          if (event.id) lastId = event.id;
          onEvent(event);
          if (event.event === "end") return;
        }
      }
      attempt = 0;
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof ApiError && err.status < 500) throw err;
    }
    await new Promise((r) => setTimeout(r, Math.min(10_000, 500 * 2 ** attempt)));
  }
}

/** A PUT with upload progress (fetch reports none): XMLHttpRequest. */
function putWithProgress(method: string, path: string, body: Blob, contentType: string, onProgress: (sent: number) => void, signal?: AbortSignal): Promise<any> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, path);
    const key = session.key;
    if (key) xhr.setRequestHeader("authorization", `Bearer ${key}`);
    xhr.setRequestHeader("content-type", contentType);
    xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.onload = () => {
      let parsed: any = null;
      try {
        parsed = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch {
        /* not JSON */
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(parsed);
      else reject(new ApiError(xhr.status, parsed?.error?.code ?? `http_${xhr.status}`, parsed?.error?.message ?? `Upload failed with ${xhr.status}.`, parsed?.error?.details));
    };
    xhr.onerror = () => reject(new ApiError(0, "network_error", "The upload was interrupted (network error). Try again: finished parts are kept."));
    xhr.onabort = () => reject(new ApiError(0, "aborted", "The upload was canceled."));
    signal?.addEventListener("abort", () => xhr.abort());
    xhr.send(body);
  });
}

/** Archives up to this size go in one request; larger ones in parts (Cloudflare takes 100 MB bodies on Free/Pro). */
export const SINGLE_UPLOAD_MAX_BYTES = 95 * 1000 * 1000;
/** Parts of large archives: R2's minimum is 5 MiB; 64 MiB keeps a 1 GB archive at 16 requests. */
export const PART_BYTES = 64 * 1024 * 1024;

/**
 * Uploads a zip archive to a dataset, in one request or as a resumable multipart upload: the upload id and the parts
 * already stored are kept in sessionStorage per file, so retrying the same file after a failure sends only the rest.
 */
export async function uploadArchive(datasetId: string, file: Blob & { name?: string; lastModified?: number }, onProgress: (sent: number, total: number) => void, signal?: AbortSignal) {
  const total = file.size;
  if (total <= SINGLE_UPLOAD_MAX_BYTES) {
    return putWithProgress("POST", `/v1/datasets/${datasetId}/archive`, file, "application/zip", (sent) => onProgress(sent, total), signal);
  }
  const resumeKey = `edgetune.upload.${datasetId}.${file.name ?? "archive.zip"}.${total}.${file.lastModified ?? 0}`;
  let state: { upload_id: string; part_size: number; done: number[] } | null = null;
  try {
    state = JSON.parse(sessionStorage.getItem(resumeKey) ?? "null");
  } catch {
    state = null;
  }
  if (!state) {
    const filename = (file.name ?? "archive.zip").replace(/[^\p{L}\p{N} _.\-+()&,'=@~]/gu, "_").replace(/^[.\s]+/, "") || "archive.zip";
    const created = await api("POST", `/v1/datasets/${datasetId}/uploads`, { json: { filename, part_size: PART_BYTES } });
    state = { upload_id: created.upload_id, part_size: created.part_size, done: [] };
    sessionStorage.setItem(resumeKey, JSON.stringify(state));
  }
  const parts = Math.ceil(total / state.part_size);
  const partBytes = (n: number) => Math.min(state!.part_size, total - (n - 1) * state!.part_size);
  let finished = state.done.reduce((s, n) => s + partBytes(n), 0);
  for (let n = 1; n <= parts; n++) {
    if (state.done.includes(n)) continue;
    const blob = file.slice((n - 1) * state.part_size, Math.min(total, n * state.part_size));
    await putWithProgress("PUT", `/v1/datasets/${datasetId}/uploads/${state.upload_id}/parts/${n}`, blob, "application/octet-stream", (sent) => onProgress(finished + sent, total), signal);
    finished += blob.size;
    state.done.push(n);
    sessionStorage.setItem(resumeKey, JSON.stringify(state));
  }
  const dataset = await api("POST", `/v1/datasets/${datasetId}/uploads/${state.upload_id}/complete`);
  sessionStorage.removeItem(resumeKey);
  return dataset;
}
