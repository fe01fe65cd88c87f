/** Bindings and variables of the edgetune Worker (wrangler.toml). */
export interface Env {
  DB: D1Database;
  BUCKET: R2Bucket;
  INGEST_QUEUE: Queue<unknown>;
  /** When set, this exact key is valid for the default project (local bootstrap, ../shared API.md). */
  EDGETUNE_ADMIN_KEY?: string;
  /** Bearer token runners present on /v1/runner routes; distinct from project API keys. */
  RUNNER_TOKEN?: string;
  MAX_IMAGE_PIXELS?: string;
  /** URL policy (services/url-policy.ts): "true" accepts plain http to public hosts. Off by default. */
  URL_ALLOW_HTTP?: string;
  /** URL policy: "true" accepts loopback and private hosts (local experiments only). Off by default. */
  URL_ALLOW_PRIVATE_HOSTS?: string;
  /** URL policy: the DNS-over-HTTPS JSON endpoint names are resolved with, or "off". */
  URL_DNS_RESOLVER?: string;
  /** "true": responses carry the invocation's D1 counts (x-edgetune-d1-statements, -calls, -max-params); tests set it. */
  D1_METER_HEADERS?: string;
  TEST_MIGRATIONS?: import("cloudflare:test").D1Migration[];
}
