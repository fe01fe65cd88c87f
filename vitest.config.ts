import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

// Tests under tests/workers run inside workerd with the bindings of wrangler.toml (D1, R2, Queue).
// Node-side tests (runner, shared, end-to-end) run with node's test runner instead: see scripts/test.mjs.
export default defineConfig(async () => {
  const migrations = await readD1Migrations("migrations");
  return {
    plugins: [
      cloudflareTest({
        main: "./workers/index.ts",
        wrangler: { configPath: "./wrangler.toml" },
        miniflare: {
          bindings: { TEST_MIGRATIONS: migrations, EDGETUNE_ADMIN_KEY: "et_admin_test_key", RUNNER_TOKEN: "et_runner_test_token" },
        },
      }),
    ],
    test: {
      include: ["tests/workers/**/*.test.ts"],
      setupFiles: ["./tests/workers/apply-migrations.ts"],
      testTimeout: 30_000,
    },
  };
});
