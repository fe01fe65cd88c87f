/**
 * MobileNetV2 (nsfwjs, 224x224, batch 1) inside the vitest workerd pool: init, model load, warm latency of the
 * LayersModel as loaded vs the BN-folded fused executor, and their max difference. Drives device-worker.ts, which a
 * bare workerd serves the same way on a quiet machine (device-run.sh).
 * Run from the repository root: npx vitest run --config bench/workerd/vitest.config.ts
 * Note: in the pool the first init also pays for Vite transforming tfjs (seconds); bundled, init is ~30 ms.
 */
import { expect, it } from "vitest";
import worker from "./device-worker";

const ROUNDS = 25;

it("measures MobileNetV2 in workerd", async () => {
  const setupResponse = await worker.fetch(new Request("http://bench/setup"));
  const setup = (await setupResponse.json()) as { maxDiffBackbone: number };
  const bench = await (await worker.fetch(new Request(`http://bench/bench?rounds=${ROUNDS}`))).json();
  console.log(`\nsetup: ${JSON.stringify(setup)}\nbench (ms): ${JSON.stringify(bench)}`);
  expect(setup.maxDiffBackbone).toBeLessThan(1e-4);
});
