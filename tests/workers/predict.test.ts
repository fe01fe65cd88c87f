/**
 * POST /v1/models/:id/predict inside workerd, through the Worker's fetch: the tiny fixture model stored as the
 * project's own backbone, heads built with shared/head.ts and written where the runner puts them, model rows
 * inserted with drizzle. Each test makes its own project; the head and backbone caches are module state of this
 * file's isolate, which the cache tests reset and inspect.
 */
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_PREDICT_MAX_PIXELS } from "../../workers/config";
import { preprocessSpecOf } from "../../shared/catalog";
import { applyHead, type Head } from "../../shared/head";
import { decodeImage } from "../../shared/image/decode";
import { preprocessImage } from "../../shared/image/preprocess";
import { backboneSpecSchema } from "../../shared/schemas";
import { getWorkerCodecs } from "../../workers/inference/codecs";
import { createEmbedder, type Embedder } from "../../workers/inference/embedder";
import { ensureTfjsWasm } from "../../workers/inference/tfjs-wasm";
import { BACKBONE_CACHE_MAX_ENTRIES, backboneCache, DEFAULT_HEAD_CACHE_MAX_BYTES, DEFAULT_HEAD_CACHE_MAX_ENTRIES, headCache, MAX_IMAGES_PER_REQUEST } from "../../workers/services/inference";
import { makeHugePngHeader, makeJpeg, makePng, makeTruncatedJpeg, textFile } from "../fixtures/images";
import { buildTinyGraphModel, buildTinyModel, tinySpec } from "../fixtures/tiny-model";
import { buildZip, call, callJson, createProject, createTrainableDataset } from "./helpers";
import { createTinyModel, insertModel, seededHead, storeHead, TINY_DIM, TINY_LABELS, uploadTinyBackbone } from "./predict-fixtures";

const toBase64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));
const image = (bytes: Uint8Array, type = "image/png") => ({ body: bytes, headers: { "content-type": type } });

function form(files: { bytes: Uint8Array; name: string; type?: string }[]): FormData {
  const data = new FormData();
  files.forEach((file, i) => data.append(`image${i}`, new Blob([file.bytes], { type: file.type ?? "image/png" }), file.name));
  return data;
}

/** The runner's path for the same bytes: shared decode + preprocess, tfjs-layers feature extractor, applyHead. */
let reference: Embedder;
async function expectedProbabilities(bytes: Uint8Array, head: Head): Promise<number[]> {
  const spec = backboneSpecSchema.parse(tinySpec());
  const pixels = preprocessImage(await decodeImage(bytes, await getWorkerCodecs()), preprocessSpecOf(spec));
  return Array.from(applyHead(head, await reference.embed(pixels), 1));
}

function expectMatches(predictions: { label: string; probability: number }[], expected: number[], labels: string[]) {
  for (const { label, probability } of predictions) expect(probability).toBeCloseTo(expected[labels.indexOf(label)]!, 5);
}

beforeAll(async () => {
  const tf = await ensureTfjsWasm();
  const model = buildTinyModel();
  reference = await createEmbedder(tf, { modelJson: model.modelJson as never, weightData: model.weightData.slice().buffer }, backboneSpecSchema.parse(tinySpec()), { engine: "runner" });
}, 120_000);

beforeEach(() => {
  headCache.resize({ maxEntries: DEFAULT_HEAD_CACHE_MAX_ENTRIES, maxBytes: DEFAULT_HEAD_CACHE_MAX_BYTES });
});

async function setup() {
  const { key, projectId } = await createProject();
  const backboneId = await uploadTinyBackbone(key);
  const { modelId, head } = await createTinyModel(projectId, backboneId);
  return { key, projectId, backboneId, modelId, head };
}

