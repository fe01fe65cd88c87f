/**
 * Many models, one backbone, inside one isolate: the builtin MobileNetV2 (published to R2 as a runner does) and
 * 1,000 distinct heads resident at once, each loaded from R2 by a prediction through the API. Reports the bytes held
 * (heads as the LRU counts them, the tfjs WASM heap, which only grows) and checks them against the 128 MB isolate.
 * The JS heap cannot be read inside workerd; bench/predict/run.ts measures the whole workerd process instead.
 */
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { models } from "../../workers/db/schema";
import { getDb } from "../../workers/services/db";
import { DEFAULT_HEAD_CACHE_MAX_BYTES, headCache, inferenceStats, predict } from "../../workers/services/inference";
import type { ModelRow } from "../../workers/services/models";
import { headBytes, serializeHead } from "../../shared/head";
import { modelObjectPrefix } from "../../workers/services/object-keys";
import { makeJpeg } from "../fixtures/images";
import { callJson, createProject } from "./helpers";
import { publishBuiltinBackbone, seededHead, standardizationOf } from "./predict-fixtures";

const HEADS = 1_000;
const DIM = 576; // the builtin backbone's embedding (block_13_expand_relu, average-pooled)
const CLASSES = 5;
const MB = 1024 * 1024;

beforeAll(async () => {
  await publishBuiltinBackbone();
}, 120_000);

describe(`${HEADS} heads and the builtin backbone in one isolate`, () => {
  it("keeps every head resident within the head budget, and backbone + heads well under 128 MB", async () => {
    const project = await createProject("memory");
    const key = project.key;
    const db = getDb(env.DB);
    const standardize = standardizationOf([Float32Array.from({ length: DIM }, (_, i) => i % 7), Float32Array.from({ length: DIM }, (_, i) => i % 5)], DIM);
    const modelIds: string[] = [];
    const rows: (typeof models.$inferInsert)[] = [];
    for (let i = 0; i < HEADS; i++) {
      const head = seededHead(DIM, CLASSES, [], i + 1, undefined, standardize);
      const modelId = `mdl_mem${String(i).padStart(5, "0")}`;
      const prefix = modelObjectPrefix(project.projectId, modelId);
      const { manifest, weights } = serializeHead(head);
      await Promise.all([env.BUCKET.put(`${prefix}/head.json`, JSON.stringify(manifest)), env.BUCKET.put(`${prefix}/head.bin`, weights)]);
      rows.push({ id: modelId, projectId: project.projectId, jobId: `job_mem${i}`, datasetId: "ds_mem", datasetVersion: 1, backbone: "bb_builtin_mobilenet_v2", labels: head.labels, metrics: { accuracy: 1, per_class: [], confusion_matrix: [] }, objectPrefix: prefix, headBytes: headBytes(head) });
      modelIds.push(modelId);
    }
    for (let i = 0; i < rows.length; i += 50) await db.batch(rows.slice(i, i + 50).map((row) => db.insert(models).values(row)) as never);

    headCache.clear();
    // The backbone first: one image through the real MobileNetV2.
    const first = await callJson("POST", `/v1/models/${modelIds[0]}/predict`, { key, body: makeJpeg("other"), headers: { "content-type": "image/jpeg" } });
    expect(first.status).toBe(200);
    // Then every head, through the service: the HTTP path adds only auth and a D1 lookup per request, and the test
    // pool's `exports.default.fetch` slows down as calls accumulate (even GET /: 7 ms a call at first, 100 ms after
    // 1,000), which would make this test take minutes.
    const embedding = [Array.from({ length: DIM }, (_, i) => (i % 11) / 10)];
    const byId = new Map(rows.map((row) => [row.id, row]));
    for (let i = 0; i < HEADS; i += 10) {
      const batch = await Promise.all(modelIds.slice(i, i + 10).map((id) => predict(env, db, byId.get(id) as ModelRow, { kind: "embeddings", embeddings: embedding }, 1)));
      expect(batch.every((r) => r.predictions[0]!.length === 1)).toBe(true);
    }
    const stats = await inferenceStats();
    const wasmHeap = stats.tfjs?.wasm_heap_bytes ?? 0;
    console.log(
      `${HEADS} heads (${DIM}-d, ${CLASSES} classes, standardised): ${stats.heads.entries} resident, ${(stats.heads.bytes / MB).toFixed(1)} MiB ` +
        `(${Math.round(stats.heads.bytes / stats.heads.entries)} B each; budget ${DEFAULT_HEAD_CACHE_MAX_BYTES / MB} MiB); backbone ${stats.backbones.resident.map((b) => `${b.key} ${b.engine} ${(b.weight_bytes / MB).toFixed(1)} MiB`).join(", ")}; ` +
        `tfjs tensors ${stats.tfjs?.tensors} (${((stats.tfjs?.tensor_bytes ?? 0) / MB).toFixed(1)} MiB), WASM heap ${(wasmHeap / MB).toFixed(1)} MiB; heads + WASM heap ${((stats.heads.bytes + wasmHeap) / MB).toFixed(1)} MiB`,
    );
    expect(stats.heads.entries).toBe(HEADS);
    expect(stats.heads.evictions).toBe(0);
    expect(stats.heads.bytes).toBeLessThan(DEFAULT_HEAD_CACHE_MAX_BYTES);
    expect(stats.backbones.resident).toHaveLength(1);
    // Leaves more than 28 MB of the 128 MB for the JS heap (tfjs' code, measured about 25 MB) and the decoders.
    expect(stats.heads.bytes + wasmHeap).toBeLessThan(100 * 1000 * 1000);
  }, 300_000);
});
