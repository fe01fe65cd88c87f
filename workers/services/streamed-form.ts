/**
 * A multipart/form-data body read as a stream: small text fields are kept (each at most `maxFieldBytes`), the one file
 * field is written to R2 as it arrives, through an R2 multipart upload of fixed 8 MiB parts (R2 wants every part but
 * the last the same size, at least 5 MiB). `Request.formData()` would hold the whole body in the isolate: a 100 MB
 * model zip in a 128 MB isolate. Peak memory here is one part buffer (8 MiB) plus one body chunk and the boundary
 * tail, whatever the body's size.
 */
import { ApiError } from "../../shared/errors";
import { concatBytes } from "../../shared/bytes";

/** R2 multipart part size: every part but the last must have it (and be at least 5 MiB). */
export const FORM_FILE_PART_BYTES = 8 * 1024 * 1024;
const MAX_PART_HEADER_BYTES = 16 * 1024;
const MAX_FIELDS = 16;

export interface StreamedForm {
  /** The text fields, by name (the last one wins when a name repeats). */
  fields: Map<string, string>;
  /** The file field as stored in R2, or null when the body had none. */
  file: { field: string; filename: string; key: string; size: number } | null;
}

export interface StreamedFormLimits {
  /** The body as a whole, file included. */
  maxBodyBytes: number;
  maxFieldBytes: number;
  /** The name of the one field stored in R2 (the others are text). */
  fileField: string;
  tooLarge(bytes: number): Error;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function malformed(message: string): ApiError {
  return new ApiError("malformed_multipart", `The multipart/form-data body could not be parsed: ${message}.`);
}

/** The boundary of a multipart/form-data content type, or an error that says what is wrong with it. */
export function formBoundary(contentType: string): string {
  const match = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;]{1,70}))/i.exec(contentType);
  const boundary = match?.[1] ?? match?.[2];
  if (!boundary) throw malformed("the content-type has no boundary parameter");
  return boundary;
}

