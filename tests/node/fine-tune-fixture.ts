/** What the runner computes for the fine-tuned parity fixture (tests/fixtures/tiny-mobilenet-v1.ts): its expected outputs. */
import type * as tfjs from "@tensorflow/tfjs";
import { applyHead, parseBlocks, parseHead } from "../../shared/head";
import { embedWithBlocks } from "../../gpu-runner/src/train/fine-tune";
import { buildFeatureExtractor } from "../../shared/backbone/feature-extractor";
import { fineTunedFixture } from "../fixtures/tiny-mobilenet-v1";

/**
 * From the stored bytes, the runner's way: class probabilities of each fixture cut map (`embedWithBlocks`, then
 * `applyHead`), and of each fixture image (the trunk to the cut with the runner's tfjs extractor first).
 */
export async function runnerProbabilities(tf: typeof tfjs): Promise<{ probabilities: number[][]; from_images: number[][] }> {
  const fixture = fineTunedFixture();
  const head = parseHead(fixture.manifest, fixture.headBin);
  const stack = parseBlocks(head.blocks!, fixture.blocksBin);
  const classes = head.labels.length;
  const predict = (maps: Float32Array[]) => {
    const per = maps[0]!.length;
    const activations = new Float32Array(maps.length * per);
    maps.forEach((map, i) => activations.set(map, i * per));
    const probabilities = applyHead(head, embedWithBlocks(tf, stack, activations, maps.map((_, i) => i)), maps.length);
    return maps.map((_, i) => Array.from(probabilities.subarray(i * classes, (i + 1) * classes)));
  };
  const trunk = await buildFeatureExtractor(tf, { name: "tiny", modelJson: fixture.modelJson, weightData: fixture.weightData, inputRange: [-1, 1] }, { feature_layers: [stack.cutLayer], pooling: "none" });
  const maps = fixture.images.map((image) => {
    const input = tf.tensor4d(image, [1, 16, 16, 3]);
    const out = trunk.embed(input);
    const values = new Float32Array(out.dataSync() as Float32Array);
    tf.dispose([input, out]);
    return values;
  });
  trunk.dispose();
  return { probabilities: predict(fixture.cutMaps), from_images: predict(maps) };
}
