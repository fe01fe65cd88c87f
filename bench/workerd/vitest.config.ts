import { fileURLToPath } from "node:url";
import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

// Benchmarks that must run inside workerd (the Worker runtime), kept out of the test suite's include.
// Run from the repository root: npx vitest run --config bench/workerd/vitest.config.ts
export default defineConfig({
  root: fileURLToPath(new URL("../..", import.meta.url)),
  plugins: [cloudflareTest({ wrangler: { configPath: "./wrangler.toml" } })],
  test: {
    include: ["bench/workerd/**/*.test.ts"],
    testTimeout: 300_000,
    hookTimeout: 300_000,
  },
});
