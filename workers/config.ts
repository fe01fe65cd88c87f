/**
 * The Worker's settings, parsed once from its environment (wrangler.toml [vars], secrets; `.dev.vars.example` lists
 * them all). Everything else reads `getConfig(env)`, never `env.X` strings: one place says what each setting means,
 * its default and what a bad value does (a setting that is not a positive integer falls back to its default).
 */
import { urlPolicyFromEnv, type UrlPolicy } from "./services/url-policy";
import { deploymentQuotas, type Quotas } from "./services/quotas";

export interface Config {
  /** Pixels an uploaded image may declare before it is refused from its header (decompression bombs). */
  maxImagePixels: number;
  /** Pixels a prediction decodes per image: never more than `maxImagePixels`. */
  predictMaxPixels: number;
  /** Bounds of the isolate's head cache, when the deployment sets them; otherwise the cache keeps its own. */
  headCache: { maxEntries?: number; maxBytes?: number };
  /** How long the first prediction waits for tfjs' WASM backend before answering 503. */
  tfjsInitTimeoutMs: number;
  /** Where backbone and webhook URLs may point. */
  urlPolicy: UrlPolicy;
  /** The admin key(s) of the deployment, comma-separated while one is rotated (services/auth.ts), when set. */
  adminKey: string | null;
  /** Per-project quotas of this deployment (services/quotas.ts), before the operator's per-project overrides. */
  quotas: Quotas;
  /** Responses carry the invocation's D1 counts (services/d1-meter.ts); tests turn it on. */
  d1MeterHeaders: boolean;
  /**
   * How long an ingest, a deletion or a webhook delivery may make no progress before the scheduled sweep re-enqueues
   * it (its queue message died with its process): services/sweeps.ts.
   */
  sweepStallMs: number;
}

/** 40 MP: the largest photos of current phones (about 8,000 x 5,000), as the runner's decoder accepts them. */
export const DEFAULT_MAX_IMAGE_PIXELS = 40_000_000;
/**
 * Decoded pixels per predicted image: 2 MP (1633 x 1225), over four times the side the default backbone looks at
 * (352). Decoding grows the isolate by the RGBA copy (4 bytes a pixel) plus the JPEG decoder's WASM memory beyond its
 * first 17 MiB. Measured by bench/predict/large-image-memory.ts, a progressive JPEG (the worst case) adds 12.4 MB at
 * 2 MP, 27 MB at 3 MP, 42 MB at 4 MP and 173 MB at 12 MP (this limit's old value, which no isolate could decode). An
 * isolate serving the default backbone holds about 67 MB after predictions plus the decoders' memories (about 18 MB,
 * not visible in workerd's heap figures), and the heads up to 32 MiB: 2 MP is what the rest leaves room for. The CLI,
 * the SDK's `predictFiles` and the dashboard shrink a larger photo to fit when the edge answers 422 `too_many_pixels`
 * (its `details.max_pixels`). The datasets' 40 MP limit is for the runner.
 */
export const DEFAULT_PREDICT_MAX_PIXELS = 2_000_000;
/**
 * 3 min: an ingest chunk runs at most 15 s and the queue retries a failed message within about a minute, so three
 * minutes of silence means the message is lost. The chaos test (tests/e2e/chaos.test.ts) sets 10 s.
 */
export const DEFAULT_SWEEP_STALL_S = 180;
/** Measured tfjs WASM init: 20 to 170 ms; 10 s only catches a hang. */
export const DEFAULT_TFJS_INIT_TIMEOUT_MS = 10_000;

/** The settings an environment may carry; all optional strings, as wrangler hands them over. */
export type ConfigEnv = { [K in "MAX_IMAGE_PIXELS" | "PREDICT_MAX_PIXELS" | "HEAD_CACHE_MAX_ENTRIES" | "HEAD_CACHE_MAX_BYTES" | "TFJS_INIT_TIMEOUT_MS" | "URL_ALLOW_HTTP" | "URL_ALLOW_PRIVATE_HOSTS" | "URL_DNS_RESOLVER" | "EDGETUNE_ADMIN_KEY" | "D1_METER_HEADERS" | "PROJECT_QUOTAS" | "SWEEP_STALL_S"]?: string };

const positiveInt = (value: string | undefined): number | undefined => {
  if (value === undefined || value.trim() === "") return undefined;
  const parsed = Number(value);
  return Number.isInteger(parsed) && parsed > 0 ? parsed : undefined;
};
const nonEmpty = (value: string | undefined) => (value && value.trim() !== "" ? value : null);

export function parseConfig(env: ConfigEnv): Config {
  const maxImagePixels = positiveInt(env.MAX_IMAGE_PIXELS) ?? DEFAULT_MAX_IMAGE_PIXELS;
  return {
    maxImagePixels,
    predictMaxPixels: Math.min(positiveInt(env.PREDICT_MAX_PIXELS) ?? DEFAULT_PREDICT_MAX_PIXELS, maxImagePixels),
    headCache: { maxEntries: positiveInt(env.HEAD_CACHE_MAX_ENTRIES), maxBytes: positiveInt(env.HEAD_CACHE_MAX_BYTES) },
    tfjsInitTimeoutMs: positiveInt(env.TFJS_INIT_TIMEOUT_MS) ?? DEFAULT_TFJS_INIT_TIMEOUT_MS,
    urlPolicy: urlPolicyFromEnv(env),
    adminKey: nonEmpty(env.EDGETUNE_ADMIN_KEY),
    d1MeterHeaders: env.D1_METER_HEADERS === "true",
    quotas: deploymentQuotas(env.PROJECT_QUOTAS),
    sweepStallMs: (positiveInt(env.SWEEP_STALL_S) ?? DEFAULT_SWEEP_STALL_S) * 1000,
  };
}

/** One parse per environment object: workerd hands every request of an isolate the same `env`. */
const parsed = new WeakMap<object, Config>();

export function getConfig(env: ConfigEnv): Config {
  let config = parsed.get(env);
  if (!config) {
    config = parseConfig(env);
    parsed.set(env, config);
  }
  return config;
}
