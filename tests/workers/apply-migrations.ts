import { applyD1Migrations, env } from "cloudflare:test";

// Setup file: runs before each test file, outside per-test storage isolation. Applying is idempotent.
await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);
