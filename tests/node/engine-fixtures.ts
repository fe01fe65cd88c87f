/**
 * A tiny MobileNet-shaped tfjs layers model with random weights, as a backbone bundle: every layer type the
 * engines support (ZeroPadding2D, Conv2D with and without bias/activation, BatchNormalization with non-trivial
 * statistics, ReLU(6), DepthwiseConv2D with stride and multiplier, Add, Activation relu6, Concatenate, Dropout),
 * then a head (GlobalAveragePooling2D + Dense) that feature extraction must cut.
 */
import * as tf from "@tensorflow/tfjs";
import { buildFeatureExtractor } from "../../shared/backbone/feature-extractor";
import type { BackboneBundle, FeatureSpec } from "../../shared/backbone/types";

export const TINY_SIZE = 32;

/** Builds the model under the current tfjs backend and serialises it the way tfjs saves model.json. */
export async function makeTinyBundle(seed = 7): Promise<BackboneBundle> {
  const input = tf.input({ shape: [TINY_SIZE, TINY_SIZE, 3], name: "input_1" });
  const pad = tf.layers.zeroPadding2d({ padding: [[0, 1], [0, 1]], name: "stem_pad" }).apply(input);
  let x = tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: "valid", useBias: false, name: "stem" }).apply(pad);
  x = tf.layers.batchNormalization({ name: "stem_bn", epsilon: 1e-3 }).apply(x);
  const stem = tf.layers.reLU({ maxValue: 6, name: "stem_relu" }).apply(x) as tf.SymbolicTensor;
  let y = tf.layers.depthwiseConv2d({ kernelSize: 3, padding: "same", depthMultiplier: 2, useBias: false, name: "dw" }).apply(stem);
  y = tf.layers.batchNormalization({ name: "dw_bn" }).apply(y);
  y = tf.layers.reLU({ maxValue: 6, name: "dw_relu" }).apply(y);
  y = tf.layers.conv2d({ filters: 8, kernelSize: 1, padding: "same", useBias: false, name: "project" }).apply(y);
  y = tf.layers.batchNormalization({ name: "project_bn" }).apply(y);
  const added = tf.layers.add({ name: "block_add" }).apply([stem, y as tf.SymbolicTensor]) as tf.SymbolicTensor;
  let z = tf.layers.depthwiseConv2d({ kernelSize: 3, strides: 2, padding: "same", useBias: true, name: "down_dw" }).apply(added);
  z = tf.layers.activation({ activation: "relu6", name: "down_relu" }).apply(z);
  z = tf.layers.conv2d({ filters: 12, kernelSize: 1, activation: "relu", name: "expand" }).apply(z);
  const side = tf.layers.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: "same", name: "side" }).apply(added);
  const joined = tf.layers.concatenate({ name: "joined" }).apply([z as tf.SymbolicTensor, side as tf.SymbolicTensor]);
  const dropped = tf.layers.dropout({ rate: 0.5, name: "drop" }).apply(joined);
  const features = tf.layers.batchNormalization({ name: "out_bn" }).apply(dropped);
  const out = tf.layers.reLU({ name: "out_relu" }).apply(features);
  const pooled = tf.layers.globalAveragePooling2d({ name: "gap" }).apply(out);
  const head = tf.layers.dense({ units: 3, activation: "softmax", name: "head" }).apply(pooled) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: head, name: "tiny" });

  return saveAsBundle(model, "tiny-test", seed);
}

/**
 * Gives `model` random but well-conditioned weights (BN statistics far from the identity, so folding is exercised),
 * serialises it the way tfjs saves model.json, and disposes it.
 */
export async function saveAsBundle(model: tf.LayersModel, name: string, seed = 7): Promise<BackboneBundle> {
  let state = seed;
  const random = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (const layer of model.layers) {
    const values = layer.getWeights().map((w, index) => {
      const size = w.size;
      const data = new Float32Array(size);
      const isBn = layer.getClassName() === "BatchNormalization";
      for (let i = 0; i < size; i++) {
        const r = random();
        // BN order: gamma, beta, moving_mean, moving_variance
        data[i] = isBn ? [0.5 + r, r - 0.5, r - 0.5, 0.2 + r][index]! : (r - 0.5) * 0.8;
      }
      return tf.tensor(data, w.shape);
    });
    layer.setWeights(values);
    tf.dispose(values);
  }

  let saved: tf.io.ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler(async (artifacts) => {
    saved = artifacts;
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } };
  }));
  model.dispose();
  const weightData = saved!.weightData as ArrayBuffer;
  return {
    name,
    modelJson: {
      modelTopology: saved!.modelTopology as BackboneBundle["modelJson"]["modelTopology"],
      weightsManifest: [{ paths: ["weights.bin"], weights: saved!.weightSpecs as BackboneBundle["modelJson"]["weightsManifest"][0]["weights"] }],
    },
    weightData,
    inputRange: [-1, 1],
  };
}

/** `n` deterministic pseudo-random images in [-1, 1], NHWC. */
export function makeImages(n: number, size = TINY_SIZE, seed = 3): Float32Array {
  const out = new Float32Array(n * size * size * 3);
  let state = seed;
  for (let i = 0; i < out.length; i++) {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    out[i] = (state / 2 ** 31) * 2 - 1;
  }
  return out;
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

/** Reference embeddings `[n, dim]`: the shared tfjs-layers extractor on the current backend, in this process. */
export async function referenceEmbeddings(bundle: BackboneBundle, spec: FeatureSpec, images: Float32Array, n: number, size = TINY_SIZE): Promise<Float32Array> {
  const extractor = await buildFeatureExtractor(tf, bundle, spec);
  const input = tf.tensor4d(images, [n, size, size, 3]);
  const out = extractor.embed(input);
  const values = (await out.data()) as Float32Array;
  tf.dispose([input, out]);
  extractor.dispose();
  return values;
}
