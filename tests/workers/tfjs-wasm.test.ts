/**
 * ensureTfjsWasm inside workerd: the init workarounds, the numbers the backend computes, and the real backbone.
 *
 * Isolation: the first three tests need an isolate in which tfjs has not been initialised yet. The pool gives each
 * test file its own module graph, and vitest runs a file's tests in order, so they come first in this file.
 * Cold, the pool spends about 10 s transforming the tfjs packages (once per file, in beforeAll); a bundled Worker
 * does not.
 */
import type { Tensor } from "@tensorflow/tfjs-core";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ensureTfjsWasm, InferenceUnavailableError, type Tfjs } from "../../workers/inference/tfjs-wasm";

const realInstantiate = WebAssembly.instantiate;
const processDescriptor = Object.getOwnPropertyDescriptor(globalThis, "process");

beforeAll(async () => {
  await Promise.all([import("@tensorflow/tfjs-core"), import("@tensorflow/tfjs-layers"), import("@tensorflow/tfjs-backend-wasm")]);
}, 120_000);

afterEach(() => {
  WebAssembly.instantiate = realInstantiate;
});

/** Makes the real `WebAssembly.instantiate` (the one the init patch delegates to) behave as `replacement` for a while. */
function stubInstantiate(replacement: (...args: Parameters<typeof WebAssembly.instantiate>) => Promise<unknown>) {
  WebAssembly.instantiate = replacement as typeof WebAssembly.instantiate;
}

function expectGlobalsUntouched(tf: Pick<Tfjs, "env">) {
  expect(WebAssembly.instantiate).toBe(realInstantiate);
  expect(Object.getOwnPropertyDescriptor(globalThis, "process")).toEqual(processDescriptor);
  expect(Object.prototype.hasOwnProperty.call(tf.env().platform, "fetch")).toBe(false);
}

describe("ensureTfjsWasm before the first successful init", () => {
  it("rejects with inference_unavailable when the WASM module cannot be instantiated, and restores every global", async () => {
    const failing = () => Promise.reject(new Error("stubbed link failure"));
    stubInstantiate(failing);
    const error = await ensureTfjsWasm().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InferenceUnavailableError);
    expect((error as InferenceUnavailableError).code).toBe("inference_unavailable");
    expect(WebAssembly.instantiate).toBe(failing); // the patch put back exactly what it found
    WebAssembly.instantiate = realInstantiate;
    expectGlobalsUntouched(await import("@tensorflow/tfjs-core"));
  });

  it("gives up after timeoutMs when init hangs instead of hanging the caller", async () => {
    stubInstantiate(() => new Promise(() => {}));
    const started = Date.now();
    const error = await ensureTfjsWasm({ timeoutMs: 300 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InferenceUnavailableError);
    expect((error as Error).message).toMatch(/within 300 ms/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("shares one init between concurrent first calls, and a retry after failures succeeds", async () => {
    let instantiations = 0;
    stubInstantiate((source, imports) => {
      instantiations++;
      return realInstantiate(source as WebAssembly.Module, imports);
    });
    const calls = [ensureTfjsWasm(), ensureTfjsWasm(), ensureTfjsWasm()];
    expect(calls[1]).toBe(calls[0]);
    expect(calls[2]).toBe(calls[0]);
    const [tf] = await Promise.all(calls);
    expect(instantiations).toBe(1);
    expect(tf!.getBackend()).toBe("wasm");
    expect(await ensureTfjsWasm()).toBe(tf);
  });
});

describe("ensureTfjsWasm once initialised", () => {
  let tf: Tfjs;
  beforeAll(async () => {
    tf = await ensureTfjsWasm();
  }, 120_000);

  it("runs on the wasm backend and leaves no global patched", () => {
    expect(tf.getBackend()).toBe("wasm");
    expectGlobalsUntouched(tf);
  });

  it("computes conv2d and matMul exactly", () => {
    // 3x3 input 1..9, 2x2 kernel of ones, 'valid': each output is the sum of a 2x2 window.
    const image = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 3, 3, 1]);
    const ones = tf.ones([2, 2, 1, 1]) as ReturnType<typeof tf.tensor4d>;
    expect(Array.from(tf.conv2d(image, ones, 1, "valid").dataSync())).toEqual([12, 16, 24, 28]);
    const product = tf.matMul(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[5, 6], [7, 8]]));
    expect(Array.from(product.dataSync())).toEqual([19, 22, 43, 50]);
  });

  it("predicts a Conv2D/DepthwiseConv2D/BatchNorm/ReLU/GAP/Dense model as a plain-JS reference does", () => {
    const net = buildTinyNet(tf);
    const input = pattern(5 * 5 * 2, 0.3);
    const predicted = (net.predict(tf.tensor4d(input, [1, 5, 5, 2])) as Tensor).dataSync();
    const expected = tinyNetReference(input, tinyNetWeights);
    expect(predicted.length).toBe(2);
    for (let i = 0; i < 2; i++) expect(predicted[i]).toBeCloseTo(expected[i]!, 5);
  });

  it("loads the nsfwjs MobileNetV2 in workerd and classifies a 224x224 image as Node's WASM backend does", async () => {
    // nsfwjs wraps model.json and its base64 weight shard in UMD modules; the pool imports them as CommonJS.
    const { MobileNetV2Model } = await import("nsfwjs/models/mobilenet_v2");
    const modelJson = (await MobileNetV2Model.modelJson()).default;
    const weightsBase64: string = (await MobileNetV2Model.weightBundles[0]!()).default;
    const bytes = Uint8Array.from(atob(weightsBase64), (c) => c.charCodeAt(0));
    const model = await tf.loadLayersModel(tf.io.fromMemory({
      modelTopology: modelJson.modelTopology,
      weightSpecs: modelJson.weightsManifest.flatMap((group: { weights: unknown[] }) => group.weights),
      weightData: bytes.buffer,
    }));

    const probabilities = tf.tidy(() => (model.predict(syntheticImage(tf)) as Tensor).dataSync());
    // From bench/workerd/node-reference.ts (tfjs-backend-wasm 4.22 in Node, same image).
    const nodeReference = [0.0070462352596223354, 0.000454373104730621, 0.9921114444732666, 0.0003518669109325856, 0.00003610315252444707];
    expect(probabilities.length).toBe(5);
    for (let i = 0; i < 5; i++) expect(probabilities[i]).toBeCloseTo(nodeReference[i]!, 6);
    model.dispose();
  }, 120_000);
});

