import { z } from "zod";

/** OpenAPI snippets shared by the route files. */
export const errorResponseSchema = z
  .object({ error: z.object({ code: z.string(), message: z.string(), details: z.record(z.string(), z.unknown()).optional() }) })
  .meta({ id: "Error" });

const errorEntry = (description: string) => ({ description, content: { "application/json": { schema: errorResponseSchema } } });

export const errors = {
  400: errorEntry("Invalid request: `invalid_request` with the field path"),
  401: errorEntry("Missing or invalid API key"),
  404: errorEntry("Not found in this project"),
  409: errorEntry("Conflict with the resource's state"),
  413: errorEntry("Body too large"),
  415: errorEntry("Unsupported content type"),
  422: errorEntry("Content rejected (bad image, malformed model)"),
};

export const jsonBody = <T extends z.ZodType>(schema: T) => ({ required: true, content: { "application/json": { schema } } });
export const jsonResponse = <T extends z.ZodType>(description: string, schema: T) => ({ description, content: { "application/json": { schema } } });
export const binaryBody = (...types: string[]) => ({
  required: true,
  content: Object.fromEntries(types.map((t) => [t, { schema: z.string().meta({ format: "binary" }) }])),
});
export const security = [{ bearer: [] }];
export const idParam = (name: string, example: string) => z.string().min(1).meta({ param: { name, in: "path" }, example });
