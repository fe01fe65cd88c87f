/**
 * A fine-tuned model at the edge: its stored artifact (head manifest "edgetune-head/2" + head.bin + blocks.bin, built
 * in tests/fixtures/tiny-mobilenet-v1.ts) applied in workerd by the edge's code (fused trunk to the cut, the model's
 * blocks from the block cache, the head) gives the probabilities the runner computed from the same bytes in Node
 * (tests/fixtures/fine-tuned-blocks.expected.json, kept current by tests/node/fine-tune.test.ts), within 1e-4.
 * Cold, the pool spends about 10 s transforming the tfjs packages on the first import.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { applyHead, parseHead } from "../../shared/head";
import { compileFusedBackbone } from "../../workers/inference/fused-backbone";
import { blockCache, embedCutMap, loadBlocks, withBlocks } from "../../workers/inference/fine-tuned-blocks";
import { ensureTfjsWasm, type Tfjs } from "../../workers/inference/tfjs-wasm";
import { fineTunedFixture } from "../fixtures/tiny-mobilenet-v1";
import expected from "../fixtures/fine-tuned-blocks.expected.json";

let tf: Tfjs;
beforeAll(async () => {
  tf = await ensureTfjsWasm();
}, 120_000);

const fixture = fineTunedFixture();
const head = parseHead(JSON.parse(JSON.stringify(fixture.manifest)), fixture.headBin.slice());
const fetchBlocks = async () => fixture.blocksBin.slice().buffer as ArrayBuffer;

function expectClose(actual: number[][], wanted: number[][]) {
  expect(actual.length).toBe(wanted.length);
  actual.forEach((row, i) => row.forEach((value, j) => expect(Math.abs(value - wanted[i]![j]!)).toBeLessThan(1e-4)));
}

describe("fine-tuned blocks at the edge", () => {
  it("give the runner's probabilities from the same cut maps", async () => {
    const rows = await withBlocks("p/m1", () => loadBlocks(tf, head, "m1", fetchBlocks), async (tensors) =>
      fixture.cutMaps.map((map) => Array.from(applyHead(head, embedCutMap(tf, tensors, map), 1))),
    );
    expectClose(rows, expected.probabilities);
  });

  it("give the runner's probabilities from images, through the fused trunk up to the cut", async () => {
    const trunk = compileFusedBackbone(tf, fixture.modelJson, fixture.weightData, { feature_layers: [head.blocks!.cut_layer], pooling: "none", input_size: [16, 16] });
    expect(trunk.dim).toBe(8 * 8 * 8);
    const rows = await withBlocks("p/m1", () => loadBlocks(tf, head, "m1", fetchBlocks), async (tensors) =>
      fixture.images.map((image) => Array.from(applyHead(head, embedCutMap(tf, tensors, trunk.embed(image)), 1))),
    );
    trunk.dispose();
    expectClose(rows, expected.from_images);
  });

  it("are held once per model, counted in bytes, and freed when evicted", async () => {
    blockCache.clear();
    const before = tf.memory().numTensors;
    await withBlocks("p/m2", () => loadBlocks(tf, head, "m2", fetchBlocks), async () => undefined);
    await withBlocks("p/m2", () => loadBlocks(tf, head, "m2", fetchBlocks), async () => undefined);
    expect(blockCache.stats()).toMatchObject({ entries: 1, loads: expect.any(Number), bytes: fixture.blocksBin.byteLength });
    expect(tf.memory().numTensors).toBe(before + 8);
    blockCache.clear();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("refuses a model whose blocks.bin is gone or does not match its manifest", async () => {
    await expect(loadBlocks(tf, head, "m3", async () => null)).rejects.toMatchObject({ code: "model_artifacts_missing" });
    await expect(loadBlocks(tf, head, "m3", async () => fixture.blocksBin.slice(8).buffer as ArrayBuffer)).rejects.toThrow(/blocks\.bin has/);
  });
});
