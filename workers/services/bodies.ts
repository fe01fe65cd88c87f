/** Reading request bodies with limits that hold even when Content-Length is missing or lies. */
import { ApiError } from "../../shared/errors";
import { readStreamLimited } from "../../shared/bytes";

/**
 * Reads the whole body into memory, refusing with 413 as soon as it passes `maxBytes`. Peak memory: the body once
 * when it comes with a Content-Length (one buffer of that size, filled as it streams); a body without one is
 * gathered in chunks and joined, briefly twice its size.
 */
export async function readBodyLimited(request: Request, maxBytes: number, what: string): Promise<Uint8Array> {
  const header = request.headers.get("content-length");
  const declared = header === null ? NaN : Number(header);
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge(what, maxBytes, declared);
  if (!request.body) throw new ApiError("empty_body", `The request has no body; send the ${what} bytes.`);
  const bytes = Number.isInteger(declared) && declared >= 0
    ? await readIntoBuffer(request.body, declared, () => tooLarge(what, maxBytes, declared + 1))
    : await readStreamLimited(request.body, maxBytes, (seen) => tooLarge(what, maxBytes, seen));
  if (bytes.length === 0) throw new ApiError("empty_body", `The request body is empty; send the ${what} bytes.`);
  return bytes;
}

/** The stream's bytes in one buffer of `length` (no second copy); `tooLong()` is thrown past that. */
async function readIntoBuffer(stream: ReadableStream<Uint8Array>, length: number, tooLong: () => Error): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  const reader = stream.getReader();
  let offset = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (offset + value.length > length) {
      await reader.cancel();
      throw tooLong();
    }
    out.set(value, offset);
    offset += value.length;
  }
  return out.subarray(0, offset);
}

/**
 * The body as a stream of known length, for `R2Bucket.put` (which refuses a stream of unknown length): Content-Length
 * is required and at most `maxBytes` (411/413 up front), and FixedLengthStream errors the stream if the body is
 * longer or shorter than declared, so the put stores nothing. Peak memory: one chunk in flight (about 64 KB).
 */
export function bodyStream(request: Request, maxBytes: number, what: string): { stream: ReadableStream<Uint8Array>; length: number } {
  const length = requireContentLength(request, maxBytes, what);
  if (!request.body) throw new ApiError("empty_body", `The request has no body; send the ${what} bytes.`);
  return { stream: request.body.pipeThrough(new FixedLengthStream(length)), length };
}

/** Content-Length is required to stream a body into R2 (R2 needs a known length) and to enforce limits up front. */
export function requireContentLength(request: Request, maxBytes: number, what: string, minBytes = 1): number {
  const header = request.headers.get("content-length");
  if (header === null) throw new ApiError("length_required", `Send a Content-Length header with the ${what}; chunked bodies cannot be stored.`);
  const length = Number(header);
  if (!Number.isInteger(length) || length < 0) throw new ApiError("invalid_content_length", "Content-Length must be a non-negative integer.");
  if (length > maxBytes) throw tooLarge(what, maxBytes, length);
  if (length < minBytes) throw new ApiError(length === 0 ? "empty_body" : "part_too_small", length === 0 ? `The request body is empty; send the ${what}.` : `The ${what} is ${length} bytes; it must be at least ${minBytes} bytes.`, { min_bytes: minBytes });
  return length;
}

function tooLarge(what: string, maxBytes: number, actual: number) {
  return new ApiError("payload_too_large", `The ${what} is ${actual} bytes; the limit is ${maxBytes} bytes.${what.includes("archive") ? " Send larger archives in parts with POST /v1/datasets/:id/uploads." : ""}`, { limit_bytes: maxBytes });
}
