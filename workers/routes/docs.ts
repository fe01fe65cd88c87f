/**
 * `GET /docs` (the public API) and `GET /docs/runner` (the runner protocol): the reference rendered on the server from
 * the OpenAPI document into plain HTML, so it reads offline, with scripts off, and with nothing fetched from elsewhere.
 * The page runs no script at all; its one style carries a per-request nonce, and the Content-Security-Policy allows
 * nothing else. Every string from the document is escaped before it goes into the page.
 */
import { DOCS_URLS, DOCUMENT_URLS, type DocumentName } from "./openapi-documents";

export const docsContentSecurityPolicy = (nonce: string) =>
  `default-src 'none'; script-src 'none'; style-src 'nonce-${nonce}'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;

/** Rendered pages are cached with this in place of the nonce, which each response fills in. */
export const DOCS_NONCE_SLOT = "{{nonce}}";

const escapeHtml = (value: unknown) =>
  String(value).replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]!);
/** Inline `code` spans of the document's Markdown-ish descriptions, after escaping. */
const prose = (text: unknown) => (text === undefined ? "" : escapeHtml(text).replace(/`([^`]+)`/g, "<code>$1</code>"));
const refName = (ref: string) => ref.split("/").pop()!;
const anchor = (name: string) => `schema-${name.replace(/[^A-Za-z0-9_-]/g, "_")}`;

/** A short type expression for a JSON Schema: `string`, `integer | null`, `array of Dataset` (linked), `"a" | "b"`. */
export function typeLabel(schema: any): string {
  if (!schema || typeof schema !== "object") return "any";
  if (schema.$ref) return `<a href="#${anchor(refName(schema.$ref))}">${escapeHtml(refName(schema.$ref))}</a>`;
  if (schema.const !== undefined) return `<code>${escapeHtml(JSON.stringify(schema.const))}</code>`;
  if (schema.enum) return schema.enum.map((v: unknown) => `<code>${escapeHtml(JSON.stringify(v))}</code>`).join(" | ");
  for (const key of ["oneOf", "anyOf", "allOf"]) if (schema[key]) return schema[key].map(typeLabel).join(key === "allOf" ? " &amp; " : " | ");
  const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
  const labels = types.map((type: string) => {
    if (type === "array") return schema.prefixItems ? `[${schema.prefixItems.map(typeLabel).join(", ")}]` : `array of ${typeLabel(schema.items)}`;
    if (type === "object" && schema.additionalProperties && typeof schema.additionalProperties === "object") return `map of ${typeLabel(schema.additionalProperties)}`;
    return escapeHtml(schema.format ? `${type} (${schema.format})` : type);
  });
  return labels.join(" | ") || "any";
}

const constraints = (schema: any) =>
  ["minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems", "pattern", "default"]
    .filter((key) => schema?.[key] !== undefined)
    .map((key) => `${key}: <code>${escapeHtml(JSON.stringify(schema[key]))}</code>`)
    .join(", ");

/** The fields of an object schema as a table; nested objects get their own rows (`ingest.done`). */
function fieldRows(schema: any, prefix = "", depth = 0): string {
  if (!schema || depth > 4) return "";
  const variants = schema.oneOf ?? schema.anyOf;
  if (variants && !schema.properties) return variants.map((variant: any) => fieldRows(variant, prefix, depth + 1)).join("");
  const item = schema.type === "array" || (Array.isArray(schema.type) && schema.type.includes("array")) ? schema.items : null;
  if (item && !item.$ref) return fieldRows(item, prefix ? `${prefix}[]` : "[]", depth + 1);
  const required = new Set<string>(schema.required ?? []);
  return Object.entries<any>(schema.properties ?? {})
    .map(([name, field]) => {
      const path = prefix ? `${prefix}.${name}` : name;
      const row = `<tr><td><code>${escapeHtml(path)}</code>${required.has(name) ? "" : " <small>optional</small>"}</td><td>${typeLabel(field)}</td><td>${prose(field.description)}${constraints(field) ? `<br><small>${constraints(field)}</small>` : ""}</td></tr>`;
      return row + fieldRows(field, path, depth + 1);
    })
    .join("");
}

function fieldTable(schema: any): string {
  const rows = fieldRows(schema);
  const head = schema?.$ref ? `<p>Schema: ${typeLabel(schema)}</p>` : "";
  return rows ? `${head}<table><tr><th>field</th><th>type</th><th>description</th></tr>${rows}</table>` : head || `<p>Type: ${typeLabel(schema)}</p>`;
}

function examplesOf(media: any): string {
  const list: unknown[] = media.example !== undefined ? [media.example] : Object.values<any>(media.examples ?? {}).map((e) => e.value);
  return list.map((value) => `<pre>${escapeHtml(typeof value === "string" ? value : JSON.stringify(value, null, 2))}</pre>`).join("");
}

