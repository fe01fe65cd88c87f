/**
 * Fitting a head in the span of its training rows (gpu-runner/src/train/row-space.ts), which the L-BFGS trainer does
 * whenever there are fewer rows than features: the coordinates are an isometry of the rows, projection and lifting
 * agree with plain dot products, and the head trained that way predicts what the full-feature fit predicts.
 *
 * Isolation: seeded synthetic rows; small sizes (≤ 60 rows, ≤ 120-d).
 */
import assert from "node:assert/strict";
import { describe, it } from "vitest";
import { applyHead } from "../../shared/head";
import { createRandom } from "../../shared/random";
import { hyperparametersSchema } from "../../shared/schemas";
import { trainHeadLbfgs } from "../../gpu-runner/src/train/lbfgs-head";
import { rowSpaceOf } from "../../gpu-runner/src/train/row-space";

function randomRows(n: number, d: number, seed: number): Float32Array {
  const random = createRandom(seed);
  return Float32Array.from({ length: n * d }, () => random.nextNormal());
}

const dot = (a: ArrayLike<number>, ai: number, b: ArrayLike<number>, bi: number, d: number) => {
  let sum = 0;
  for (let k = 0; k < d; k++) sum += a[ai + k]! * b[bi + k]!;
  return sum;
};

describe("rowSpaceOf", () => {
  it("keeps the rows' dot products (an isometry) and drops rows that lie in the span of earlier ones", () => {
    const n = 20, d = 64;
    const x = randomRows(n, d, 1);
    // Row 7 = row 2 + row 3: it adds nothing to the span.
    for (let k = 0; k < d; k++) x[7 * d + k] = x[2 * d + k]! + x[3 * d + k]!;
    const space = rowSpaceOf(x, n, d)!;
    assert.equal(space.rank, n - 1);
    for (const [i, j] of [[0, 0], [2, 7], [5, 19], [7, 7]] as const) {
      assert.ok(Math.abs(dot(space.coordinates, i * space.rank, space.coordinates, j * space.rank, space.rank) - dot(x, i * d, x, j * d, d)) < 1e-3);
    }
  });

  it.each([
    { n: 12, units: 3 },
    { n: 11, units: 4 },
  ])("projects new rows onto the span and lifts a kernel back so that x·Wᵀ is unchanged on the span ($n rows, $units units)", ({ n, units }) => {
    const d = 40;
    const x = randomRows(n, d, 2);
    const space = rowSpaceOf(x, n, d)!;
    const random = createRandom(5);
    const kernel = Float64Array.from({ length: units * space.rank }, () => random.nextNormal());
    const lifted = space.lift(kernel, units);
    const fresh = randomRows(4, d, 9);
    const projected = space.project(fresh, 4);
    for (let r = 0; r < 4; r++) {
      for (let u = 0; u < units; u++) {
        // In span coordinates and on the features, the same pre-activation.
        assert.ok(Math.abs(dot(projected, r * space.rank, kernel, u * space.rank, space.rank) - dot(fresh, r * d, lifted, u * d, d)) < 1e-3);
      }
    }
    // Training rows project onto their own coordinates.
    const again = space.project(x, n);
    for (let i = 0; i < again.length; i++) assert.ok(Math.abs(again[i]! - space.coordinates[i]!) < 1e-3);
  });

  it("declines when rows are not fewer than features", () => {
    assert.equal(rowSpaceOf(randomRows(50, 60, 3), 50, 60), null);
  });
});

describe("trainHeadLbfgs in the rows' span", () => {
  it("trains the linear head the full-feature fit trains: same predictions within 1e-4", async () => {
    const n = 60, d = 120, classCount = 3;
    const random = createRandom(11);
    const labels = Int32Array.from({ length: n }, (_, i) => i % classCount);
    const centres = Array.from({ length: classCount }, () => Float64Array.from({ length: d }, () => random.nextNormal()));
    const embeddings = Float32Array.from({ length: n * d }, (_, i) => centres[labels[Math.floor(i / d)]!]![i % d]! + 2 * random.nextNormal());
    const trainIndex = Array.from({ length: 45 }, (_, i) => i);
    const valIndex = Array.from({ length: 15 }, (_, i) => 45 + i);
    const input = { embeddings, dim: d, labels, classCount, trainIndex, valIndex };
    const config = { head: { type: "linear" as const }, hyperparameters: hyperparametersSchema.parse({ epochs: 200, weight_decay: 0.1 }), keep: "last" as const };
    const span = await trainHeadLbfgs(input, config, {}, { backend: "js" });
    const full = await trainHeadLbfgs(input, config, {}, { backend: "js", rowSpace: false });
    const a = applyHead(span.head, embeddings, n);
    const b = applyHead(full.head, embeddings, n);
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) < 1e-4, `probability ${i}: ${a[i]} vs ${b[i]}`);
    assert.equal(span.head.layers[0]!.inputDim, d);
  });
});
