/**
 * Response validation against the served OpenAPI documents: every response a workerd test gets through `call()`
 * (tests/workers/helpers.ts) is checked here, so the documents cannot drift from what the routes send. For a request
 * that matches an operation of /openapi.json or /runner/openapi.json: the status must be one the operation documents,
 * the Content-Type one of that response's media types, and a JSON body must validate against the response's schema
 * (JSON Schema 2020-12, @cfworker/json-schema: no code generation, so it runs inside workerd). Requests that match no
 * operation (`/`, `/docs`, unknown routes) are not checked. Counts of what was checked: `validationCounts`.
 */
import { Validator, type Schema } from "@cfworker/json-schema";

type Doc = any;
interface Operation {
  method: string;
  template: string;
  regex: RegExp;
  literalSegments: number;
  op: any;
  defs: Record<string, Schema>;
}

export const DOCUMENT_PATHS = ["/openapi.json", "/runner/openapi.json"];
export const validationCounts = { checked: 0, bodiesValidated: 0, unmatched: 0 };

/** `#/components/schemas/X` refs as `#/$defs/X`, so one schema object carries everything it refers to. */
function rewriteRefs<T>(value: T): T {
  if (Array.isArray(value)) return value.map(rewriteRefs) as T;
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value)) {
      out[key] = key === "$ref" && typeof inner === "string" ? inner.replace("#/components/schemas/", "#/$defs/") : rewriteRefs(inner);
    }
    return out as T;
  }
  return value;
}

const operationCache = new WeakMap<Doc[], Operation[]>();
export function operationsOf(docs: Doc[]): Operation[] {
  const cached = operationCache.get(docs);
  if (cached) return cached;
  const out: Operation[] = [];
  for (const doc of docs) {
    const defs = rewriteRefs(doc.components?.schemas ?? {});
    for (const [template, item] of Object.entries<any>(doc.paths ?? {})) {
      const segments = template.split("/").filter(Boolean);
      const regex = new RegExp("^/" + segments.map((s) => (s.startsWith("{") ? "[^/]+" : s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))).join("/") + "$");
      for (const [method, op] of Object.entries<any>(item)) {
        out.push({ method: method.toUpperCase(), template, regex, literalSegments: segments.filter((s) => !s.startsWith("{")).length, op, defs });
      }
    }
  }
  // Most specific first: `/v1/models/compare` before `/v1/models/{id}`.
  out.sort((a, b) => b.literalSegments - a.literalSegments);
  operationCache.set(docs, out);
  return out;
}

const validators = new Map<unknown, Validator>();
function validatorFor(schema: any, defs: Record<string, Schema>): Validator {
  let validator = validators.get(schema);
  if (!validator) {
    validator = new Validator({ ...rewriteRefs(schema), $defs: defs } as Schema, "2020-12", false);
    validators.set(schema, validator);
  }
  return validator;
}

/**
 * Builds every response validator of the documents up front (the setup file calls it before each test file), so the
 * first checks inside a test cost no more than the later ones: a test that races the queue consumer (which runs
 * about 1 s after a send) keeps the timing it had without validation.
 */
export function prepareValidators(docs: Doc[]): number {
  let count = 0;
  for (const { op, defs } of operationsOf(docs)) {
    for (const res of Object.values<any>(op.responses ?? {})) {
      const schema = res.content?.["application/json"]?.schema;
      if (schema && schema.format !== "binary") {
        validatorFor(schema, defs);
        count++;
      }
    }
  }
  return count;
}

const mediaType = (header: string | null) => (header ?? "").split(";")[0].trim().toLowerCase();

/** The schema errors of `value` against `schema` (refs into the document's components), as readable lines. */
export function schemaErrors(value: unknown, schema: any, defs: Record<string, Schema>): string[] {
  const result = validatorFor(schema, defs).validate(value);
  if (result.valid) return [];
  // The innermost errors say what is wrong; the "a subschema had errors" chain above them does not.
  return result.errors.filter((e) => !/subschema|Property .* does not match schema|Items did not match/.test(e.error)).slice(0, 8).map((e) => `${e.instanceLocation}: ${e.error}`);
}

/**
 * Throws when `response` (to `method` `url`) does not match the operation it was sent to. Reads a clone of JSON bodies
 * only; streams (SSE) and binary bodies are checked by status and Content-Type alone.
 */
export async function assertDocumentedResponse(docs: Doc[], method: string, url: string, response: Response): Promise<void> {
  const pathname = new URL(url).pathname;
  const operation = operationsOf(docs).find((o) => o.method === method.toUpperCase() && o.regex.test(pathname));
  if (!operation) {
    validationCounts.unmatched++;
    return;
  }
  validationCounts.checked++;
  const where = `${method} ${pathname} (${operation.op.operationId}, ${operation.template}) answered ${response.status}`;
  const documented = operation.op.responses?.[String(response.status)] ?? operation.op.responses?.default;
  if (!documented) throw new Error(`${where}, a status its OpenAPI operation does not document (it lists ${Object.keys(operation.op.responses ?? {}).join(", ")})`);
  const type = mediaType(response.headers.get("content-type"));
  const content = documented.content as Record<string, { schema?: unknown }> | undefined;
  if (!content) {
    if (response.body && response.status !== 204 && response.headers.get("content-length") !== "0") {
      const text = await response.clone().text();
      if (text) throw new Error(`${where} with a ${type || "untyped"} body, but the document says this response has none`);
    }
    return;
  }
  const media = content[type] ?? (type.startsWith("image/") ? content["image/*"] : undefined) ?? content["application/octet-stream"];
  if (!media) throw new Error(`${where} with Content-Type '${type}', but the document lists only ${Object.keys(content).join(", ")}`);
  if (type !== "application/json" || !media.schema || (media.schema as { format?: string }).format === "binary") return;
  const text = await response.clone().text();
  const errors = schemaErrors(text ? JSON.parse(text) : null, media.schema, operation.defs);
  validationCounts.bodiesValidated++;
  if (errors.length) throw new Error(`${where} with a body that does not match the document:\n  ${errors.join("\n  ")}\nbody: ${text.slice(0, 600)}`);
}
