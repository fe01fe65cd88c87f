/** HTTP helpers for benchmarks that drive the local platform (scripts/platform.mjs). */

export interface ApiAnswer {
  status: number;
  body: any;
}

/** One API call with a bearer key; JSON answers parsed, anything else as text. */
export async function request(baseUrl: string, method: string, route: string, init: { key: string; json?: unknown; body?: BodyInit | Uint8Array; headers?: Record<string, string> }): Promise<ApiAnswer> {
  const headers: Record<string, string> = { authorization: `Bearer ${init.key}`, ...(init.headers ?? {}) };
  let body = init.body;
  if (init.json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(init.json);
  }
  const res = await fetch(baseUrl + route, { method, headers, body: body as BodyInit });
  const text = await res.text();
  return { status: res.status, body: text && res.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text };
}

/** The answer, or an error naming `what` when its status is not `status`. */
export async function ok(answer: Promise<ApiAnswer>, what: string, status = 200): Promise<ApiAnswer> {
  const res = await answer;
  if (res.status !== status) throw new Error(`${what}: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
  return res;
}
