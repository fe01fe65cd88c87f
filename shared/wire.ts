/**
 * Binary wire formats between the API and runners, shared so both sides read and write the same bytes.
 * - Embedding records: a 32-byte raw sha256, then `dim` little-endian float32 values.
 * - Image batches: per image a 32-byte raw sha256, a big-endian uint32 length (MISSING_IMAGE_LENGTH when absent),
 *   then that many bytes.
 */
export const EMBEDDING_RECORD_HEADER_BYTES = 32;
export const IMAGE_RECORD_HEADER_BYTES = 36;
export const MISSING_IMAGE_LENGTH = 0xffffffff;

export function hexToBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function bytesToHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/**
 * Image batch records for `images` (sha256 → bytes, or null when not stored), in the given order, as parts to send
 * one after another: each record's 36-byte header, then the image's own bytes (not copied).
 */
export function encodeImageRecords(images: Array<[string, Uint8Array | null]>): Uint8Array[] {
  return images.flatMap(([sha, bytes]) => {
    const header = new Uint8Array(IMAGE_RECORD_HEADER_BYTES);
    header.set(hexToBytes(sha));
    new DataView(header.buffer).setUint32(32, bytes ? bytes.length : MISSING_IMAGE_LENGTH);
    return bytes ? [header, bytes] : [header];
  });
}

/** Parses an image batch body into sha256 → bytes (a view into `body`), or null for a missing image. */
export function decodeImageRecords(body: Uint8Array): Map<string, Uint8Array | null> {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const out = new Map<string, Uint8Array | null>();
  for (let offset = 0; offset < body.length; ) {
    if (offset + IMAGE_RECORD_HEADER_BYTES > body.length) throw new Error(`image batch: truncated record header at byte ${offset}`);
    const sha = bytesToHex(body.subarray(offset, offset + 32));
    const length = view.getUint32(offset + 32);
    offset += IMAGE_RECORD_HEADER_BYTES;
    if (length === MISSING_IMAGE_LENGTH) out.set(sha, null);
    else {
      if (offset + length > body.length) throw new Error(`image batch: record for ${sha} runs past the end`);
      out.set(sha, body.subarray(offset, offset + length));
      offset += length;
    }
  }
  return out;
}
