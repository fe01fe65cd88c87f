/**
 * Webhook signatures (../shared API.md, "Webhooks"): `edgetune-signature: t=<unix seconds>,v1=<hex>` where v1 is
 * HMAC-SHA256(secret, `${t}.${body}`). Shared by the Worker (signing) and receivers (verifying); WebCrypto only, so
 * it runs in Node 20, browsers and Workers.
 */
export const SIGNATURE_HEADER = "edgetune-signature";
/** Deliveries older (or newer) than this are refused by default: a captured request cannot be replayed later. */
export const DEFAULT_TOLERANCE_S = 300;

const encoder = new TextEncoder();

async function hmacHex(secret: string, message: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(message)));
  return Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The header value for `body` signed at `timestampS`. */
export async function signWebhook(secret: string, body: string, timestampS = Math.floor(Date.now() / 1000)): Promise<string> {
  return `t=${timestampS},v1=${await hmacHex(secret, `${timestampS}.${body}`)}`;
}

export class WebhookSignatureError extends Error {
  constructor(
    readonly code: "missing_signature" | "malformed_signature" | "timestamp_out_of_range" | "signature_mismatch",
    message: string,
  ) {
    super(message);
    this.name = "WebhookSignatureError";
  }
}

/**
 * Checks a delivery: `body` must be the raw request body exactly as received (not re-serialised JSON). Resolves with
 * the parsed event; throws WebhookSignatureError when the signature is missing, malformed, stale or wrong.
 */
export async function verifyWebhook<T = unknown>(secret: string, header: string | null | undefined, body: string, options: { toleranceS?: number; nowS?: number } = {}): Promise<T> {
  if (!header) throw new WebhookSignatureError("missing_signature", `No ${SIGNATURE_HEADER} header: this request was not sent by edgetune.`);
  const fields = new Map<string, string[]>();
  for (const part of header.split(",")) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    const key = part.slice(0, eq).trim();
    fields.set(key, [...(fields.get(key) ?? []), part.slice(eq + 1).trim()]);
  }
  const t = Number(fields.get("t")?.[0]);
  const signatures = fields.get("v1") ?? [];
  if (!Number.isInteger(t) || signatures.length === 0) throw new WebhookSignatureError("malformed_signature", `${SIGNATURE_HEADER} must look like t=<unix seconds>,v1=<hex>.`);
  const now = options.nowS ?? Math.floor(Date.now() / 1000);
  const tolerance = options.toleranceS ?? DEFAULT_TOLERANCE_S;
  if (Math.abs(now - t) > tolerance) throw new WebhookSignatureError("timestamp_out_of_range", `The signature's timestamp is ${now - t} s from now (tolerance ${tolerance} s): a replay, or a clock far off.`);
  const expected = await hmacHex(secret, `${t}.${body}`);
  // Several v1 values are allowed (secret rotation); compare in constant time.
  if (!signatures.some((s) => constantTimeEqual(s, expected))) throw new WebhookSignatureError("signature_mismatch", "The signature does not match this body and secret.");
  return JSON.parse(body) as T;
}

function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
