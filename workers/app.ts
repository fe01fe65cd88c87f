/**
 * The Hono app: mounts one sub-app per resource and owns the single error handler, so every error leaves through the
 * same door with the body of ../shared API.md: `{"error": {"code", "message", "details"?}}`.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Hook } from "@hono/zod-openapi";
import { HTTPException } from "hono/http-exception";
import { ApiError } from "../shared/errors";
import { newId } from "../shared/ids";
import type { Env } from "./env";
import { authenticate, type Caller } from "./services/auth";
import { getDb, type Db } from "./services/db";

export type AppEnv = { Bindings: Env; Variables: { caller: Caller; db: Db } };

/** Validation failures become 400 `invalid_request` naming each offending field. */
export const validationHook: Hook<unknown, AppEnv, string, unknown> = (result) => {
  if (!result.success) {
    const issues = result.error.issues.map((issue) => ({ path: issue.path.join(".") || "(body)", message: issue.message }));
    const first = issues[0];
    throw new ApiError(400, "invalid_request", `${result.target} field '${first.path}': ${first.message}`, { target: result.target, issues });
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
    const header = c.req.header("authorization");
    const match = header?.match(/^Bearer\s+(\S+)\s*$/i);
    if (!match) throw new ApiError(401, "missing_api_key", "Send your API key as 'Authorization: Bearer <key>'. Create keys with POST /v1/keys.");
    const caller = await authenticate(db, match[1], c.env.EDGETUNE_ADMIN_KEY);
    if (!caller) throw new ApiError(401, "invalid_api_key", "This API key is unknown or was revoked. Use a current key of your project.");
    c.set("caller", caller);
    await next();
  };
}

export function errorResponse(err: unknown, requestPath: string): Response {
  if (err instanceof ApiError) return Response.json(err.toBody(), { status: err.status });
  if (err instanceof HTTPException) {
    const status = err.status;
    const code = status === 400 ? "malformed_request" : status === 413 ? "payload_too_large" : `http_${status}`;
    const message = err.message || "The request could not be processed.";
    return Response.json({ error: { code, message: status === 400 ? `${message}. Send a valid JSON body with Content-Type: application/json.` : message } }, { status });
  }
  const errorId = newId("ing").replace("ing_", "err_");
  console.error(`[${errorId}] ${requestPath}:`, err instanceof Error ? err.stack ?? err.message : err);
  return Response.json(
    { error: { code: "internal_error", message: `Something went wrong on our side. Retry; if it persists, report error id ${errorId}.`, details: { error_id: errorId } } },
    { status: 500 },
  );
}
