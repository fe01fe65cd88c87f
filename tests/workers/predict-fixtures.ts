/**
 * Factories for the prediction tests: heads built with shared/head.ts and stored in R2 where the runner puts them,
 * model rows inserted with drizzle, the tiny fixture uploaded as a user backbone, the real nsfwjs MobileNetV2.
 */
import { env } from "cloudflare:test";
import { NSFWJS_MOBILENET_V2 } from "../../shared/catalog";
import { headBytes, serializeHead, type DenseLayer, type Head, type Standardization } from "../../shared/head";
import { randomString } from "../../shared/ids";
import { models } from "../../workers/db/schema";
import { builtinObjectPrefix, modelObjectPrefix } from "../../workers/services/object-keys";
import { getDb } from "../../workers/services/db";
import { buildTinyModel, tinySpec } from "../fixtures/tiny-model";
import { buildZip, callJson } from "./helpers";

/** Deterministic values in [-1, 1). */
function lcg(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 31 - 1;
  };
}

/** A head with seeded weights of a realistic scale (about 1 / sqrt(fan in)); no standardisation unless given. */
export function seededHead(inputDim: number, classes: number, hidden: number[] = [], seed = 1, labels?: string[], standardize: Standardization | null = null): Head {
  const next = lcg(seed);
  const widths = [inputDim, ...hidden, classes];
  const layers: DenseLayer[] = widths.slice(1).map((units, index) => {
    const fanIn = widths[index]!;
    const scale = 2 / Math.sqrt(fanIn);
    return {
      type: "dense",
      inputDim: fanIn,
      units,
      activation: index === hidden.length ? "softmax" : "relu",
      weights: Float32Array.from({ length: fanIn * units }, () => next() * scale),
      bias: Float32Array.from({ length: units }, () => next() * 0.1),
    };
  });
  return { inputDim, labels: labels ?? Array.from({ length: classes }, (_, i) => `class_${i}`), standardize, layers };
}

/** The runner's standardisation (gpu-runner/src/train/train-head.ts): population std, floored at 1% of the RMS std. */
export function standardizationOf(rows: Float32Array[], dim: number): Standardization {
  const mean = new Float64Array(dim);
  for (const row of rows) for (let i = 0; i < dim; i++) mean[i] += row[i]! / rows.length;
  const variance = new Float64Array(dim);
  for (const row of rows) for (let i = 0; i < dim; i++) variance[i] += (row[i]! - mean[i]!) ** 2 / rows.length;
  const floor = Math.max(0.01 * Math.sqrt(variance.reduce((a, b) => a + b, 0) / dim), 1e-12);
  return { mean: Float32Array.from(mean), std: Float32Array.from(variance, (v) => Math.max(Math.sqrt(v), floor)) };
}

/** Writes head.json + head.bin where the runner uploads them (projects/{project}/models/{model}/). */
export async function storeHead(projectId: string, modelId: string, head: Head): Promise<string> {
  const prefix = modelObjectPrefix(projectId, modelId);
  const { manifest, weights } = serializeHead(head);
  await env.BUCKET.put(`${prefix}/head.json`, JSON.stringify(manifest));
  await env.BUCKET.put(`${prefix}/head.bin`, weights);
  return prefix;
}

/** A ready model row (as completeJob registers one) whose head is stored in R2. */
export async function insertModel(input: { projectId: string; backbone: string; head: Head; modelId?: string; storeHead?: boolean }): Promise<string> {
  const suffix = randomString(12);
  const modelId = input.modelId ?? `mdl_${suffix}`;
  const prefix = input.storeHead === false ? modelObjectPrefix(input.projectId, modelId) : await storeHead(input.projectId, modelId, input.head);
  await getDb(env.DB).insert(models).values({
    id: modelId,
    projectId: input.projectId,
    jobId: `job_${modelId.slice(4)}`,
    datasetId: "ds_test",
    datasetVersion: 1,
    backbone: input.backbone,
    labels: input.head.labels,
    metrics: { accuracy: 1, per_class: [], confusion_matrix: [] },
    objectPrefix: prefix,
    headBytes: headBytes(input.head),
  });
  return modelId;
}

/** The tiny fixture model uploaded as the project's own backbone (32x32 input, feature layer relu1: 8 values). */
export async function uploadTinyBackbone(key: string): Promise<string> {
  const form = new FormData();
  form.set("spec", JSON.stringify(tinySpec()));
  form.set("model", new Blob([buildZip(buildTinyModel().files)], { type: "application/zip" }), "model.zip");
  const { status, body } = await callJson("POST", "/v1/backbones", { key, body: form });
  if (status !== 201) throw new Error(`backbone upload failed: ${status} ${JSON.stringify(body)}`);
  return body.id;
}

export const TINY_DIM = 8;
export const TINY_LABELS = ["cat", "dog", "bird"];

/** A project-owned model on the tiny backbone: a 3-class linear head over its 8 features, standardised. */
export async function createTinyModel(projectId: string, backboneId: string, seed = 1): Promise<{ modelId: string; head: Head }> {
  const standardize = { mean: Float32Array.from({ length: TINY_DIM }, (_, i) => 0.05 * i), std: Float32Array.from({ length: TINY_DIM }, (_, i) => 0.2 + 0.05 * i) };
  const head = seededHead(TINY_DIM, TINY_LABELS.length, [], seed, TINY_LABELS, standardize);
  return { modelId: await insertModel({ projectId, backbone: backboneId, head }), head };
}

/** nsfwjs' MobileNetV2 as the stored pair `loadBackboneFiles` returns (model.json + the weight bytes). */
export async function loadNsfwjsFiles(): Promise<{ modelJson: any; weightData: ArrayBuffer }> {
  // nsfwjs wraps model.json and its base64 weight shard in UMD modules; the pool imports them as CommonJS.
  const { MobileNetV2Model } = await import("nsfwjs/models/mobilenet_v2");
  const modelJson = (await MobileNetV2Model.modelJson()).default;
  const weightsBase64: string = (await MobileNetV2Model.weightBundles[0]!()).default;
  const bytes = Uint8Array.from(atob(weightsBase64), (c) => c.charCodeAt(0));
  return { modelJson: { ...modelJson, weightsManifest: [{ paths: ["weights.bin"], weights: modelJson.weightsManifest.flatMap((g: { weights: unknown[] }) => g.weights) }] }, weightData: bytes.buffer };
}

/** Publishes the builtin backbone's files to R2, as a runner does (PUT /v1/runner/backbones/:id/:file). */
export async function publishBuiltinBackbone(): Promise<void> {
  const { modelJson, weightData } = await loadNsfwjsFiles();
  const prefix = builtinObjectPrefix(NSFWJS_MOBILENET_V2.id);
  await env.BUCKET.put(`${prefix}/weights.bin`, weightData);
  await env.BUCKET.put(`${prefix}/model.json`, JSON.stringify(modelJson));
}