/** Same formula as bench/workerd/mobilenet-fixture.ts: [1, 224, 224, 3] in [0, 1]. */
function syntheticImage(tf: Tfjs) {
  const size = 224;
  const values = new Float32Array(size * size * 3);
  let k = 0;
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++)
      for (let c = 0; c < 3; c++) values[k++] = ((x * 7 + y * 13 + c * 29 + ((x * y) >> 5)) % 256) / 255;
  return tf.tensor4d(values, [1, size, size, 3]);
}

/** Deterministic values in [-0.5, 0.5]. */
function pattern(length: number, seed: number): number[] {
  return Array.from({ length }, (_, i) => 0.5 * Math.sin(1.7 * i + seed));
}

const C = 2; // input channels
const F = 3; // Conv2D filters (and DepthwiseConv2D channels)
const O = 2; // Dense units
const tinyNetWeights = {
  convKernel: pattern(3 * 3 * C * F, 1), // [3, 3, C, F]
  convBias: pattern(F, 2),
  depthwiseKernel: pattern(3 * 3 * F, 3), // [3, 3, F, 1]
  depthwiseBias: pattern(F, 4),
  gamma: [1.1, 0.9, 1.3],
  beta: [0.05, -0.1, 0.2],
  movingMean: [0.1, -0.2, 0.05],
  movingVariance: [0.5, 0.75, 1.25],
  denseKernel: pattern(F * O, 5), // [F, O]
  denseBias: pattern(O, 6),
};
const EPSILON = 1e-3;

function buildTinyNet(tf: Tfjs) {
  const w = tinyNetWeights;
  const net = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [5, 5, C], filters: F, kernelSize: 3, padding: "same" }),
      tf.layers.depthwiseConv2d({ kernelSize: 3, padding: "same" }),
      tf.layers.batchNormalization({ epsilon: EPSILON }),
      tf.layers.reLU(),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: O }),
    ],
  });
  const [conv, depthwise, batchNorm, , , dense] = net.layers;
  conv!.setWeights([tf.tensor4d(w.convKernel, [3, 3, C, F]), tf.tensor1d(w.convBias)]);
  depthwise!.setWeights([tf.tensor4d(w.depthwiseKernel, [3, 3, F, 1]), tf.tensor1d(w.depthwiseBias)]);
  batchNorm!.setWeights([tf.tensor1d(w.gamma), tf.tensor1d(w.beta), tf.tensor1d(w.movingMean), tf.tensor1d(w.movingVariance)]);
  dense!.setWeights([tf.tensor2d(w.denseKernel, [F, O]), tf.tensor1d(w.denseBias)]);
  return net;
}

/** The same network written out in loops over NHWC arrays (5x5 image, 'same' padding = 1 pixel of zeros). */
function tinyNetReference(input: number[], w: typeof tinyNetWeights): number[] {
  const H = 5;
  const at = (x: number[], h: number, v: number, c: number, channels: number) =>
    h < 0 || h >= H || v < 0 || v >= H ? 0 : x[(h * H + v) * channels + c]!;
  const conv: number[] = [];
  for (let h = 0; h < H; h++)
    for (let v = 0; v < H; v++)
      for (let f = 0; f < F; f++) {
        let sum = w.convBias[f]!;
        for (let i = 0; i < 3; i++)
          for (let j = 0; j < 3; j++)
            for (let c = 0; c < C; c++) sum += at(input, h + i - 1, v + j - 1, c, C) * w.convKernel[((i * 3 + j) * C + c) * F + f]!;
        conv.push(sum);
      }
  const pooled = new Array<number>(F).fill(0);
  for (let h = 0; h < H; h++)
    for (let v = 0; v < H; v++)
      for (let f = 0; f < F; f++) {
        let sum = w.depthwiseBias[f]!;
        for (let i = 0; i < 3; i++)
          for (let j = 0; j < 3; j++) sum += at(conv, h + i - 1, v + j - 1, f, F) * w.depthwiseKernel[(i * 3 + j) * F + f]!;
        const normalised = ((sum - w.movingMean[f]!) / Math.sqrt(w.movingVariance[f]! + EPSILON)) * w.gamma[f]! + w.beta[f]!;
        pooled[f]! += Math.max(0, normalised) / (H * H);
      }
  return Array.from({ length: O }, (_, o) => pooled.reduce((sum, g, f) => sum + g * w.denseKernel[f * O + o]!, w.denseBias[o]!));
}
