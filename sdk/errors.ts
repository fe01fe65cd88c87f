/**
 * The one error an SDK call throws for anything but an abort: the API's own error body
 * (`{"error": {"code", "message", "details"}}`, ../shared API.md) with its HTTP status, or a network failure
 * (`status: 0`, `code: "network_error"`) once retries are spent. Branch on `code`, never on `message`.
 */
export class EdgetuneError extends Error {
  constructor(
    /** HTTP status; 0 when no response arrived (network error). */
    readonly status: number,
    /** Stable, machine-readable code from the API (`dataset_not_found`, `rate_limited`, ...). */
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
    /** `METHOD /path` of the call that failed. */
    readonly request?: string,
  ) {
    super(message);
    this.name = "EdgetuneError";
  }

  /** Builds the error from a non-2xx response, whatever its body (JSON error, HTML from a proxy, empty). */
  static async fromResponse(response: Response, request: string): Promise<EdgetuneError> {
    const text = await response.text().catch(() => "");
    try {
      const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; details?: unknown } };
      if (body?.error && typeof body.error.code === "string") {
        return new EdgetuneError(response.status, body.error.code, String(body.error.message ?? body.error.code), body.error.details as Record<string, unknown> | undefined, request);
      }
    } catch {
      // not JSON: fall through
    }
    const snippet = text.replace(/\s+/g, " ").trim().slice(0, 200);
    return new EdgetuneError(response.status, `http_${response.status}`, `${request} answered ${response.status}${snippet ? `: ${snippet}` : ""}`, undefined, request);
  }
}

/** True for the error an aborted signal produces (DOMException "AbortError" or a signal's custom reason). */
export function isAbortError(err: unknown, signal?: AbortSignal): boolean {
  if (signal?.aborted && err === signal.reason) return true;
  return err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError");
}
