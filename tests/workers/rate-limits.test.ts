/**
 * Rate limits, written as the flooding client's requests: per IP, per API key, and failed authentications per IP all
 * end in 429 rate_limited with Retry-After, through the real Rate Limiting binding of wrangler.toml (in memory here, as
 * under wrangler dev). The binding counts in fixed 60 s windows, so each test keeps sending until the first 429, and at
 * most twice the limit (a window may roll over once during the burst).
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { checkIpLimit, checkKeyLimit, retryAfterSeconds } from "../../workers/services/rate-limits";
import { call, createProject } from "./helpers";

// The limits wrangler.toml sets.
const IP_LIMIT = 2400;
const KEY_LIMIT = 1200;
const AUTH_FAIL_LIMIT = 30;

/** A fresh client address per test: the binding's counters outlive a test. */
const freshIp = () => `203.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250) + 1}`;

/**
 * Sends requests in parallel batches until one answers 429; returns how many succeeded before and that 429. A window
 * that rolls over during the burst only adds successes, so "at least `limit` succeeded" holds either way.
 */
async function untilLimited(max: number, send: (i: number) => Promise<Response>, batch = 50): Promise<{ succeeded: number; res: Response }> {
  let succeeded = 0;
  for (let start = 0; start < max; start += batch) {
    const answers = await Promise.all(Array.from({ length: Math.min(batch, max - start) }, (_, i) => send(start + i)));
    const limited = answers.find((r) => r.status === 429);
    for (const r of answers) {
      if (r.status < 300) succeeded++;
      if (r !== limited) await r.body?.cancel();
    }
    if (limited) return { succeeded, res: limited };
  }
  throw new Error(`no 429 after ${max} requests`);
}

/** Calls `check` until it throws 429; answers how many calls passed. */
async function spend(check: () => Promise<void>, max: number): Promise<number> {
  for (let i = 0; i < max; i++) {
    try {
      await check();
    } catch (err) {
      expect((err as { code?: string }).code).toBe("rate_limited");
      return i;
    }
  }
  throw new Error(`no 429 after ${max} calls`);
}

async function expectRateLimited(res: Response, limit: string) {
  expect(res.status).toBe(429);
  const retryAfter = Number(res.headers.get("retry-after"));
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(60);
  const body = (await res.json()) as any;
  expect(body.error).toMatchObject({ code: "rate_limited", details: { limit } });
}

describe("rate limits", () => {
  it("a client that keeps guessing keys gets 429 after 30 failures a minute, not more 401s", async () => {
    const ip = freshIp();
    const { res } = await untilLimited(2 * AUTH_FAIL_LIMIT + 1, (i) => call("GET", "/v1/datasets", { key: `et_guess_${i}`, headers: { "cf-connecting-ip": ip } }), 1);
    await expectRateLimited(res, "auth");
    // Runner tokens are guessed from the same budget.
    const runner = await call("POST", "/v1/runner/lease", { key: "et_rnr_guess", json: { wait_s: 0 }, headers: { "cf-connecting-ip": ip } });
    expect(runner.status).toBe(429);
    // Another address is unaffected.
    expect((await call("GET", "/v1/datasets", { key: "et_guess", headers: { "cf-connecting-ip": freshIp() } })).status).toBe(401);
  });

  // Spending a budget of 1,200 or 2,400 through HTTP takes minutes on a loaded 2-core box, so these spend it on the
  // same binding the Worker uses (what each request does first), then check the Worker's answer over HTTP.
  it("one API key is limited to its requests per minute; another key is not", { timeout: 120_000 }, async () => {
    const { key } = await createProject();
    const other = ((await (await call("POST", "/v1/keys", { key, json: { name: "other" } })).json()) as { secret: string }).secret;
    const keyId = ((await (await call("GET", "/v1/keys", { key })).json()) as any).keys.find((k: any) => k.name === "default").id;
    const spent = await spend(() => checkKeyLimit(env, keyId), 2 * KEY_LIMIT + 1);
    expect(spent).toBeGreaterThanOrEqual(KEY_LIMIT - 2);
    await expectRateLimited(await call("GET", "/v1/keys?limit=1", { key }), "key");
    expect((await call("GET", "/v1/keys?limit=1", { key: other })).status).toBe(200);
  });

  it("one address is limited on every route, even without a key", { timeout: 120_000 }, async () => {
    const ip = freshIp();
    const request = new Request("http://edgetune.test/", { headers: { "cf-connecting-ip": ip } });
    const spent = await spend(() => checkIpLimit(env, request), 2 * IP_LIMIT + 1);
    expect(spent).toBeGreaterThanOrEqual(IP_LIMIT);
    await expectRateLimited(await call("GET", "/", { key: null, headers: { "cf-connecting-ip": ip } }), "ip");
    await expectRateLimited(await call("GET", "/v1/datasets", { key: null, headers: { "cf-connecting-ip": ip } }), "ip");
  });

  it("Retry-After is the time left in the current window", () => {
    expect(retryAfterSeconds(Date.UTC(2026, 0, 1, 0, 0, 0))).toBe(60);
    expect(retryAfterSeconds(Date.UTC(2026, 0, 1, 0, 0, 59, 500))).toBe(1);
  });
});
