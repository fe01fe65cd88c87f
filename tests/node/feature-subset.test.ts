/**
 * Feature-layer combinations in `auto` (gpu-runner/src/train/feature-subset.ts): subsets come from the backbone's
 * layer channels, a head trained on a subset's columns predicts the same when stored on the whole embedding, and
 * the default grid lists the subsets after the heads on every layer (so a tie keeps all layers).
 *
 * Isolation: seeded synthetic embeddings.
 */
import assert from "node:assert/strict";
import { describe, it } from "vitest";
import { applyHead } from "../../shared/head";
import { createRandom } from "../../shared/random";
import { hyperparametersSchema } from "../../shared/schemas";
import { DEFAULT_BACKBONE, featureLayers } from "../../shared/catalog";
import { expandHead, featureSubsets, selectColumns } from "../../gpu-runner/src/train/feature-subset";
import { trainHeadLbfgs } from "../../gpu-runner/src/train/lbfgs-head";
import { candidateGrid } from "../../gpu-runner/src/train/select-head";

describe("feature subsets", () => {
  it("offers each layer alone when the channels add up to the embedding, nothing otherwise", () => {
    assert.deepEqual(featureSubsets(["a", "b"], [3, 5], 8), [{ layers: ["a"], ranges: [[0, 3]] }, { layers: ["b"], ranges: [[3, 8]] }]);
    assert.deepEqual(featureSubsets(["a", "b"], [3, 5], 16), []); // avg+max doubles the columns: layout unknown here
    assert.deepEqual(featureSubsets(["a"], [3], 3), []);
    assert.deepEqual(featureSubsets(["a", "b"], undefined, 8), []);
    // The default backbone's one feature layer (conv_pw_13 at 288x288, chosen by CV) has no subsets to try.
    assert.deepEqual(featureSubsets(featureLayers(DEFAULT_BACKBONE.spec), DEFAULT_BACKBONE.featureChannels, 768), []);
  });

  it("a head trained on a subset's columns predicts the same stored on the whole embedding", async () => {
    const n = 30, dim = 10, random = createRandom(3);
    const labels = Int32Array.from({ length: n }, (_, i) => i % 3);
    const embeddings = Float32Array.from({ length: n * dim }, (_, i) => labels[Math.floor(i / dim)]! * (i % dim) * 0.3 + random.nextNormal());
    const subset = featureSubsets(["a", "b"], [4, 6], dim)[1]!;
    const columns = selectColumns(embeddings, dim, subset);
    assert.deepEqual(Array.from(columns.subarray(0, 6)), Array.from(embeddings.subarray(4, 10)));
    const trained = await trainHeadLbfgs(
      { embeddings: columns, dim: 6, labels, classCount: 3, trainIndex: Array.from({ length: 24 }, (_, i) => i), valIndex: [24, 25, 26, 27, 28, 29] },
      { head: { type: "linear" }, hyperparameters: hyperparametersSchema.parse({ epochs: 30 }), keep: "last" },
    );
    const whole = expandHead(trained.head, subset, dim);
    assert.equal(whole.inputDim, dim);
    const a = applyHead(trained.head, columns, n);
    const b = applyHead(whole, embeddings, n);
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) < 1e-6);
  });

  it("lists the subset candidates after the heads on every layer", () => {
    const subsets = featureSubsets(["a", "b"], [4, 6], 10);
    const grid = candidateGrid({ epochs: 50 }, subsets);
    const first = grid.findIndex((candidate) => candidate.features);
    assert.equal(first, candidateGrid({ epochs: 50 }).length);
    assert.ok(grid.slice(first).every((candidate) => candidate.features && candidate.head.type === "linear"));
    assert.equal(grid.length - first, 3 * subsets.length);
  });
});
