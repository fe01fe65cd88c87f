import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "../..");
const TSC = path.join(ROOT, "node_modules/typescript/bin/tsc");

/** The three TypeScript projects (shared code; the Worker with its tests; the runner, Node tests and benchmarks). */
describe("typecheck", () => {
  for (const project of ["tsconfig.json", "workers/tsconfig.json", "gpu-runner/tsconfig.json", "dashboard/tsconfig.json"]) {
    it(`tsc --noEmit -p ${project} reports no errors`, () => {
      const result = spawnSync(process.execPath, [TSC, "--noEmit", "-p", project], { cwd: ROOT, encoding: "utf8" });
      expect(result.stdout + result.stderr).toBe("");
      expect(result.status).toBe(0);
    }, 300_000);
  }
});
