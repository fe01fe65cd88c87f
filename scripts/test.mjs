#!/usr/bin/env node
// `npm test`: typecheck, then every test: the Worker's tests inside workerd (vitest + Cloudflare's pool), then the
// Node-side tests (shared code, runner, end-to-end against the real local platform) with node's test runner.
// Ends with the line `N passed, N failed` that CI reads.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { OFFLINE_ENV, ROOT } from "./platform.mjs";

const only = process.argv.slice(2); // e.g. `npm test -- workers` or `npm test -- node`
const want = (part) => only.length === 0 || only.includes(part);
let passed = 0;
let failed = 0;
const env = { ...process.env, ...OFFLINE_ENV };
const run = (cmd, args, extra = {}) => spawnSync(cmd, args, { cwd: ROOT, stdio: "inherit", env, ...extra });

if (want("typecheck")) {
  for (const project of ["tsconfig.json", "workers/tsconfig.json", "gpu-runner/tsconfig.json"]) {
    console.log(`\n> tsc --noEmit -p ${project}`);
    const result = run(process.execPath, [path.join(ROOT, "node_modules/typescript/bin/tsc"), "--noEmit", "-p", project]);
    if (result.status === 0) passed++;
    else failed++;
  }
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "edgetune-test-"));
if (want("workers")) {
  console.log("\n> vitest run (tests/workers, inside workerd)");
  const report = path.join(tmp, "vitest.json");
  const result = run(process.execPath, [path.join(ROOT, "node_modules/vitest/vitest.mjs"), "run", "--reporter=default", "--reporter=json", `--outputFile.json=${report}`]);
  if (fs.existsSync(report)) {
    const summary = JSON.parse(fs.readFileSync(report, "utf8"));
    passed += summary.numPassedTests;
    failed += summary.numFailedTests + (summary.numFailedTestSuites ?? 0);
  } else if (result.status !== 0) failed++;
}

if (want("node")) {
  const files = ["tests/node", "tests/e2e"]
    .filter((dir) => fs.existsSync(path.join(ROOT, dir)))
    .flatMap((dir) => fs.readdirSync(path.join(ROOT, dir)).filter((f) => f.endsWith(".test.ts")).sort().map((f) => path.join(dir, f)));
  if (files.length > 0) {
    console.log(`\n> node --test (${files.length} files: shared code, runner, end-to-end)`);
    const tap = path.join(tmp, "node.tap");
    const result = run(process.execPath, [
      "--import", "tsx", "--test", "--test-concurrency=1",
      "--test-reporter=spec", "--test-reporter-destination=stdout", "--test-reporter=tap", `--test-reporter-destination=${tap}`,
      ...files,
    ]);
    const text = fs.existsSync(tap) ? fs.readFileSync(tap, "utf8") : "";
    const count = (name) => Number(text.match(new RegExp(`^# ${name} (\\d+)`, "m"))?.[1] ?? 0);
    passed += count("pass");
    failed += count("fail") + count("cancelled");
    if (result.status !== 0 && count("fail") + count("cancelled") === 0) failed++;
  }
}

console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
