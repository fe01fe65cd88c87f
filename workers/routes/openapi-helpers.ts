import { z } from "zod";
import { ERROR_CODES } from "../../shared/errors";

/** OpenAPI snippets shared by the route files. */

/** Every code the API answers with (the catalogue in shared/errors.ts; each code always has the same status). */
export const errorCodeSchema = z.enum(ERROR_CODES).meta({ id: "ErrorCode", description: "Stable machine-readable error code; each code always comes with the same HTTP status (shared/errors.ts)." });

export const errorResponseSchema = z
  .object({ error: z.object({ code: errorCodeSchema, message: z.string(), details: z.record(z.string(), z.unknown()).optional() }) })
  .meta({ id: "Error" });

const errorEntry = (description: string) => ({ description, content: { "application/json": { schema: errorResponseSchema } } });

export const errors = {
  400: errorEntry("Invalid request: `invalid_request` with the field path"),
  401: errorEntry("Missing or invalid API key"),
  403: errorEntry("The key may not do this: `scope_required`, `admin_key_required`, `quota_exceeded`"),
  404: errorEntry("Not found in this project"),
  409: errorEntry("Conflict with the resource's state"),
  413: errorEntry("Body too large"),
  415: errorEntry("Unsupported content type"),
  422: errorEntry("Content rejected (bad image, malformed model)"),
  429: errorEntry("Too many requests: `rate_limited`, with a Retry-After header (seconds)"),
  503: errorEntry("Unavailable for now: retry after the Retry-After header's seconds when there is one"),
};

export const jsonBody = <T extends z.ZodType>(schema: T) => ({ required: true, content: { "application/json": { schema } } });
export const jsonResponse = <T extends z.ZodType>(description: string, schema: T) => ({ description, content: { "application/json": { schema } } });
export const binaryBody = (...types: string[]) => ({
  required: true,
  content: Object.fromEntries(types.map((t) => [t, { schema: z.string().meta({ format: "binary" }) }])),
});
export const security = [{ bearer: [] }];
export const idParam = (name: string, example: string) => z.string().min(1).meta({ param: { name, in: "path" }, example });