describe("POST /v1/models/:id/predict with images", () => {
  it("predicts a PNG sent as bytes: labels sorted by probability, top_k long, as the runner's path computes them", async () => {
    const { key, modelId, head } = await setup();
    const png = makePng(40, 30, 5);
    const { status, body } = await callJson("POST", `/v1/models/${modelId}/predict?top_k=2`, { key, ...image(png) });
    expect(status).toBe(200);
    expect(body.model_id).toBe(modelId);
    expect(body.predictions).toHaveLength(1);
    const [first] = body.predictions;
    expect(first).toHaveLength(2);
    expect(first[0].probability).toBeGreaterThanOrEqual(first[1].probability);
    expectMatches(first, await expectedProbabilities(png, head), TINY_LABELS);
    expect(body.timings_ms.total).toBeGreaterThanOrEqual(0);
    expect(Object.keys(body.timings_ms)).toEqual(expect.arrayContaining(["head_load", "backbone_load", "decode", "preprocess", "embed", "head", "total"]));
  });

  it("returns every label when top_k is left out or larger than the label count, and their probabilities sum to 1", async () => {
    const { key, modelId } = await setup();
    for (const path of [`/v1/models/${modelId}/predict`, `/v1/models/${modelId}/predict?top_k=50`]) {
      const { status, body } = await callJson("POST", path, { key, ...image(makeJpeg(), "image/jpeg") });
      expect(status).toBe(200);
      expect(body.predictions[0].map((p: { label: string }) => p.label).sort()).toEqual([...TINY_LABELS].sort());
      expect(body.predictions[0].reduce((sum: number, p: { probability: number }) => sum + p.probability, 0)).toBeCloseTo(1, 5);
    }
  });

  it("predicts several files of a multipart form, one list each in order, equal to predicting them one by one", async () => {
    const { key, modelId, head } = await setup();
    const files = [makePng(16, 12, 1), makeJpeg("small"), makeJpeg("other")];
    const { status, body } = await callJson("POST", `/v1/models/${modelId}/predict?top_k=3`, { key, body: form(files.map((bytes, i) => ({ bytes, name: `f${i}`, type: i === 0 ? "image/png" : "image/jpeg" }))) });
    expect(status).toBe(200);
    expect(body.predictions).toHaveLength(3);
    for (const [i, bytes] of files.entries()) expectMatches(body.predictions[i], await expectedProbabilities(bytes, head), TINY_LABELS);
  });

  it("accepts JSON with base64 images and data: URLs, with the same answer as the bytes", async () => {
    const { key, modelId } = await setup();
    const png = makePng(20, 20, 7);
    const bytes = await callJson("POST", `/v1/models/${modelId}/predict`, { key, ...image(png) });
    const json = await callJson("POST", `/v1/models/${modelId}/predict`, { key, json: { images: [toBase64(png), `data:image/png;base64,${toBase64(png)}`] } });
    expect(json.status).toBe(200);
    expect(json.body.predictions).toEqual([bytes.body.predictions[0], bytes.body.predictions[0]]);
  });

  it("answers 415 for a content type it does not take and 422 for an image format it does not decode (as on upload)", async () => {
    const { key, modelId } = await setup();
    const text = await callJson("POST", `/v1/models/${modelId}/predict`, { key, body: "hello", headers: { "content-type": "text/plain" } });
    expect(text.status).toBe(415);
    expect(text.body.error.code).toBe("unsupported_media_type");
    expect(text.body.error.details.supported).toContain("image/jpeg");
    const missing = await callJson("POST", `/v1/models/${modelId}/predict`, { key, body: makePng() });
    expect(missing.status).toBe(415);
    const gif = new TextEncoder().encode("GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x00\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;");
    const asPng = await callJson("POST", `/v1/models/${modelId}/predict`, { key, ...image(gif, "application/octet-stream") });
    expect(asPng.status).toBe(422);
    expect(asPng.body.error.code).toBe("unsupported_format");
    expect(asPng.body.error.details.index).toBe(0);
  });

  it("answers 422 naming the index and file name of a corrupt image, before running the backbone on the others", async () => {
    const { key, modelId } = await setup();
    const truncated = await callJson("POST", `/v1/models/${modelId}/predict`, {
      key, body: form([{ bytes: makePng(), name: "ok.png" }, { bytes: makeTruncatedJpeg(), name: "broken.jpg", type: "image/jpeg" }]),
    });
    expect(truncated.status).toBe(422);
    expect(truncated.body.error.details).toMatchObject({ index: 1, filename: "broken.jpg" });
    expect(truncated.body.error.message).toContain("broken.jpg");
    const notImage = await callJson("POST", `/v1/models/${modelId}/predict`, { key, json: { images: [toBase64(makePng()), toBase64(textFile())] } });
    expect(notImage.status).toBe(422);
    expect(notImage.body.error.details.index).toBe(1);
  });

  it("answers 400 for invalid base64 and for a JSON body of neither form, naming the field", async () => {
    const { key, modelId } = await setup();
    const bad = await callJson("POST", `/v1/models/${modelId}/predict`, { key, json: { images: [toBase64(makePng()), "not base64!"] } });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: "invalid_base64", details: { index: 1 } });
    const neither = await callJson("POST", `/v1/models/${modelId}/predict`, { key, json: { pictures: [] } });
    expect(neither.status).toBe(400);
    expect(neither.body.error.code).toBe("invalid_request");
    const malformed = await callJson("POST", `/v1/models/${modelId}/predict`, { key, body: "{", headers: { "content-type": "application/json" } });
    expect(malformed.body.error.code).toBe("malformed_json");
    const topK = await callJson("POST", `/v1/models/${modelId}/predict?top_k=0`, { key, ...image(makePng()) });
    expect(topK.status).toBe(400);
    expect(topK.body.error.details.issues[0].path).toBe("top_k");
  });

  it("answers 413 for more images than the limit (saying the limit) and for a body over the limit; 422 for too many pixels (as on upload)", async () => {
    const { key, modelId } = await setup();
    const many = Array.from({ length: MAX_IMAGES_PER_REQUEST + 1 }, (_, i) => ({ bytes: makePng(8, 8, i), name: `${i}.png` }));
    const multipart = await callJson("POST", `/v1/models/${modelId}/predict`, { key, body: form(many) });
    expect(multipart.status).toBe(413);
    expect(multipart.body.error).toMatchObject({ code: "too_many_images", details: { limit: MAX_IMAGES_PER_REQUEST, count: MAX_IMAGES_PER_REQUEST + 1 } });
    expect(multipart.body.error.message).toContain(String(MAX_IMAGES_PER_REQUEST));
    const json = await callJson("POST", `/v1/models/${modelId}/predict`, { key, json: { images: many.map((f) => toBase64(f.bytes)) } });
    expect(json.body.error.code).toBe("too_many_images");

    const bomb = await callJson("POST", `/v1/models/${modelId}/predict`, { key, ...image(makeHugePngHeader(20000, 20000)) });
    expect(bomb.status).toBe(422);
    expect(bomb.body.error).toMatchObject({ code: "too_many_pixels", details: { index: 0 } });
    // The edge's own limit, 2 MP by default (a larger photo does not fit a 128 MB isolate): one pixel over it is
    // refused from the header, with the limit in details for a client to shrink the photo to; at the limit, the
    // header passes (this PNG is a header only, so it then fails as corrupt).
    const over = await callJson("POST", `/v1/models/${modelId}/predict`, { key, ...image(makeHugePngHeader(2001, 1000)) });
    expect(over.status).toBe(422);
    expect(over.body.error).toMatchObject({ code: "too_many_pixels", details: { max_pixels: DEFAULT_PREDICT_MAX_PIXELS, width: 2001, height: 1000 } });
    const at = await callJson("POST", `/v1/models/${modelId}/predict`, { key, ...image(makeHugePngHeader(2000, 1000)) });
    expect(at.body.error.code).toBe("corrupt_image");

    const big = await callJson("POST", `/v1/models/${modelId}/predict`, { key, body: new Uint8Array(33 * 1024 * 1024), headers: { "content-type": "image/jpeg" } });
    expect(big.status).toBe(413);
    expect(big.body.error).toMatchObject({ code: "payload_too_large", details: { limit_bytes: 32 * 1024 * 1024 } });
  });
});

