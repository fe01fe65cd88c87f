/**
 * The Hono app: mounts one sub-app per resource and owns the single error handler, so every error leaves through the
 * same door with the body of ../shared API.md: `{"error": {"code", "message", "details"?}}`.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Hook } from "@hono/zod-openapi";
import { HTTPException } from "hono/http-exception";
import { bodyLimit } from "hono/body-limit";
import { ApiError, DomainError } from "../shared/errors";
import { HeadFormatError } from "../shared/head";
import { isImageError } from "../shared/image/errors";
import { InferenceUnavailableError } from "./inference/errors";
import { newId } from "../shared/ids";
import type { Env } from "./env";
import { getConfig } from "./config";
import { authenticate, bearerToken, predictScopeAllows, recordKeyUse, type Caller } from "./services/auth";
import { getDb, type Db } from "./services/db";
import { checkIpLimit, checkKeyLimit, countFailedAuth } from "./services/rate-limits";
import type { RunnerRow } from "./services/runners";

export type AppEnv = { Bindings: Env; Variables: { caller: Caller; db: Db; runner: RunnerRow } };

/** Validation failures become 400 `invalid_request` naming each offending field. */
export const validationHook: Hook<unknown, AppEnv, string, unknown> = (result) => {
  if (!result.success) {
    const issues = result.error.issues.map((issue) => ({ path: issue.path.join(".") || "(body)", message: issue.message }));
    const first = issues[0];
    throw new ApiError("invalid_request", `${result.target} field '${first.path}': ${first.message}`, { target: result.target, issues });
  }
};

export function createRouter() {
  return new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
}

/** Requires `Authorization: Bearer <api key>`; sets `caller` (project) and `db`. */
export function requireApiKey() {
  return async (c: import("hono").Context<AppEnv>, next: () => Promise<void>) => {
    const db = getDb(c.env.DB);
    c.set("db", db);
    const token = bearerToken(c.req.header("authorization"));
    if (!token) throw new ApiError("missing_api_key", "Send an API key as 'Authorization: Bearer <key>'. On a local install, use the key `npm start` printed (or the EDGETUNE_ADMIN_KEY you set); with the CLI, run `npx edgetune login --key <key>`. Once you have a key, POST /v1/keys makes more.");
    const caller = await authenticate(db, token, getConfig(c.env).adminKey ?? undefined);
    if (!caller) {
      await countFailedAuth(c.env, c.req.raw);
      throw new ApiError("invalid_api_key", "This API key is unknown or was revoked. Use a current key of your project.");
    }
    await checkKeyLimit(c.env, caller.keyId);
    if (caller.scope === "predict" && !predictScopeAllows(c.req.method, c.req.path)) {
      throw new ApiError("scope_required", `This is a predict key: it may only predict and read models and aliases. ${c.req.method} ${c.req.path} needs a key with scope 'full'.`, { scope: "full", key_scope: "predict" });
    }
    c.set("caller", caller);
    const write = recordKeyUse(db, caller);
    if (write) waitUntil(c, write.catch((err) => console.error("last_used_at:", err)));
    await next();
  };
}

/**
 * Errors of modules that know nothing of HTTP, and the API error each becomes: the one place where a domain failure
 * gets a status. A domain error's `code` is a catalogue code (shared/errors.ts), so its status comes from there too.
 */
const DOMAIN_ERRORS: { matches: (err: unknown) => boolean; toApiError: (err: any) => ApiError; log?: boolean }[] = [
  // A bad image (upload, predict), an unreadable archive (backbone zip): the message already says what to fix.
  { matches: (err) => isImageError(err) || err instanceof DomainError, toApiError: (err: DomainError) => new ApiError(err.code, err.message, err.details) },
  // A stored head that no longer parses is our fault, not the caller's: logged, and retraining fixes it.
  {
    matches: (err) => err instanceof HeadFormatError,
    toApiError: (err: HeadFormatError & { details?: Record<string, unknown> }) => new ApiError("model_head_invalid", `${err.message}. The stored head cannot be used; train the model again.`, err.details),
    log: true,
  },
  {
    matches: (err) => err instanceof InferenceUnavailableError,
    toApiError: (err: InferenceUnavailableError) => new ApiError("inference_unavailable", `${err.message}. Retry in a moment, or send precomputed embeddings ({"embeddings": [[...]]}).`),
    log: true,
  },
  // Hono's own validators: a body that does not parse as the declared media type.
  {
    matches: (err) => err instanceof HTTPException && err.status === 400,
    toApiError: (err: HTTPException) =>
      /form ?data/i.test(err.message)
        ? new ApiError("malformed_multipart", `${err.message} Check the boundary in Content-Type and the part headers.`)
        : new ApiError("malformed_json", `${err.message || "The body is not valid JSON"}. Send a valid JSON body with Content-Type: application/json.`),
  },
  // @hono/zod-openapi's media-type gate: the route declares its body types in the OpenAPI document (/docs).
  {
    matches: (err) => err instanceof HTTPException && err.status === 415,
    toApiError: () => new ApiError("unsupported_media_type", "This route does not take a body of that Content-Type; see the route's request body types in /docs."),
  },
  { matches: (err) => err instanceof HTTPException && err.status === 413, toApiError: (err: HTTPException) => new ApiError("payload_too_large", err.message || "The request body is too large.") },
];

