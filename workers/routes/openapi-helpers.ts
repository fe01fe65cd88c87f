import { z } from "zod";
import { ERROR_CODES, type ErrorCode } from "../../shared/errors";

/** OpenAPI snippets shared by the route files. */

/** Every code the API answers with (the catalogue in shared/errors.ts; each code always has the same status). */
export const errorCodeSchema = z.enum(ERROR_CODES).meta({ id: "ErrorCode", description: "Stable machine-readable error code; each code always comes with the same HTTP status (shared/errors.ts)." });

export const errorResponseSchema = z
  .object({
    error: z
      .object({
        code: errorCodeSchema,
        message: z.string().meta({ description: "What went wrong and how to fix it, for people; match on `code`, not on this text" }),
        details: z.record(z.string(), z.unknown()).optional().meta({ description: "Machine-readable context where useful: the offending field, file or index, a limit, `retry_after_s`, `error_id`" }),
      })
      .meta({ description: "The one error shape of the whole API" }),
  })
  .meta({ id: "Error", description: "Every error response has this body." });

type ErrorStatusKey = 400 | 401 | 403 | 404 | 409 | 411 | 413 | 415 | 422 | 429 | 500 | 503;

/** Each documented error status: what it means, and a typical body as its example. */
const ERROR_ENTRIES: Record<ErrorStatusKey, { description: string; code: ErrorCode; message: string; details?: Record<string, unknown> }> = {
  400: { description: "Invalid request: `invalid_request` with the field path, or another 400 code of the catalogue", code: "invalid_request", message: "json field 'name': must not be empty", details: { target: "json", issues: [{ path: "name", message: "must not be empty" }] } },
  401: { description: "Missing or invalid credentials (`missing_api_key`, `invalid_api_key`; on runner routes `missing_runner_token`, `invalid_runner_token`)", code: "missing_api_key", message: "Send an API key as 'Authorization: Bearer <key>'." },
  403: { description: "The credentials may not do this: `scope_required`, `admin_key_required`, `quota_exceeded`, `not_leased`", code: "scope_required", message: "This is a predict key: it may only predict and read models and aliases.", details: { scope: "full", key_scope: "predict" } },
  404: { description: "Not found in this project", code: "dataset_not_found", message: "No dataset 'ds_0123456789abcdefghjkmnpqrs' in this project.", details: { id: "ds_0123456789abcdefghjkmnpqrs" } },
  409: { description: "Conflict with the resource's state", code: "dataset_not_trainable", message: "The dataset needs at least 2 labels with 2 images each." },
  411: { description: "Content-Length missing: the body must declare its length", code: "length_required", message: "Send the archive with a Content-Length header." },
  413: { description: "Body too large", code: "payload_too_large", message: "The archive is larger than 100000000 bytes; use a multipart upload.", details: { limit_bytes: 100000000 } },
  415: { description: "Unsupported Content-Type for this route", code: "unsupported_media_type", message: "Send the archive with Content-Type: application/zip (got 'text/plain')." },
  422: { description: "Content rejected (a bad image, archive or model)", code: "not_an_image", message: "The file is not a JPEG or PNG image." },
  429: { description: "Too many requests: `rate_limited`, with a Retry-After header (seconds)", code: "rate_limited", message: "Too many requests from this address; retry in 3 s.", details: { retry_after_s: 3 } },
  500: { description: "Something failed on the server: `internal_error` with an error id to report", code: "internal_error", message: "Something went wrong on our side. Retry; if it persists, report error id err_0123456789abcdefghjkmnpqrs.", details: { error_id: "err_0123456789abcdefghjkmnpqrs" } },
  503: { description: "Unavailable for now: retry after the Retry-After header's seconds when there is one", code: "inference_unavailable", message: "The inference engine could not start. Retry in a moment.", details: { retry_after_s: 5 } },
};

const errorExample = (status: ErrorStatusKey) => {
  const { code, message, details } = ERROR_ENTRIES[status];
  return { error: { code, message, ...(details ? { details } : {}) } };
};

export const errors = Object.fromEntries(
  Object.entries(ERROR_ENTRIES).map(([status, entry]) => [
    status,
    { description: entry.description, content: { "application/json": { schema: errorResponseSchema, example: errorExample(Number(status) as ErrorStatusKey) } } },
  ]),
) as Record<ErrorStatusKey, { description: string; content: { "application/json": { schema: typeof errorResponseSchema; example: unknown } } }>;

/**
 * The same error responses as JSON (for the generated document): every operation can answer 429 (the per-address
 * limit) and 500, any operation with credentials 401, any with parameters or a body 400, any with a body 413 and 415,
 * whatever its route declares: these come from middleware shared by all routes (workers/app.ts).
 */
export function commonErrorResponse(status: ErrorStatusKey) {
  return { description: ERROR_ENTRIES[status].description, content: { "application/json": { schema: { $ref: "#/components/schemas/Error" }, example: errorExample(status) } } };
}

/** A JSON request body with its example (typed: the example must be a valid input). */
export const jsonBody = <T extends z.ZodType>(schema: T, example: z.input<T>) => ({ required: true, content: { "application/json": { schema, example } } });
/** A JSON response with its example (typed: the example must have the response's shape). */
export const jsonResponse = <T extends z.ZodType>(description: string, schema: T, example: z.output<T>) => ({ description, content: { "application/json": { schema, example } } });
/**
 * A body of raw bytes in one of `types`. The schema is plain JSON Schema, not zod, on purpose: @hono/zod-openapi
 * attaches a validator (and a 415 gate) to zod schemas of JSON and form types, and raw bodies are read by the route.
 */
const rawBytes = { type: "string" as const, format: "binary", description: "the raw bytes" };
export const binaryBody = (...types: string[]) => ({ required: true, content: Object.fromEntries(types.map((t) => [t, { schema: rawBytes }])) });
/** A response of raw bytes in one of `types`. */
export const binaryResponse = (description: string, ...types: string[]) => ({ description, content: Object.fromEntries(types.map((t) => [t, { schema: rawBytes }])) });
export const security = [{ bearer: [] }];
export const idParam = (name: string, example: string, description = `the ${name.replace(/_/g, " ")}`) =>
  z.string().min(1).meta({ param: { name, in: "path" }, example, description });
/** The cursor of a list page. */
export const nextCursorSchema = z.string().nullable().describe("pass as ?cursor= for the next page; null on the last page");