function indexOf(haystack: Uint8Array, needle: Uint8Array, from = 0): number {
  const first = needle[0];
  const last = haystack.length - needle.length;
  outer: for (let i = haystack.indexOf(first, from); i !== -1 && i <= last; i = haystack.indexOf(first, i + 1)) {
    for (let j = 1; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function parsePartHeaders(bytes: Uint8Array): { name: string; filename: string | null } {
  const text = decoder.decode(bytes);
  const disposition = text.split("\r\n").find((line) => /^content-disposition:/i.test(line));
  if (!disposition) throw malformed("a part has no Content-Disposition header");
  const param = (key: string) => {
    const m = new RegExp(`;\\s*${key}="([^"]*)"`, "i").exec(disposition) ?? new RegExp(`;\\s*${key}=([^;\\s]+)`, "i").exec(disposition);
    return m ? m[1] : null;
  };
  const name = param("name");
  if (name === null) throw malformed("a part's Content-Disposition has no name");
  return { name, filename: param("filename") };
}

/** Accumulates the file field into fixed-size R2 multipart parts. */
class R2PartWriter {
  private upload: R2MultipartUpload | null = null;
  private readonly parts: R2UploadedPart[] = [];
  private buffer = new Uint8Array(FORM_FILE_PART_BYTES);
  private filled = 0;
  size = 0;

  constructor(private readonly bucket: R2Bucket, readonly key: string) {}

  async write(bytes: Uint8Array): Promise<void> {
    this.size += bytes.length;
    let offset = 0;
    while (offset < bytes.length) {
      const take = Math.min(bytes.length - offset, this.buffer.length - this.filled);
      this.buffer.set(bytes.subarray(offset, offset + take), this.filled);
      this.filled += take;
      offset += take;
      if (this.filled === this.buffer.length) await this.flush();
    }
  }

  private async flush(): Promise<void> {
    this.upload ??= await this.bucket.createMultipartUpload(this.key, { httpMetadata: { contentType: "application/zip" } });
    this.parts.push(await this.upload.uploadPart(this.parts.length + 1, this.buffer.subarray(0, this.filled)));
    this.filled = 0;
  }

  async finish(): Promise<void> {
    if (!this.upload) {
      // Smaller than one part: one plain put.
      await this.bucket.put(this.key, this.buffer.slice(0, this.filled), { httpMetadata: { contentType: "application/zip" } });
      return;
    }
    if (this.filled > 0) await this.flush();
    await this.upload.complete(this.parts);
  }

  async abort(): Promise<void> {
    await this.upload?.abort().catch(() => undefined);
    await this.bucket.delete(this.key).catch(() => undefined);
  }
}

/**
 * Reads a multipart/form-data body, storing its file field under `key` in R2. The caller deletes `key` when done with
 * it (and this function deletes it itself when it throws). Throws `malformed_multipart` for a body that is not a
 * well-formed form, `limits.tooLarge` past `maxBodyBytes`, and `invalid_request` for a text field past `maxFieldBytes`
 * or a second file field.
 */
export async function receiveStreamedForm(body: ReadableStream<Uint8Array>, contentType: string, bucket: R2Bucket, key: string, limits: StreamedFormLimits): Promise<StreamedForm> {
  const boundary = formBoundary(contentType);
  // The body starts with "--boundary"; prefixing CRLF makes every delimiter the same "\r\n--boundary".
  const delimiter = encoder.encode(`\r\n--${boundary}`);
  const fields = new Map<string, string>();
  let file: R2PartWriter | null = null;
  let fileInfo: { field: string; filename: string } | null = null;
  let total = 0;
  let pending: Uint8Array = encoder.encode("\r\n");
  let state = "preamble" as "preamble" | "after-delimiter" | "headers" | "body" | "done";
  let current: { name: string; isFile: boolean; chunks: Uint8Array[]; bytes: number } | null = null;

  const emit = async (bytes: Uint8Array) => {
    if (bytes.length === 0 || !current) return;
    if (current.isFile) {
      await file!.write(bytes);
      return;
    }
    current.bytes += bytes.length;
    if (current.bytes > limits.maxFieldBytes) {
      throw new ApiError("invalid_request", `form field '${current.name}': longer than ${limits.maxFieldBytes} bytes`, { target: "form", issues: [{ path: current.name, message: `at most ${limits.maxFieldBytes} bytes` }] });
    }
    current.chunks.push(bytes.slice());
  };
  const endPart = () => {
    if (current && !current.isFile) {
      if (fields.size >= MAX_FIELDS && !fields.has(current.name)) throw malformed(`more than ${MAX_FIELDS} fields`);
      fields.set(current.name, decoder.decode(concatBytes(current.chunks)));
    }
    current = null;
  };

  /** Consumes what `pending` allows; returns false when it needs more bytes. */
  const step = async (final: boolean): Promise<boolean> => {
    switch (state) {
      case "preamble": {
        const at = indexOf(pending, delimiter);
        if (at === -1) {
          pending = pending.slice(Math.max(0, pending.length - delimiter.length + 1));
          return false;
        }
        pending = pending.subarray(at + delimiter.length);
        state = "after-delimiter";
        return true;
      }
      case "after-delimiter": {
        if (pending.length < 2) return false;
        if (pending[0] === 0x2d && pending[1] === 0x2d) {
          state = "done";
          return false;
        }
        // Transport padding (spaces, tabs) may precede the CRLF.
        const lineEnd = indexOf(pending, encoder.encode("\r\n"));
        if (lineEnd === -1) {
          if (pending.length > 256) throw malformed("a boundary line does not end");
          return false;
        }
        pending = pending.subarray(lineEnd + 2);
        state = "headers";
        return true;
      }
      case "headers": {
        const end = indexOf(pending, encoder.encode("\r\n\r\n"));
        if (end === -1) {
          if (pending.length > MAX_PART_HEADER_BYTES) throw malformed(`a part's headers are longer than ${MAX_PART_HEADER_BYTES} bytes`);
          return false;
        }
        const { name, filename } = parsePartHeaders(pending.subarray(0, end));
        pending = pending.subarray(end + 4);
        // The file field goes to R2 whether or not it names a file; any other field (`-F spec=@spec.json` included)
        // is text, bounded by maxFieldBytes.
        const isFile = name === limits.fileField;
        if (isFile) {
          if (file) throw new ApiError("invalid_request", `form field '${name}': sent twice; send one '${limits.fileField}'`, { target: "form", issues: [{ path: name, message: "sent twice" }] });
          file = new R2PartWriter(bucket, key);
          fileInfo = { field: name, filename: filename ?? "" };
        }
        current = { name, isFile, chunks: [], bytes: 0 };
        state = "body";
        return true;
      }
      case "body": {
        const at = indexOf(pending, delimiter);
        if (at === -1) {
          // Keep what could be the start of a delimiter split across chunks.
          const keep = Math.min(pending.length, delimiter.length - 1);
          await emit(pending.subarray(0, pending.length - keep));
          pending = pending.slice(pending.length - keep);
          return false;
        }
        await emit(pending.subarray(0, at));
        endPart();
        pending = pending.subarray(at + delimiter.length);
        state = "after-delimiter";
        return true;
      }
      case "done":
        return false;
    }
    return final;
  };

  try {
    const reader = body.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > limits.maxBodyBytes) {
        await reader.cancel().catch(() => undefined);
        throw limits.tooLarge(total);
      }
      if (state === "done") continue; // the epilogue is ignored
      pending = pending.length === 0 ? value : concatBytes([pending, value]);
      while (await step(false));
    }
    while (await step(true));
    if (state !== "done") throw malformed("the body ends before its closing boundary (was the upload cut off?)");
    if (file) await (file as R2PartWriter).finish();
    const stored = file as R2PartWriter | null;
    return { fields, file: stored && fileInfo ? { ...(fileInfo as { field: string; filename: string }), key, size: stored.size } : null };
  } catch (err) {
    if (file) await (file as R2PartWriter).abort();
    throw err;
  }
}