/**
 * Headers every response gets: `X-Content-Type-Options: nosniff` (a tenant's uploaded bytes served back are never
 * sniffed into HTML or script), and on the API `Cache-Control: no-store` unless a route chose otherwise, since API
 * answers carry tenant data and some carry secrets (new keys, runner tokens, webhook secrets) that no cache may keep.
 * HTML pages set their own Content-Security-Policy (routes/docs.ts; the dashboard's _headers); any other HTML gets
 * the strictest one.
 */
/** A JSON request body over this is refused 413 `payload_too_large` from its Content-Length, before it is read. */
export const JSON_BODY_MAX_BYTES = 1024 * 1024;
/**
 * The JSON routes that take more. A runner's `complete` carries the model's metrics (a 1,000-label confusion matrix
 * is about 3 MB of JSON; services/models.ts stores large ones in R2); a diagnostics report is capped at 8 MB
 * (services/diagnostics.ts); a prediction's JSON holds base64 images, and services/predict-input.ts reads it with its
 * own 32 MB limit.
 */
const LARGER_JSON_BODIES: [RegExp, number][] = [
  [/^\/v1\/runner\/jobs\/[^/]+\/complete$/, 16 * 1024 * 1024],
  [/^\/v1\/runner\/jobs\/[^/]+\/diagnostics$/, 9 * 1024 * 1024],
  [/^\/v1\/(models|aliases)\/[^/]+\/predict$/, 32 * 1024 * 1024],
];

/**
 * hono/body-limit on every JSON body: a declared Content-Length over the route's limit answers 413 at once (nothing
 * read); a body without one is counted as it streams and refused as soon as it passes the limit. Binary uploads
 * have their own limits where they are streamed (services/bodies.ts).
 */
export function jsonBodyLimit() {
  return async (c: import("hono").Context<AppEnv>, next: () => Promise<void>) => {
    if (!/json/i.test(c.req.header("content-type") ?? "")) return next();
    const maxSize = LARGER_JSON_BODIES.find(([path]) => path.test(c.req.path))?.[1] ?? JSON_BODY_MAX_BYTES;
    const limit = bodyLimit({
      maxSize,
      onError: () => {
        throw new ApiError("payload_too_large", `The JSON body is larger than this route's limit of ${maxSize} bytes.`, { limit_bytes: maxSize });
      },
    });
    return limit(c, next) as Promise<void>;
  };
}

/** Per-IP request limit on every route (services/rate-limits.ts). */
export function ipRateLimit() {
  return async (c: import("hono").Context<AppEnv>, next: () => Promise<void>) => {
    await checkIpLimit(c.env, c.req.raw);
    await next();
  };
}

export function securityHeaders() {
  return async (c: import("hono").Context<AppEnv>, next: () => Promise<void>) => {
    await next();
    const set = (headers: Headers) => {
      headers.set("x-content-type-options", "nosniff");
      if (c.req.path.startsWith("/v1/") && !headers.has("cache-control")) headers.set("cache-control", "no-store");
      if ((headers.get("content-type") ?? "").startsWith("text/html") && !headers.has("content-security-policy")) {
        headers.set("content-security-policy", "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
      }
    };
    try {
      set(c.res.headers);
    } catch {
      // A response with immutable headers (one passed through from fetch or R2): copy it.
      c.res = new Response(c.res.body, c.res);
      set(c.res.headers);
    }
  };
}

/** Work that may finish after the response (ctx.waitUntil); awaited in place where there is no execution context. */
export function waitUntil(c: import("hono").Context<AppEnv>, work: Promise<unknown>): void {
  let ctx: ExecutionContext | undefined;
  try {
    ctx = c.executionCtx as ExecutionContext;
  } catch {}
  if (ctx) ctx.waitUntil(work);
  else void work;
}

/** The response for any error: an `ApiError` as is, a domain error through `DOMAIN_ERRORS`, anything else a logged 500 with an id. */
export function errorResponse(err: unknown, requestPath: string): Response {
  if (err instanceof ApiError) {
    // 429 and 503 say when to come back: details.retry_after_s becomes the Retry-After header.
    const retryAfter = err.details?.retry_after_s;
    return Response.json(err.toBody(), { status: err.status, headers: typeof retryAfter === "number" ? { "retry-after": String(Math.ceil(retryAfter)) } : {} });
  }
  const domain = DOMAIN_ERRORS.find((entry) => entry.matches(err));
  if (domain) {
    const apiError = domain.toApiError(err);
    if (domain.log) console.error(`${requestPath}: ${apiError.code}:`, err instanceof Error ? err.stack ?? err.message : err, (err as Error)?.cause ?? "");
    return Response.json(apiError.toBody(), { status: apiError.status });
  }
  const errorId = newId("err");
  console.error(`[${errorId}] ${requestPath}:`, err instanceof Error ? err.stack ?? err.message : err);
  return Response.json(new ApiError("internal_error", `Something went wrong on our side. Retry; if it persists, report error id ${errorId}.`, { error_id: errorId }).toBody(), { status: 500 });
}