describe("POST /v1/models/:id/predict with embeddings", () => {
  it("applies the head to precomputed embeddings, exactly as applyHead does", async () => {
    const { key, modelId, head } = await setup();
    const rows = [Array.from({ length: TINY_DIM }, (_, i) => i / 10), Array.from({ length: TINY_DIM }, (_, i) => -i / 7)];
    const { status, body } = await callJson("POST", `/v1/models/${modelId}/predict?top_k=3`, { key, json: { embeddings: rows } });
    expect(status).toBe(200);
    const expected = applyHead(head, Float32Array.from(rows.flat()), 2);
    for (const [r, list] of body.predictions.entries()) {
      for (const { label, probability } of list) expect(probability).toBe(expected[r * 3 + TINY_LABELS.indexOf(label)]);
    }
    expect(body.timings_ms.backbone_load).toBeUndefined();
  });

  it("answers 422 naming the expected length for an embedding of the wrong length", async () => {
    const { key, modelId } = await setup();
    const { status, body } = await callJson("POST", `/v1/models/${modelId}/predict`, { key, json: { embeddings: [new Array(TINY_DIM).fill(0), [1, 2, 3]] } });
    expect(status).toBe(422);
    expect(body.error).toMatchObject({ code: "embedding_dim_mismatch", details: { index: 1, expected_dim: TINY_DIM, dim: 3 } });
    expect(body.error.message).toContain(String(TINY_DIM));
  });

  it("serves embeddings for a model whose backbone files are not in storage, while images answer 503 backbone_unavailable", async () => {
    const { key, projectId } = await createProject();
    const head = seededHead(576, 2, [], 3, ["a", "b"]);
    const modelId = await insertModel({ projectId, backbone: "bb_builtin_mobilenet_v2", head });
    const images = await callJson("POST", `/v1/models/${modelId}/predict`, { key, ...image(makePng()) });
    expect(images.status).toBe(503);
    expect(images.body.error.code).toBe("backbone_unavailable");
    expect(images.body.error.message).toMatch(/runner/);
    const embeddings = await callJson("POST", `/v1/models/${modelId}/predict`, { key, json: { embeddings: [new Array(576).fill(0.1)] } });
    expect(embeddings.status).toBe(200);
  });
});

