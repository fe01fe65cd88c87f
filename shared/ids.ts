/** Opaque ids with a type prefix (`ds_`, `job_`, ...): 16 random bytes in base32, sortable by nothing. */
const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

export type IdPrefix = "prj" | "key" | "ds" | "ing" | "up" | "bb" | "job" | "mdl" | "err" | "wh" | "whd" | "rnr";

export function newId(prefix: IdPrefix, randomBytes = 16): string {
  return `${prefix}_${randomString(randomBytes)}`;
}

/** Crockford-style base32 of `byteCount` random bytes (5 bits per character). */
export function randomString(byteCount: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(byteCount));
  let out = "";
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ALPHABET[(buffer << (5 - bits)) & 31];
  return out;
}

export async function sha256Hex(data: ArrayBuffer | Uint8Array | string): Promise<string> {
  const bytes: BufferSource = typeof data === "string" ? new TextEncoder().encode(data) : (data as BufferSource);
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
