/**
 * The backbone import form is read as a stream (workers/services/streamed-form.ts): the zip goes to R2 in fixed
 * 8 MiB parts and is read back in ranges, so the isolate never holds the body. Each test uses its own project and its
 * own R2 keys.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { buildTinyModel, tinySpec } from "../fixtures/tiny-model";
import { FORM_FILE_PART_BYTES, receiveStreamedForm } from "../../workers/services/streamed-form";
import { concatBytes } from "../../shared/bytes";
import { buildZip, callJson, createProject } from "./helpers";

const encoder = new TextEncoder();

/** A multipart body by hand, so tests choose the boundary, the part order and how the bytes are chunked. */
function formBody(boundary: string, parts: { name: string; filename?: string; body: Uint8Array | string }[], closing = true): Uint8Array {
  const chunks: Uint8Array[] = [];
  for (const part of parts) {
    const disposition = `form-data; name="${part.name}"${part.filename ? `; filename="${part.filename}"` : ""}`;
    chunks.push(encoder.encode(`--${boundary}\r\nContent-Disposition: ${disposition}\r\n${part.filename ? "Content-Type: application/octet-stream\r\n" : ""}\r\n`));
    chunks.push(typeof part.body === "string" ? encoder.encode(part.body) : part.body);
    chunks.push(encoder.encode("\r\n"));
  }
  if (closing) chunks.push(encoder.encode(`--${boundary}--\r\n`));
  return concatBytes(chunks);
}

/** `bytes` as a stream of chunks of the given sizes, cycling. */
function chunked(bytes: Uint8Array, sizes: number[]): ReadableStream<Uint8Array> {
  let offset = 0;
  let i = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      const size = sizes[i++ % sizes.length];
      controller.enqueue(bytes.slice(offset, offset + size));
      offset += size;
    },
  });
}

const limits = { maxBodyBytes: 64 * 1024 * 1024, maxFieldBytes: 1024, fileField: "model", tooLarge: (n: number) => new Error(`too large: ${n}`) };

/** The sha256 of what R2 holds under `key` (compared as hashes: a deep compare of 16 MB arrays exhausts the isolate). */
async function stored(key: string): Promise<string | null> {
  const object = await env.BUCKET.get(key);
  return object ? digest(new Uint8Array(await object.arrayBuffer())) : null;
}

