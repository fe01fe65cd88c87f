/**
 * An `operationId` on every operation of the OpenAPI document, so client generators name methods well. Routes may
 * set their own; the rest get one derived from method and path: `GET /v1/datasets` -> `listDatasets`,
 * `GET /v1/datasets/{id}` -> `getDataset`, `POST /v1/datasets` -> `createDataset`, `POST /v1/jobs/{id}/cancel` ->
 * `cancelJob`, `PUT /v1/datasets/{id}/uploads/{upload_id}/parts/{n}` -> `putDatasetUploadPart`.
 */
const SINGULAR: Record<string, string> = { aliases: "alias", deliveries: "delivery", diagnostics: "diagnostics", stats: "stats", files: "file" };
const singular = (word: string) => SINGULAR[word] ?? (word.endsWith("s") && !word.endsWith("ss") ? word.slice(0, -1) : word);
const pascal = (word: string) => word.split(/[^a-zA-Z0-9]+/).filter(Boolean).map((w) => w[0].toUpperCase() + w.slice(1)).join("");
/** Final path words that are actions on the resource before them (`POST .../cancel` -> `cancelJob`). */
const ACTIONS = new Set(["cancel", "complete", "predict", "rollback", "lease", "heartbeat", "fail", "lookup", "compare"]);

export function deriveOperationId(method: string, path: string): string {
  const parts = path.split("/").filter((p) => p && p !== "v1");
  const words = parts.filter((p) => !p.startsWith("{"));
  const endsWithParam = parts.length > 0 && parts[parts.length - 1].startsWith("{");
  const last = words[words.length - 1] ?? "root";
  if (method === "post" && ACTIONS.has(last)) return last + words.slice(0, -1).map((w) => pascal(singular(w))).join("");
  const nouns = words.map((w, i) => (i === words.length - 1 && method === "get" && !endsWithParam ? pascal(w) : pascal(singular(w))));
  const verb = method === "get" ? (endsWithParam ? "get" : "list") : method === "post" ? "create" : method === "put" ? "put" : method === "patch" ? "update" : method === "delete" ? "delete" : method;
  return verb + nouns.join("");
}

interface RouteDefinition {
  type: string;
  route?: { method: string; path: string; operationId?: string };
}

/** Fills in missing operationIds (in place) and makes clashes unique with a numeric suffix. */
export function assignOperationIds(definitions: RouteDefinition[]): void {
  const seen = new Set<string>();
  for (const def of definitions) {
    if (def.type !== "route" || !def.route) continue;
    let id = def.route.operationId ?? deriveOperationId(def.route.method, def.route.path);
    for (let n = 2; seen.has(id); n++) id = `${id.replace(/\d+$/, "")}${n}`;
    seen.add(id);
    def.route.operationId = id;
  }
}
