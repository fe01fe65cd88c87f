/**
 * Request rate limits, with Cloudflare's Rate Limiting binding (wrangler.toml `[[ratelimits]]`; `wrangler dev` and the
 * vitest pool run the same binding in memory, so the limits hold locally too):
 *
 * - per client IP (`CF-Connecting-IP`, which Cloudflare sets and a client cannot forge on a deployed Worker), on every
 *   route: IP_RATE_LIMITER;
 * - per API key, after it authenticated: KEY_RATE_LIMITER;
 * - failed authentications per IP: AUTH_FAIL_RATE_LIMITER, counted on each 401, which then answers 429 instead.
 *   Keys carry 160 random bits, so this limit is not what keeps them secret; it sheds the load of a key-guessing or
 *   credential-stuffing client early and makes it visible.
 *
 * Over a limit: 429 `rate_limited` with `Retry-After` (seconds). The binding counts in fixed windows of `period`
 * seconds (10 or 60); Retry-After is the time left in the current window, at least 1 s. The limits are set in
 * wrangler.toml (the binding takes no per-call limit), and a binding that is absent turns its limit off.
 * A request without CF-Connecting-IP (a test calling the Worker in-process, a service binding) has no IP limits.
 */
import { ApiError } from "../../shared/errors";

export interface RateLimitBinding {
  limit(options: { key: string }): Promise<{ success: boolean }>;
}

export interface RateLimitEnv {
  IP_RATE_LIMITER?: RateLimitBinding;
  KEY_RATE_LIMITER?: RateLimitBinding;
  AUTH_FAIL_RATE_LIMITER?: RateLimitBinding;
}

/** The windows wrangler.toml configures (seconds); used for Retry-After. */
export const RATE_LIMIT_PERIOD_S = 60;

export function retryAfterSeconds(nowMs = Date.now(), periodS = RATE_LIMIT_PERIOD_S): number {
  return Math.max(1, periodS - (Math.floor(nowMs / 1000) % periodS));
}

export function rateLimited(what: "ip" | "key" | "auth", nowMs = Date.now()): ApiError {
  const retryAfter = retryAfterSeconds(nowMs);
  const message = {
    ip: `Too many requests from your address. Retry after ${retryAfter} s.`,
    key: `Too many requests with this API key. Retry after ${retryAfter} s, or spread the load over time.`,
    auth: `Too many failed authentications from your address. Check the API key you send; retry after ${retryAfter} s.`,
  }[what];
  return new ApiError("rate_limited", message, { limit: what, retry_after_s: retryAfter });
}

export const clientIp = (request: Request): string | null => request.headers.get("cf-connecting-ip");

async function allowed(binding: RateLimitBinding | undefined, key: string): Promise<boolean> {
  if (!binding) return true;
  return (await binding.limit({ key })).success;
}

/** Throws 429 when the client's IP is over its limit. */
export async function checkIpLimit(env: RateLimitEnv, request: Request): Promise<void> {
  const ip = clientIp(request);
  if (ip && !(await allowed(env.IP_RATE_LIMITER, `ip:${ip}`))) throw rateLimited("ip");
}

/** Throws 429 when the key is over its limit. */
export async function checkKeyLimit(env: RateLimitEnv, keyId: string): Promise<void> {
  if (!(await allowed(env.KEY_RATE_LIMITER, `key:${keyId}`))) throw rateLimited("key");
}

/** Counts a failed authentication; throws 429 (in place of the 401) once the IP is over its limit. */
export async function countFailedAuth(env: RateLimitEnv, request: Request): Promise<void> {
  const ip = clientIp(request);
  if (ip && !(await allowed(env.AUTH_FAIL_RATE_LIMITER, `auth:${ip}`))) throw rateLimited("auth");
}