describe("which models can be predicted", () => {
  it("answers 409 backbone_deleted for images once the model's own backbone is deleted, and still serves embeddings", async () => {
    const { key, projectId } = await createProject();
    const backboneId = await uploadTinyBackbone(key);
    const { modelId } = await createTinyModel(projectId, backboneId);
    expect((await call("DELETE", `/v1/backbones/${backboneId}?force=true`, { key })).status).toBe(204);
    const images = await callJson("POST", `/v1/models/${modelId}/predict`, { key, ...image(makePng()) });
    expect(images.status).toBe(409);
    expect(images.body.error).toMatchObject({ code: "backbone_deleted", details: { backbone: backboneId } });
    expect((await callJson("POST", `/v1/models/${modelId}/predict`, { key, json: { embeddings: [new Array(TINY_DIM).fill(0)] } })).status).toBe(200);
  });

  it("predicts with a graph-model backbone through tfjs-converter, as the runner's graph extractor does", async () => {
    const { key, projectId } = await createProject();
    const form = new FormData();
    const spec = tinySpec({ name: "tiny-graph", feature_layer: "conv/Conv2D" });
    form.set("spec", JSON.stringify(spec));
    const graph = buildTinyGraphModel();
    form.set("model", new Blob([buildZip(graph.files)], { type: "application/zip" }), "model.zip");
    const backbone = await callJson("POST", "/v1/backbones", { key, body: form });
    expect(backbone.status).toBe(201);
    const head = seededHead(8, 2, [], 5, ["u", "v"]);
    const modelId = await insertModel({ projectId, backbone: backbone.body.id, head });
    const png = makePng(24, 24, 4);
    const { status, body } = await callJson("POST", `/v1/models/${modelId}/predict`, { key, ...image(png) });
    expect(status).toBe(200);
    expect(backboneCache.peek(`${backbone.body.id}@${backbone.body.id}`)?.embedder.engine).toBe("graph");
    const graphEmbedder = await createEmbedder(await ensureTfjsWasm(), { modelJson: graph.modelJson as never, weightData: graph.weightData.slice().buffer }, backboneSpecSchema.parse(spec));
    const pixels = preprocessImage(await decodeImage(png, await getWorkerCodecs()), preprocessSpecOf(backboneSpecSchema.parse(spec)));
    expectMatches(body.predictions[0], Array.from(applyHead(head, await graphEmbedder.embed(pixels), 1)), ["u", "v"]);
  });

  it("answers 404 for an unknown model and for another project's model", async () => {
    const { modelId } = await setup();
    const other = await createProject();
    const foreign = await callJson("POST", `/v1/models/${modelId}/predict`, { key: other.key, ...image(makePng()) });
    expect(foreign.status).toBe(404);
    expect(foreign.body.error.code).toBe("model_not_found");
    const unknown = await callJson("POST", "/v1/models/mdl_nope/predict", { key: other.key, ...image(makePng()) });
    expect(unknown.status).toBe(404);
  });

  it("answers 409 model_not_ready for the model of a job that has not succeeded", async () => {
    const { key, datasetId } = await createTrainableDataset();
    const job = await callJson("POST", "/v1/jobs", { key, json: { dataset_id: datasetId } });
    const modelId = `mdl_${job.body.id.slice("job_".length)}`;
    const { status, body } = await callJson("POST", `/v1/models/${modelId}/predict`, { key, ...image(makePng()) });
    expect(status).toBe(409);
    expect(body.error).toMatchObject({ code: "model_not_ready", details: { job_id: job.body.id, job_status: "queued" } });
  });

  it("answers 409 model_artifacts_missing when the head is gone, and does not remember the failure", async () => {
    const { key, projectId, backboneId } = await setup();
    const head = seededHead(TINY_DIM, 2, [], 9, ["x", "y"]);
    const modelId = await insertModel({ projectId, backbone: backboneId, head, storeHead: false });
    const missing = await callJson("POST", `/v1/models/${modelId}/predict`, { key, json: { embeddings: [new Array(TINY_DIM).fill(0)] } });
    expect(missing.status).toBe(409);
    expect(missing.body.error.code).toBe("model_artifacts_missing");
    await storeHead(projectId, modelId, head);
    expect((await callJson("POST", `/v1/models/${modelId}/predict`, { key, json: { embeddings: [new Array(TINY_DIM).fill(0)] } })).status).toBe(200);
  });

  it("answers 401 without an API key or with a wrong one", async () => {
    const { modelId } = await setup();
    expect((await call("POST", `/v1/models/${modelId}/predict`, { key: null, ...image(makePng()) })).status).toBe(401);
    expect((await call("POST", `/v1/models/${modelId}/predict`, { key: "et_wrong", ...image(makePng()) })).status).toBe(401);
  });
});

