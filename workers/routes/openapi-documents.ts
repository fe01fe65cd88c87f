/**
 * The two OpenAPI 3.1 documents, generated from the routes' zod schemas:
 * - `/openapi.json`: the public API (what apps, the SDK and the CLI call with a project key);
 * - `/runner/openapi.json`: the runner protocol (`/v1/runner/...`, called by runners with a runner token), which
 *   client generators for the public API should not see.
 * Both are generated once per isolate (the routes do not change while it lives) and served as is.
 */
import { OpenApiGeneratorV31 } from "@asteasolutions/zod-to-openapi";
import { commonErrorResponse } from "./openapi-helpers";

export type DocumentName = "public" | "runner";

interface Definition {
  type: string;
  route?: { path: string };
  componentType?: string;
  name?: string;
}

export const RUNNER_PATH_PREFIX = "/v1/runner/";
export const DOCUMENT_URLS: Record<DocumentName, string> = { public: "/openapi.json", runner: "/runner/openapi.json" };
export const DOCS_URLS: Record<DocumentName, string> = { public: "/docs", runner: "/docs/runner" };

const INFO: Record<DocumentName, { title: string; description: string }> = {
  public: {
    title: "edgetune API",
    description:
      "Serverless transfer learning: upload images, fine-tune a head on a frozen backbone, predict at the edge. Every /v1 route takes `Authorization: Bearer <api key>`; a key sees only its project. Errors always have the body `{\"error\": {\"code\", \"message\", \"details\"?}}` with a stable code. The runner protocol is a document of its own: /runner/openapi.json.",
  },
  runner: {
    title: "edgetune runner protocol",
    description:
      "What a runner (gpu-runner/) calls to lease and run jobs: it needs no inbound connectivity, authenticates with its own runner token (POST /v1/runners in the public API), renews its lease by heartbeat, reports epochs, uploads artifacts and completes or fails. Every report carries the lease token; a runner that lost its lease gets 409 `lease_lost` and changes nothing.",
  },
};

const belongsTo = (def: Definition, name: DocumentName): boolean => {
  if (def.type === "route" && def.route) return def.route.path.startsWith(RUNNER_PATH_PREFIX) === (name === "runner");
  // Each document names only the security scheme its routes use.
  if (def.type === "component" && def.componentType === "securitySchemes") return (def.name === "runnerToken") === (name === "runner");
  return true;
};

const cache = new Map<DocumentName, unknown>();

/** The OpenAPI 3.1 document `name` of an app's registry definitions (generated once, then cached). */
export function openApiDocument(definitions: readonly Definition[], name: DocumentName): any {
  let document = cache.get(name);
  if (!document) {
    const generator = new OpenApiGeneratorV31(definitions.filter((def) => belongsTo(def, name)) as any);
    document = generator.generateDocument({
      openapi: "3.1.0",
      info: { ...INFO[name], version: "1.0.0" },
      externalDocs: { description: `Rendered reference: ${DOCS_URLS[name]}`, url: DOCS_URLS[name] },
    });
    addCommonResponses(document);
    cache.set(name, document);
  }
  return document;
}

/** Responses every route can give from the shared middleware (see `commonErrorResponse`), where a route left them out. */
function addCommonResponses(document: any): void {
  for (const item of Object.values<any>(document.paths ?? {})) {
    for (const op of Object.values<any>(item)) {
      const responses = (op.responses ??= {});
      const add = (status: 400 | 401 | 403 | 413 | 415 | 429 | 500) => (responses[status] ??= commonErrorResponse(status));
      if (op.security?.length) add(401);
      // A predict-scoped key is refused on most routes (scope_required); admin routes refuse project keys.
      if (op.security?.some((s: Record<string, unknown>) => "bearer" in s)) add(403);
      if (op.parameters?.length || op.requestBody) add(400);
      if (op.requestBody) {
        add(413);
        add(415);
      }
      add(429);
      add(500);
    }
  }
}
