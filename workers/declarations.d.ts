declare namespace Cloudflare {
  interface Env {
    DB: D1Database;
    BUCKET: R2Bucket;
    INGEST_QUEUE: Queue<unknown>;
    EDGETUNE_ADMIN_KEY?: string;
    RUNNER_TOKEN?: string;
    MAX_IMAGE_PIXELS?: string;
    TEST_MIGRATIONS: import("cloudflare:test").D1Migration[];
  }
  interface GlobalProps {
    mainModule: typeof import("./index");
  }
}