async function digest(bytes: Uint8Array): Promise<string> {
  return [...new Uint8Array(await crypto.subtle.digest("SHA-256", bytes))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function pattern(length: number, multiplier: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * multiplier + 7) & 0xff;
  return out;
}

describe("receiveStreamedForm", () => {
  it("keeps text fields and stores the file field byte for byte in R2, whatever the chunking (boundary split across chunks)", async () => {
    const boundary = "----edgetuneBoundary7";
    const file = pattern(300_000, 31);
    // Plant the delimiter's first bytes inside the file so a naive search would cut it there.
    file.set(encoder.encode(`\r\n--${boundary.slice(0, 10)}`), 1000);
    const body = formBody(boundary, [{ name: "spec", body: '{"name":"x"}' }, { name: "model", filename: "m.zip", body: file }]);
    for (const sizes of [[1, 2, 3, 5, 7, 11, 4096], [65_536], [body.length]]) {
      const key = `test/streamed-form/${sizes.join("-")}`;
      const form = await receiveStreamedForm(chunked(body, sizes), `multipart/form-data; boundary=${boundary}`, env.BUCKET, key, limits);
      expect(form.fields.get("spec")).toBe('{"name":"x"}');
      expect(form.file).toMatchObject({ field: "model", filename: "m.zip", key, size: file.length });
      expect(await stored(key)).toBe(await digest(file));
    }
  });

  it("stores a file larger than one R2 part as a multipart upload of equal parts, and accepts a spec sent as a file", async () => {
    const boundary = "b0undary";
    const file = pattern(FORM_FILE_PART_BYTES * 2 + 12_345, 7);
    const body = formBody(boundary, [{ name: "model", filename: "big.zip", body: file }, { name: "spec", filename: "spec.json", body: '{"a":1}' }]);
    const key = "test/streamed-form/big";
    const form = await receiveStreamedForm(chunked(body, [1 << 20]), `multipart/form-data; boundary="${boundary}"`, env.BUCKET, key, limits);
    expect(form.fields.get("spec")).toBe('{"a":1}');
    expect(form.file?.size).toBe(file.length);
    expect(await stored(key)).toBe(await digest(file));
  });

  it("refuses a body cut off before its closing boundary, a text field past its limit and a second file, leaving nothing in R2", async () => {
    const boundary = "xyz";
    const contentType = `multipart/form-data; boundary=${boundary}`;
    const file = new Uint8Array(10_000).fill(9);
    const cases: [Uint8Array, RegExp][] = [
      [formBody(boundary, [{ name: "model", filename: "m.zip", body: file }], false), /cut off/],
      [formBody(boundary, [{ name: "spec", body: "x".repeat(2000) }, { name: "model", filename: "m.zip", body: file }]), /longer than 1024 bytes/],
      [formBody(boundary, [{ name: "model", filename: "m.zip", body: file }, { name: "model", filename: "n.zip", body: file }]), /sent twice/],
    ];
    for (const [i, [body, message]] of cases.entries()) {
      const key = `test/streamed-form/refused-${i}`;
      await expect(receiveStreamedForm(chunked(body, [777]), contentType, env.BUCKET, key, limits)).rejects.toThrow(message);
      expect(await stored(key)).toBeNull();
    }
    await expect(receiveStreamedForm(chunked(new Uint8Array(10), [10]), "multipart/form-data", env.BUCKET, "test/streamed-form/nb", limits)).rejects.toThrow(/no boundary/);
  });

  it("stops reading at maxBodyBytes with the caller's error", async () => {
    const body = formBody("q", [{ name: "model", filename: "m.zip", body: new Uint8Array(50_000) }]);
    await expect(receiveStreamedForm(chunked(body, [4096]), "multipart/form-data; boundary=q", env.BUCKET, "test/streamed-form/limit", { ...limits, maxBodyBytes: 20_000 })).rejects.toThrow(/too large/);
    expect(await stored("test/streamed-form/limit")).toBeNull();
  });
});

describe("POST /v1/backbones (multipart, streamed)", () => {
  const uploads = async (projectId: string) => (await env.BUCKET.list({ prefix: `projects/${projectId}/uploads/` })).objects.length;

  it("imports a zip larger than one R2 part and leaves no temporary upload behind", async () => {
    const { key, projectId } = await createProject();
    const model = buildTinyModel();
    // 9 MB of stored (incompressible) padding beside the model makes the body span two R2 parts.
    const padding = crypto.getRandomValues(new Uint8Array(65_536));
    const big = new Uint8Array(9 * 1024 * 1024);
    for (let i = 0; i < big.length; i += padding.length) big.set(padding.subarray(0, Math.min(padding.length, big.length - i)), i);
    const form = new FormData();
    form.set("spec", JSON.stringify(tinySpec()));
    form.set("model", new Blob([buildZip({ ...model.files, "README.bin": big }, 0)], { type: "application/zip" }), "model.zip");
    const res = await callJson("POST", "/v1/backbones", { key, body: form });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(await uploads(projectId)).toBe(0);
  });

  it("deletes the temporary upload when the import is refused", async () => {
    const { key, projectId } = await createProject();
    const form = new FormData();
    form.set("spec", JSON.stringify(tinySpec()));
    form.set("model", new Blob([buildZip({ "notes.txt": encoder.encode("no model here") })], { type: "application/zip" }), "model.zip");
    const res = await callJson("POST", "/v1/backbones", { key, body: form });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe("model_json_missing");
    expect(await uploads(projectId)).toBe(0);
  });
});
