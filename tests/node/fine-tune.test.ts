/**
 * Partial fine-tuning on the runner: the blocks found in a Keras MobileNet v1 (BN folded) compute what the backbone
 * computes, the trained graph (depthwise conv as shifted slices, for tfjs-wasm's gradients) computes what is served,
 * training is deterministic and touches training rows only, and the stored blocks round-trip.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { beforeAll, describe, it } from "vitest";
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { buildFeatureExtractor } from "../../shared/backbone/feature-extractor";
import { blockTensors, disposeBlockTensors, extractBlocks, findBlockLayout, runBlocks, UnknownBlocksError } from "../../shared/backbone/separable-blocks";
import { HEAD_FORMAT_WITH_BLOCKS, HeadFormatError, parseBlocks, parseHead, serializeBlocks } from "../../shared/head";
import { createEngine } from "../../gpu-runner/src/engine/index";
import { depthwiseSameBySlices, embedWithBlocks, fineTuneBlocks, MAX_EPOCHS, trainableForward, variablesOf } from "../../gpu-runner/src/train/fine-tune";
import { createRandom } from "../../shared/random";
import { fineTunedFixture, tinyMobileNetV1 } from "../fixtures/tiny-mobilenet-v1";
import { runnerProbabilities } from "./fine-tune-fixture";

const bundle = { name: "tiny-mobilenet-v1", ...tinyMobileNetV1(), inputRange: [-1, 1] as [number, number] };
const random = createRandom(5);
const images = Float32Array.from({ length: 4 * 16 * 16 * 3 }, () => random.nextFloat() * 2 - 1);
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
};

async function extract(spec: Parameters<typeof buildFeatureExtractor>[2]): Promise<Float32Array> {
  const extractor = await buildFeatureExtractor(tf, bundle, spec);
  const input = tf.tensor4d(images, [4, 16, 16, 3]);
  const out = extractor.embed(input);
  const values = new Float32Array(out.dataSync() as Float32Array);
  tf.dispose([input, out]);
  extractor.dispose();
  return values;
}

beforeAll(async () => {
  assert.ok(await tf.setBackend("wasm"));
});

describe("the blocks of a MobileNet v1", () => {
  it("finds the last N blocks and the cut in front of them, and refuses what is not such a block", () => {
    assert.deepEqual(findBlockLayout(bundle.modelJson, 1).cutLayer, "conv_pw_2_relu");
    const two = extractBlocks(bundle.modelJson, bundle.weightData, 2, [16, 16]);
    assert.equal(two.cutLayer, "conv_pw_1_relu");
    assert.equal(two.outputLayer, "conv_pw_3_relu");
    assert.deepEqual(two.blocks.map((b) => [b.name, b.inputShape, b.stride, b.outputShape]), [["2", [8, 8, 8], 2, [4, 4, 12]], ["3", [4, 4, 12], 1, [4, 4, 12]]]);
    assert.throws(() => findBlockLayout(bundle.modelJson, 3), UnknownBlocksError);
    const renamed = JSON.parse(JSON.stringify(bundle.modelJson).replaceAll("conv_dw_", "dw_"));
    assert.throws(() => findBlockLayout(renamed, 1), /no MobileNet v1 blocks/);
  });

  it("run on the trunk's cut map (tfjs and onnx), they give the whole backbone's pooled output (BN folded)", async () => {
    const reference = await extract({ feature_layers: ["conv_pw_3_relu"], pooling: "avg" });
    for (const count of [1, 2]) {
      const stack = extractBlocks(bundle.modelJson, bundle.weightData, count, [16, 16]);
      const cut = await extract({ feature_layers: [stack.cutLayer], pooling: "none" });
      const onnx = await createEngine(bundle, { feature_layers: [stack.cutLayer], pooling: "none" }, { engine: "onnx", threads: 1 }).catch(() => null);
      if (onnx) {
        assert.ok(maxAbsDiff(await onnx.embed(images, 4), cut) < 1e-5, "onnx cut map = tfjs cut map");
        await onnx.close();
      }
      const tensors = blockTensors(tf, stack);
      const pooled = runBlocks(tf, tensors, tf.tensor4d(cut, [4, ...stack.blocks[0]!.inputShape]));
      assert.ok(maxAbsDiff(pooled.dataSync(), reference) < 1e-5, `${count} block(s)`);
      pooled.dispose();
      disposeBlockTensors(tensors);
    }
  });

  it("the trained graph's depthwise convolution equals tfjs' for strides 1 and 2", () => {
    for (const [size, stride] of [[7, 1], [8, 2], [7, 2]] as const) {
      const x = tf.randomUniform([2, size, size, 5], -1, 1, "float32", 3) as tf.Tensor4D;
      const kernel = tf.randomUniform([9, 5], -1, 1, "float32", 4) as tf.Tensor2D;
      const bySlices = depthwiseSameBySlices(tf, x, kernel, [3, 3], stride);
      const direct = tf.depthwiseConv2d(x, tf.reshape(kernel, [3, 3, 5, 1]) as tf.Tensor4D, stride, "same");
      assert.deepEqual(bySlices.shape, direct.shape);
      assert.ok(maxAbsDiff(bySlices.dataSync(), direct.dataSync()) < 1e-5, `${size}x${size} stride ${stride}`);
      tf.dispose([x, kernel, bySlices, direct]);
    }
  });
});

describe("fineTuneBlocks", () => {
  const stack = extractBlocks(bundle.modelJson, bundle.weightData, 1, [16, 16]);
  const [h, w, c] = stack.blocks[0]!.inputShape;
  const items = 40;
  const labels = Int32Array.from({ length: items }, (_, i) => i % 2);
  const data = createRandom(9);
  // Class 1 has more energy in the first half of the channels: learnable, not trivially.
  const activations = Float32Array.from({ length: items * h * w * c }, (_, i) => {
    const item = Math.floor(i / (h * w * c));
    return data.nextFloat() * 3 + (labels[item] === 1 && i % c < c / 2 ? 0.8 : 0);
  });
  const trainIndex = Array.from({ length: 30 }, (_, i) => i);

  it("is deterministic for a seed, holds out training rows only and keeps the best epoch", async () => {
    const input = { stack, activations, labels, classCount: 2, trainIndex, seed: 7, labelSmoothing: 0.1 };
    const first = await fineTuneBlocks(tf, input);
    const second = await fineTuneBlocks(tf, input);
    assert.deepEqual(first.epochs, second.epochs);
    assert.deepEqual(first.stack.blocks[0]!.pointwiseKernel, second.stack.blocks[0]!.pointwiseKernel);
    assert.equal(first.fitCount + first.holdoutCount, trainIndex.length);
    assert.ok(first.epochs.length >= 1 && first.epochs.length <= MAX_EPOCHS);
    assert.ok(first.epochs[0]!.train_loss > first.epochs[first.epochs.length - 1]!.train_loss, "training loss falls");
    if (first.bestEpoch > 0) assert.equal(first.holdoutAccuracyFineTuned, first.epochs[first.bestEpoch - 1]!.holdout_accuracy);
    else assert.deepEqual(first.stack, stack);
    // Validation rows (30..39) play no part: changing them changes nothing.
    const changed = activations.slice();
    changed.fill(0, 30 * h * w * c);
    const third = await fineTuneBlocks(tf, { ...input, activations: changed });
    assert.deepEqual(third.epochs, first.epochs);
  });

  it("stores the blocks bit for bit and refuses inconsistent ones", () => {
    const { manifest, weights } = serializeBlocks(stack);
    const back = parseBlocks(JSON.parse(JSON.stringify(manifest)), weights.slice());
    assert.deepEqual(back.blocks[0]!.pointwiseKernel, stack.blocks[0]!.pointwiseKernel);
    assert.deepEqual(back.blocks[0]!.depthwiseBias, stack.blocks[0]!.depthwiseBias);
    assert.throws(() => parseBlocks(manifest, weights.slice(4)), HeadFormatError);
    const bad = JSON.parse(JSON.stringify(manifest));
    bad.blocks[0].output_shape = [3, 3, 12];
    assert.throws(() => parseBlocks(bad, weights), /does not follow/);
  });
});

describe("a fine-tuned model's artifact", () => {
  it("is format edgetune-head/2, and a head manifest with blocks under format /1 (or /2 without) is refused", () => {
    const fixture = fineTunedFixture();
    assert.equal(fixture.manifest.format, HEAD_FORMAT_WITH_BLOCKS);
    assert.equal(parseHead(fixture.manifest, fixture.headBin).blocks?.cut_layer, "conv_pw_1_relu");
    assert.throws(() => parseHead({ ...fixture.manifest, format: "edgetune-head/1" }, fixture.headBin), /format/);
    const { blocks: _blocks, ...withoutBlocks } = fixture.manifest;
    assert.throws(() => parseHead(withoutBlocks, fixture.headBin), /needs blocks/);
  });

  it("gives the probabilities the workers parity test expects (tests/fixtures/fine-tuned-blocks.expected.json is current)", async () => {
    const expected = JSON.parse(readFileSync(new URL("../fixtures/fine-tuned-blocks.expected.json", import.meta.url), "utf8"));
    const actual = await runnerProbabilities(tf);
    assert.ok(maxAbsDiff(actual.probabilities.flat(), expected.probabilities.flat()) < 1e-6);
    assert.ok(maxAbsDiff(actual.from_images.flat(), expected.from_images.flat()) < 1e-6);
  });

  it("is served (fused ops, embedWithBlocks) as it was trained (the differentiable graph)", () => {
    const fixture = fineTunedFixture();
    const per = fixture.cutMaps[0]!.length;
    const activations = new Float32Array(3 * per);
    fixture.cutMaps.forEach((map, i) => activations.set(map, i * per));
    const served = embedWithBlocks(tf, fixture.stack, activations, [0, 1, 2]);
    const variables = variablesOf(tf, fixture.stack);
    const trained = trainableForward(tf, variables, tf.tensor4d(activations, [3, ...fixture.stack.blocks[0]!.inputShape]));
    assert.ok(maxAbsDiff(served, trained.dataSync()) < 1e-5);
    tf.dispose([trained, ...variables.flatMap((v) => [v.depthwiseKernel, v.depthwiseBias, v.pointwiseKernel, v.pointwiseBias])]);
  });
});
