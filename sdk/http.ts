/**
 * The transport every resource uses: base URL + bearer key, JSON in and out, typed errors, and retries.
 *
 * Retry policy (what is safe to repeat):
 * - 429 is retried for every call: the API refused it before doing anything, and says when to come back
 *   (`Retry-After`, seconds or an HTTP date; we wait that long, capped at `maxRetryAfterMs`).
 * - Network errors and 5xx are retried only for idempotent calls (GET, HEAD, PUT, DELETE, and calls marked
 *   `idempotent`, like predictions and part uploads): a POST that created a job may have run before the
 *   connection dropped, and repeating it would create a second one.
 * - Backoff is "full jitter" (a uniform wait in [0, min(cap, base * 2^attempt)]): with many clients failing at once,
 *   jitter spreads their retries instead of synchronising them into waves.
 * Bodies are retried only when they can be re-sent (strings, bytes, Blobs, FormData), never streams.
 */
import { EdgetuneError, isAbortError } from "./errors";

export interface ClientOptions {
  /** API origin, e.g. `http://127.0.0.1:8787` (a trailing `/v1` or `/` is accepted). */
  url: string;
  /** An API key (`Authorization: Bearer`). */
  apiKey?: string;
  /** Retries after the first try (default 4). */
  maxRetries?: number;
  /** First backoff step in ms (default 250); doubles per attempt up to `maxBackoffMs` (default 8,000). */
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  /** Longest honoured Retry-After (default 60,000 ms): beyond it the call fails with the 429. */
  maxRetryAfterMs?: number;
  /** A fetch to use instead of the global one (tests pass the Worker's own fetch). */
  fetch?: typeof fetch;
  /** Extra headers on every request. */
  headers?: Record<string, string>;
  /** Random source in [0, 1) for jitter (tests make it deterministic). */
  random?: () => number;
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined | null>;
  json?: unknown;
  body?: BodyInit | Uint8Array;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Safe to repeat after a network error or 5xx (GET/HEAD/PUT/DELETE are by default). */
  idempotent?: boolean;
  /** Observe each retry (CLI logs them). */
  onRetry?: (info: RetryInfo) => void;
}

export interface RetryInfo {
  attempt: number;
  delayMs: number;
  reason: string;
}

const IDEMPOTENT_METHODS = new Set(["GET", "HEAD", "PUT", "DELETE", "OPTIONS"]);

/** Waits `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Retry-After as milliseconds (delta-seconds or an HTTP date), or null when absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | null {
  if (!value) return null;
  const seconds = Number(value.trim());
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

const resendable = (body: RequestOptions["body"]) => body === undefined || body === null || typeof body === "string" || body instanceof Uint8Array || body instanceof ArrayBuffer || (typeof Blob !== "undefined" && body instanceof Blob) || (typeof FormData !== "undefined" && body instanceof FormData) || body instanceof URLSearchParams;

export class HttpClient {
  readonly baseUrl: string;
  private readonly fetchImpl: typeof fetch;

  constructor(readonly options: ClientOptions) {
    this.baseUrl = options.url.replace(/\/+$/, "").replace(/\/v1$/, "");
    // Bind: a detached `fetch` throws "Illegal invocation" in browsers and workerd.
    const f = options.fetch ?? globalThis.fetch;
    this.fetchImpl = (input, init) => f(input, init);
  }

  url(path: string, query?: RequestOptions["query"]): string {
    const url = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== null) url.searchParams.set(k, String(v));
    return url.toString();
  }

  /** Sends the request with the retry policy above; resolves with a 2xx response, throws EdgetuneError otherwise. */
  async raw(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const { maxRetries = 4, baseBackoffMs = 250, maxBackoffMs = 8_000, maxRetryAfterMs = 60_000 } = this.options;
    const random = this.options.random ?? Math.random;
    const idempotent = (options.idempotent ?? IDEMPOTENT_METHODS.has(method)) && resendable(options.body);
    const headers: Record<string, string> = { ...this.options.headers, ...options.headers };
    if (this.options.apiKey) headers.authorization = `Bearer ${this.options.apiKey}`;
    let body = options.body as BodyInit | undefined;
    if (options.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(options.json);
    }
    const label = `${method} ${path}`;
    const url = this.url(path, options.query);
    for (let attempt = 0; ; attempt++) {
      let response: Response;
      try {
        response = await this.fetchImpl(url, { method, headers, body, signal: options.signal });
      } catch (err) {
        if (isAbortError(err, options.signal) || options.signal?.aborted) throw options.signal?.reason ?? err;
        const message = err instanceof Error ? `${err.message}${err.cause instanceof Error ? ` (${err.cause.message})` : ""}` : String(err);
        if (!idempotent || attempt >= maxRetries) {
          throw new EdgetuneError(0, "network_error", `${label} could not reach ${this.baseUrl}: ${message}. Is the API running, and is the URL right?`, undefined, label);
        }
        await this.backoff(attempt, null, message, options, random, maxBackoffMs, baseBackoffMs);
        continue;
      }
      if (response.ok) return response;
      const retryable = response.status === 429 || (idempotent && response.status >= 500 && response.status !== 501);
      if (!retryable || attempt >= maxRetries || (response.status === 429 && !resendable(options.body))) throw await EdgetuneError.fromResponse(response, label);
      const retryAfter = parseRetryAfter(response.headers.get("retry-after"));
      if (retryAfter !== null && retryAfter > maxRetryAfterMs) throw await EdgetuneError.fromResponse(response, label);
      await response.body?.cancel().catch(() => {});
      await this.backoff(attempt, retryAfter, `${response.status}`, options, random, maxBackoffMs, baseBackoffMs);
    }
  }

  private async backoff(attempt: number, retryAfterMs: number | null, reason: string, options: RequestOptions, random: () => number, maxBackoffMs: number, baseBackoffMs: number) {
    // Retry-After is a floor set by the server; add a little jitter above it so clients it throttled together spread out.
    const delayMs = retryAfterMs !== null ? retryAfterMs + random() * Math.min(1000, baseBackoffMs) : random() * Math.min(maxBackoffMs, baseBackoffMs * 2 ** attempt);
    options.onRetry?.({ attempt: attempt + 1, delayMs, reason });
    await sleep(delayMs, options.signal);
  }

  async json<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const response = await this.raw(method, path, options);
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }
}
