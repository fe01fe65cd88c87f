import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";
import { OFFLINE_ENV } from "./scripts/platform.mjs";
// wrangler.toml serves dashboard/dist as static assets and the pool refuses a missing assets folder: build it first
// (about 0.1 s; wrangler's [build] does the same before `wrangler dev` and `wrangler deploy`).
import { buildDashboard } from "./dashboard/build.mjs";

// One test runner, two projects:
// - `workers`: tests/workers run inside workerd (Cloudflare's vitest pool) with the bindings of wrangler.toml
//   (D1, R2, Queue) and the migrations applied in a setup file;
// - `node`: shared code and the runner in Node (tests/node), and end-to-end tests against the real local platform
//   (tests/e2e: wrangler dev + runner processes). Files run one at a time: e2e files start whole platforms and the
//   box has 2 cores.
// `npm test` runs both and ends with the line `N passed, N failed` (tests/summary-reporter.ts).
// Keep wrangler/miniflare off the network and out of prompts (the same settings scripts/platform.mjs gives wrangler dev).
for (const [name, value] of Object.entries(OFFLINE_ENV)) process.env[name] ??= value;

export default defineConfig(async () => {
  await buildDashboard({ quiet: true });
  const migrations = await readD1Migrations("migrations");
  return {
    test: {
      reporters: ["default", "./tests/summary-reporter.ts"],
      projects: [
        {
          plugins: [
            cloudflareTest({
              main: "./workers/index.ts",
              wrangler: { configPath: "./wrangler.toml" },
              miniflare: {
                bindings: { TEST_MIGRATIONS: migrations, EDGETUNE_ADMIN_KEY: "et_admin_test_key_7Hq2Zp9Lw4Xr", D1_METER_HEADERS: "true" },
              },
            }),
          ],
          test: {
            name: "workers",
            include: ["tests/workers/**/*.test.ts"],
            setupFiles: ["./tests/workers/apply-migrations.ts"],
            testTimeout: 30_000,
          },
        },
        {
          test: {
            name: "node",
            include: ["tests/node/**/*.test.ts", "tests/e2e/**/*.test.ts"],
            environment: "node",
            pool: "forks",
            fileParallelism: false,
            testTimeout: 120_000,
            hookTimeout: 300_000,
          },
        },
      ],
    },
  };
});
