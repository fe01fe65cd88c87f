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
  TEST_MIGRATIONS?: import("cloudflare:test").D1Migration[];
}