function content(body: any): string {
  return Object.entries<any>(body?.content ?? {})
    .map(([type, media]) => `<h5><code>${escapeHtml(type)}</code></h5>${media.schema ? fieldTable(media.schema) : ""}${examplesOf(media)}`)
    .join("");
}

function operation(path: string, method: string, op: any): string {
  const params = (op.parameters ?? [])
    .map((p: any) => `<tr><td><code>${escapeHtml(p.name)}</code> <small>${escapeHtml(p.in)}${p.required ? "" : ", optional"}</small></td><td>${typeLabel(p.schema)}</td><td>${prose(p.description ?? p.schema?.description)}</td></tr>`)
    .join("");
  const security = (op.security ?? []).flatMap((s: Record<string, unknown>) => Object.keys(s));
  const responses = Object.entries<any>(op.responses ?? {})
    .map(([status, res]) => `<h4>${escapeHtml(status)} <small>${prose(res.description)}</small></h4>${content(res)}`)
    .join("");
  return `<section class="op" id="op-${escapeHtml(op.operationId)}">
<h3><span class="m ${escapeHtml(method)}">${escapeHtml(method.toUpperCase())}</span> <code>${escapeHtml(path)}</code></h3>
<p>${prose(op.summary)}</p>${op.description ? `<p>${prose(op.description)}</p>` : ""}
<p><small>operationId <code>${escapeHtml(op.operationId)}</code>${security.length ? ` · auth: ${security.map(escapeHtml).join(", ")}` : ""}</small></p>
${params ? `<h4>Parameters</h4><table><tr><th>name</th><th>type</th><th>description</th></tr>${params}</table>` : ""}
${op.requestBody ? `<h4>Request body</h4>${content(op.requestBody)}` : ""}
<details><summary>Responses</summary>${responses}</details></section>`;
}

const STYLE = `body{font:15px/1.5 system-ui,sans-serif;max-width:1040px;margin:2rem auto;padding:0 1rem;color:#222}
.op{border:1px solid #ddd;border-radius:6px;margin:1rem 0;padding:.3rem 1rem}h3{margin:.4rem 0}
.m{display:inline-block;min-width:4.5rem;font-weight:700}.get{color:#07a}.post{color:#063}.put{color:#a50}.patch{color:#a50}.delete{color:#c22}
code,pre{background:#f4f4f4;border-radius:4px}pre{padding:.5rem;overflow:auto;font-size:13px}
table{border-collapse:collapse;width:100%;font-size:14px}td,th{border-top:1px solid #eee;padding:.2rem .4rem;text-align:left;vertical-align:top}
nav ul{columns:2}summary{cursor:pointer;font-weight:600}`;

/** The whole reference page of one OpenAPI document: operations by tag, then every schema. */
export function renderDocsHtml(doc: any, name: DocumentName, nonce: string): string {
  const operations: { tag: string; html: string; label: string; id: string }[] = [];
  for (const [path, item] of Object.entries<any>(doc.paths ?? {})) {
    for (const [method, op] of Object.entries<any>(item)) {
      if (!["get", "post", "put", "patch", "delete"].includes(method)) continue;
      operations.push({ tag: op.tags?.[0] ?? "other", html: operation(path, method, op), label: `${method.toUpperCase()} ${path}`, id: op.operationId });
    }
  }
  const tags = [...new Set(operations.map((o) => o.tag))];
  const other: DocumentName = name === "public" ? "runner" : "public";
  const schemas = Object.entries<any>(doc.components?.schemas ?? {})
    .map(([schemaName, schema]) => `<section id="${anchor(schemaName)}"><h3>${escapeHtml(schemaName)}</h3><p>${prose(schema.description)}</p>${fieldTable(schema)}</section>`)
    .join("");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(doc.info.title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style nonce="${nonce}">${STYLE}</style></head><body>
<h1>${escapeHtml(doc.info.title)}</h1><p>${prose(doc.info.description)} Version ${escapeHtml(doc.info.version)}.</p>
<p>Machine-readable: <a href="${DOCUMENT_URLS[name]}">${DOCUMENT_URLS[name]}</a> (OpenAPI 3.1). ${name === "public" ? "The runner protocol" : "The public API"}: <a href="${DOCS_URLS[other]}">${DOCS_URLS[other]}</a>.</p>
<nav><h2>Operations</h2>${tags.map((tag) => `<h4>${escapeHtml(tag)}</h4><ul>${operations.filter((o) => o.tag === tag).map((o) => `<li><a href="#op-${escapeHtml(o.id)}">${escapeHtml(o.label)}</a></li>`).join("")}</ul>`).join("")}</nav>
${tags.map((tag) => `<h2>${escapeHtml(tag)}</h2>${operations.filter((o) => o.tag === tag).map((o) => o.html).join("")}`).join("")}
<h2>Schemas</h2>${schemas}
</body></html>`;
}
