/**
 * The OpenAPI documents are usable by client generators and people: every operation is named, summarised and has
 * examples; every field says what it means; patterns are plain ECMA-262 (no JavaScript `/.../flags`); every example
 * validates against its own schema; /docs renders every operation without running a script.
 */
import { describe, expect, it } from "vitest";
import { call, callJson } from "./helpers";
import { operationsOf, schemaErrors } from "./openapi-validation";

const METHODS = ["get", "post", "put", "patch", "delete"];

async function documents(): Promise<Record<string, any>> {
  return {
    "/openapi.json": (await callJson("GET", "/openapi.json", { key: null })).body,
    "/runner/openapi.json": (await callJson("GET", "/runner/openapi.json", { key: null })).body,
  };
}

/** Every object property of a schema tree: `where` names it for the failure message. */
function* properties(schema: any, where: string): Generator<{ where: string; field: any }> {
  if (!schema || typeof schema !== "object") return;
  if (Array.isArray(schema)) {
    for (const [i, inner] of schema.entries()) yield* properties(inner, `${where}[${i}]`);
    return;
  }
  for (const [name, field] of Object.entries<any>(schema.properties ?? {})) {
    yield { where: `${where}.${name}`, field };
    yield* properties(field, `${where}.${name}`);
  }
  for (const key of ["items", "additionalProperties", "oneOf", "anyOf", "allOf", "prefixItems", "not"]) {
    if (schema[key] && typeof schema[key] === "object") yield* properties(schema[key], `${where}/${key}`);
  }
}

/** Every `pattern` in a document. */
function patterns(value: any, out: string[] = []): string[] {
  if (value && typeof value === "object") {
    for (const [key, inner] of Object.entries(value)) {
      if (key === "pattern" && typeof inner === "string") out.push(inner);
      else patterns(inner, out);
    }
  }
  return out;
}

describe("the OpenAPI documents", () => {
  it("give every operation an operationId, a summary, described parameters, and examples of its JSON bodies", async () => {
    const problems: string[] = [];
    let operations = 0;
    for (const [url, doc] of Object.entries(await documents())) {
      for (const [path, item] of Object.entries<any>(doc.paths)) {
        for (const [method, op] of Object.entries<any>(item)) {
          if (!METHODS.includes(method)) continue;
          operations++;
          const name = `${url} ${method.toUpperCase()} ${path}`;
          if (!op.operationId) problems.push(`${name}: no operationId`);
          if (!op.summary && !op.description) problems.push(`${name}: no summary or description`);
          for (const p of op.parameters ?? []) if (!p.description && !p.schema?.description) problems.push(`${name}: parameter ${p.name} has no description`);
          const media: Array<[string, any]> = [];
          for (const [type, m] of Object.entries<any>(op.requestBody?.content ?? {})) media.push([`request ${type}`, m]);
          for (const [status, res] of Object.entries<any>(op.responses ?? {})) {
            if (!res.description) problems.push(`${name}: response ${status} has no description`);
            for (const [type, m] of Object.entries<any>(res.content ?? {})) media.push([`response ${status} ${type}`, m]);
          }
          for (const [where, m] of media) {
            const binary = m.schema?.format === "binary";
            if (!binary && m.example === undefined && !m.examples) problems.push(`${name}: ${where} has no example`);
          }
        }
      }
    }
    expect(problems).toEqual([]);
    expect(operations).toBeGreaterThan(60);
    console.log(`openapi: ${operations} operations checked`);
  });

  it("describe every field of every schema, in the components and inline", async () => {
    const problems: string[] = [];
    let fields = 0;
    for (const [url, doc] of Object.entries(await documents())) {
      const roots: Array<[string, any]> = Object.entries<any>(doc.components?.schemas ?? {}).map(([name, s]) => [`${url}#${name}`, s]);
      for (const [path, item] of Object.entries<any>(doc.paths)) {
        for (const [method, op] of Object.entries<any>(item)) {
          for (const p of op.parameters ?? []) roots.push([`${url} ${method} ${path} ?${p.name}`, p.schema]);
          for (const [type, m] of Object.entries<any>(op.requestBody?.content ?? {})) roots.push([`${url} ${method} ${path} request ${type}`, m.schema]);
          for (const [status, res] of Object.entries<any>(op.responses ?? {})) {
            for (const [type, m] of Object.entries<any>(res.content ?? {})) roots.push([`${url} ${method} ${path} ${status} ${type}`, m.schema]);
          }
        }
      }
      for (const [root, schema] of roots) {
        for (const { where, field } of properties(schema, root)) {
          fields++;
          // A bare $ref is described by the component it points to.
          if (!field.description && !(field.$ref && Object.keys(field).length === 1)) problems.push(where);
        }
      }
    }
    expect(problems).toEqual([]);
    console.log(`openapi: ${fields} fields described`);
  });

  it("write patterns as JSON Schema expects them: no JavaScript /.../flags", async () => {
    for (const doc of Object.values(await documents())) {
      const found = patterns(doc);
      expect(found.length).toBeGreaterThan(0);
      for (const pattern of found) {
        expect(pattern, pattern).not.toMatch(/^\/|\/[dgimsuvy]*$/);
        expect(() => new RegExp(pattern, "u"), pattern).not.toThrow();
      }
    }
  });

  it("give examples that validate against their own schemas", async () => {
    const docs = Object.values(await documents());
    const problems: string[] = [];
    let checked = 0;
    for (const doc of docs) {
      const operations = operationsOf([doc]);
      for (const { method, template, op, defs } of operations) {
        const media: Array<[string, any]> = Object.entries<any>(op.requestBody?.content ?? {}).map(([type, m]) => [`request ${type}`, m]);
        for (const [status, res] of Object.entries<any>(op.responses ?? {})) for (const [type, m] of Object.entries<any>(res.content ?? {})) media.push([`${status} ${type}`, m]);
        for (const [where, m] of media) {
          if (!m.schema || m.schema.format === "binary" || !where.includes("json")) continue;
          const examples = m.example !== undefined ? [m.example] : Object.values<any>(m.examples ?? {}).map((e) => e.value);
          for (const example of examples) {
            checked++;
            for (const error of schemaErrors(example, m.schema, defs)) problems.push(`${method} ${template} ${where}: ${error}`);
          }
        }
      }
    }
    expect(problems).toEqual([]);
    expect(checked).toBeGreaterThan(100);
  });

  it("render /docs and /docs/runner as HTML with every operation, without scripts", async () => {
    const docs = await documents();
    for (const [page, url] of [["/docs", "/openapi.json"], ["/docs/runner", "/runner/openapi.json"]]) {
      const res = await call("GET", page, { key: null });
      expect(res.status).toBe(200);
      const html = await res.text();
      expect(html).not.toMatch(/<script/i);
      for (const item of Object.values<any>(docs[url].paths)) {
        for (const op of Object.values<any>(item)) expect(html).toContain(`id="op-${op.operationId}"`);
      }
      // The normalization field's meaning is on the page, not only in the JSON.
      if (page === "/docs") expect(html).toContain("(v / 255 - mean[c]) / std[c]");
    }
  });
});