describe("the isolate's caches", () => {
  it("loads a head once for concurrent first requests and serves it from memory after", async () => {
    const { key, modelId } = await setup();
    const before = headCache.stats();
    const responses = await Promise.all(Array.from({ length: 5 }, () => call("POST", `/v1/models/${modelId}/predict`, { key, json: { embeddings: [new Array(TINY_DIM).fill(0)] } })));
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    const after = headCache.stats();
    expect(after.loads - before.loads).toBe(1);
    await call("POST", `/v1/models/${modelId}/predict`, { key, json: { embeddings: [new Array(TINY_DIM).fill(0)] } });
    expect(headCache.stats().loads).toBe(after.loads);
    expect(headCache.stats().hits).toBeGreaterThan(after.hits);
  });

  it("evicts the least recently used head past its count bound and reloads it from R2 when asked again", async () => {
    const { key, projectId, backboneId } = await setup();
    const ids: string[] = [];
    for (let seed = 1; seed <= 3; seed++) ids.push((await createTinyModel(projectId, backboneId, seed)).modelId);
    headCache.clear();
    headCache.resize({ maxEntries: 2 });
    const predict = (id: string) => callJson("POST", `/v1/models/${id}/predict`, { key, json: { embeddings: [new Array(TINY_DIM).fill(0.5)] } });
    const first = await predict(ids[0]!);
    await predict(ids[1]!);
    await predict(ids[2]!);
    expect(headCache.keys()).toEqual([`${projectId}/${ids[1]}`, `${projectId}/${ids[2]}`]);
    const loads = headCache.stats().loads;
    const again = await predict(ids[0]!);
    expect(again.body.predictions).toEqual(first.body.predictions);
    expect(headCache.stats().loads).toBe(loads + 1);
    expect(headCache.stats().entries).toBe(2);
  });

  it("keeps the heads within its byte bound", async () => {
    const { key, projectId, backboneId } = await setup();
    const ids = [(await createTinyModel(projectId, backboneId, 1)).modelId, (await createTinyModel(projectId, backboneId, 2)).modelId];
    headCache.clear();
    await callJson("POST", `/v1/models/${ids[0]}/predict`, { key, json: { embeddings: [new Array(TINY_DIM).fill(0)] } });
    const oneHead = headCache.stats().bytes;
    headCache.resize({ maxBytes: Math.floor(oneHead * 1.5) });
    await callJson("POST", `/v1/models/${ids[1]}/predict`, { key, json: { embeddings: [new Array(TINY_DIM).fill(0)] } });
    expect(headCache.stats()).toMatchObject({ entries: 1, bytes: oneHead });
    expect(headCache.keys()).toEqual([`${projectId}/${ids[1]}`]);
  });

  it("evicts the least recently used backbone past its count bound, frees it, and rebuilds it when asked again", async () => {
    const a = await setup();
    const b = await setup();
    const predictPng = (key: string, id: string) => callJson("POST", `/v1/models/${id}/predict`, { key, ...image(makePng(12, 12, 3)) });
    backboneCache.clear();
    backboneCache.resize({ maxEntries: 1 });
    try {
      const first = await predictPng(a.key, a.modelId);
      expect((await predictPng(b.key, b.modelId)).status).toBe(200);
      expect(backboneCache.keys()).toEqual([`${b.backboneId}@${b.backboneId}`]);
      const loads = backboneCache.stats().loads;
      const again = await predictPng(a.key, a.modelId);
      expect(again.body.predictions).toEqual(first.body.predictions);
      expect(backboneCache.stats().loads).toBe(loads + 1);
    } finally {
      backboneCache.resize({ maxEntries: BACKBONE_CACHE_MAX_ENTRIES });
    }
  });

  it("builds one backbone for every model trained on it", async () => {
    const { key, projectId, backboneId, modelId } = await setup();
    const second = (await createTinyModel(projectId, backboneId, 2)).modelId;
    const loads = backboneCache.stats().loads;
    await Promise.all([modelId, second, modelId].map((id) => callJson("POST", `/v1/models/${id}/predict`, { key, ...image(makePng()) })));
    expect(backboneCache.stats().loads).toBe(loads + 1);
    expect(backboneCache.keys()).toContain(`${backboneId}@${backboneId}`);
  });
});

describe("the OpenAPI document", () => {
  it("describes the four body forms of predict, the top_k query and the alias routes", async () => {
    const { status, body } = await callJson("GET", "/openapi.json", { key: null });
    expect(status).toBe(200);
    const operation = body.paths["/v1/models/{id}/predict"].post;
    expect(Object.keys(operation.requestBody.content)).toEqual(["image/jpeg", "image/png", "multipart/form-data", "application/json"]);
    expect(operation.parameters.map((p: { name: string }) => p.name)).toEqual(expect.arrayContaining(["id", "top_k"]));
    expect(body.components.schemas.PredictJsonRequest).toBeDefined();
    expect(body.components.schemas.Prediction).toBeDefined();
    expect(Object.keys(body.paths)).toEqual(expect.arrayContaining(["/v1/aliases", "/v1/aliases/{name}", "/v1/aliases/{name}/predict"]));
  });
});
