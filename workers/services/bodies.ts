/** Reading request bodies with limits that hold even when Content-Length is missing or lies. */
import { ApiError } from "../../shared/errors";
import { readStreamLimited } from "../../shared/bytes";

/** Reads the whole body, refusing with 413 as soon as it passes `maxBytes`. */
export async function readBodyLimited(request: Request, maxBytes: number, what: string): Promise<Uint8Array> {
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge(what, maxBytes, declared);
  if (!request.body) throw new ApiError("empty_body", `The request has no body; send the ${what} bytes.`);
  const bytes = await readStreamLimited(request.body, maxBytes, (seen) => tooLarge(what, maxBytes, seen));
  if (bytes.length === 0) throw new ApiError("empty_body", `The request body is empty; send the ${what} bytes.`);
  return bytes;
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
