/**
 * What one tenant's backbone may take from a shared isolate (issue 8): its cost is estimated at import and shown on
 * GET /v1/backbones/:id; above the edge budget (services/edge-budget.ts) predictions from images answer 409 with the
 * reason; an isolate loads one backbone at a time and runs a bounded number of image predictions, answering 503
 * `edge_busy` with Retry-After beyond. The gates are module state of this file's isolate (`edgeActivity`), set here
 * to stand for a load or predictions in flight.
 */
import { env } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { EDGE_MAX_FLOPS, EDGE_MAX_INPUT_SIDE, EDGE_MAX_MEMORY_BYTES } from "../../workers/services/edge-budget";
import { MAX_CONCURRENT_IMAGE_PREDICTIONS, backboneCache, edgeActivity } from "../../workers/services/inference";
import { makePng } from "../fixtures/images";
import { buildTinyModel, tinySpec } from "../fixtures/tiny-model";
import { buildZip, call, callJson, createProject } from "./helpers";
import { createTinyModel, TINY_DIM, uploadTinyBackbone } from "./predict-fixtures";

const png = () => ({ body: makePng(40, 30, 5), headers: { "content-type": "image/png" } });

afterEach(() => {
  edgeActivity.loadingBackbone = null;
  edgeActivity.imagePredictions = 0;
});

async function setup() {
  const { key, projectId } = await createProject();
  const backboneId = await uploadTinyBackbone(key);
  const { modelId } = await createTinyModel(projectId, backboneId);
  return { key, projectId, backboneId, modelId };
}

describe("backbone cost at import", () => {
  it("GET /v1/backbones/:id shows FLOPs, float32 weight bytes and peak activation bytes at batch 1", async () => {
    const { key, backboneId } = await setup();
    const { status, body } = await callJson("GET", `/v1/backbones/${backboneId}`, { key });
    expect(status).toBe(200);
    // input 32x32x3 -> conv1 (3x3, 8 filters, same) -> bn1 -> relu1 (the feature layer):
    // conv 2 x 32x32x(3x3x3)x8 = 442,368 + batch norm 2 x 8,192 + relu 8,192; bn1 and relu1 alive together = 65,536 bytes.
    expect(body.cost).toEqual({ flops: 466_944, float_weight_bytes: 292 * 4, peak_activation_bytes: 65_536 });
    expect(body.edge).toEqual({ servable: true, reason: null });
    const builtin = (await callJson("GET", "/v1/backbones", { key })).body.backbones.find((b: any) => b.builtin);
    expect(builtin).toMatchObject({ cost: null, edge: { servable: true, reason: null } });
  });
});

describe("the edge budget", () => {
  it(`409 backbone_too_large for an input_size above ${EDGE_MAX_INPUT_SIDE}, said on the backbone too; embeddings still predict`, async () => {
    const { key, projectId } = await createProject();
    const form = new FormData();
    form.set("spec", JSON.stringify(tinySpec({ input_size: [600, 600] })));
    form.set("model", new Blob([buildZip(buildTinyModel({ inputSize: [600, 600] }).files)]), "model.zip");
    const imported = await callJson("POST", "/v1/backbones", { key, body: form });
    expect(imported.status).toBe(201);
    expect(imported.body.edge.servable).toBe(false);
    expect(imported.body.edge.reason).toContain(`above the edge's ${EDGE_MAX_INPUT_SIDE}x${EDGE_MAX_INPUT_SIDE}`);
    const { modelId } = await createTinyModel(projectId, imported.body.id);
    const { status, body } = await callJson("POST", `/v1/models/${modelId}/predict`, { key, ...png() });
    expect(status).toBe(409);
    expect(body.error).toMatchObject({ code: "backbone_too_large", details: { reason: "input_size", limit: EDGE_MAX_INPUT_SIDE, estimate: 600 } });
    expect(body.error.message).toContain("Send embeddings");
    expect((await callJson("POST", `/v1/models/${modelId}/predict`, { key, json: { embeddings: [new Array(TINY_DIM).fill(0)] } })).status).toBe(200);
  });

  it("409 with reason memory or flops when the stored estimate is above the budget, before any weight is loaded", async () => {
    const { key, backboneId, modelId } = await setup();
    backboneCache.clear();
    await env.DB.prepare("update backbones set peak_activation_bytes = ? where id = ?").bind(EDGE_MAX_MEMORY_BYTES, backboneId).run();
    const memory = await callJson("POST", `/v1/models/${modelId}/predict`, { key, ...png() });
    expect(memory.status).toBe(409);
    expect(memory.body.error).toMatchObject({ code: "backbone_too_large", details: { reason: "memory", limit: EDGE_MAX_MEMORY_BYTES, estimate: EDGE_MAX_MEMORY_BYTES + 292 * 4 } });
    expect((await callJson("GET", `/v1/backbones/${backboneId}`, { key })).body.edge.servable).toBe(false);

    await env.DB.prepare("update backbones set peak_activation_bytes = 65536, flops = ? where id = ?").bind(EDGE_MAX_FLOPS + 1, backboneId).run();
    const flops = await callJson("POST", `/v1/models/${modelId}/predict`, { key, ...png() });
    expect(flops.status).toBe(409);
    expect(flops.body.error).toMatchObject({ code: "backbone_too_large", details: { reason: "flops", limit: EDGE_MAX_FLOPS, estimate: EDGE_MAX_FLOPS + 1 } });
    expect(backboneCache.keys()).not.toContain(`${backboneId}@${backboneId}`);
  });
});

describe("isolate gates", () => {
  it("loads one backbone at a time: another backbone's load answers 503 edge_busy with Retry-After, then works", async () => {
    const { key, modelId } = await setup();
    backboneCache.clear();
    edgeActivity.loadingBackbone = "bb_someone_else@bb_someone_else";
    const busy = await call("POST", `/v1/models/${modelId}/predict`, { key, ...png() });
    expect(busy.status).toBe(503);
    expect(busy.headers.get("retry-after")).toBe("1");
    expect((await busy.json<any>()).error).toMatchObject({ code: "edge_busy", details: { reason: "backbone_load", limit: 1 } });
    edgeActivity.loadingBackbone = null;
    expect((await call("POST", `/v1/models/${modelId}/predict`, { key, ...png() })).status).toBe(200);
  });

  it(`runs at most ${MAX_CONCURRENT_IMAGE_PREDICTIONS} image predictions at once: beyond, 503 edge_busy with Retry-After; embeddings still answer`, async () => {
    const { key, modelId } = await setup();
    expect((await call("POST", `/v1/models/${modelId}/predict`, { key, ...png() })).status).toBe(200);
    edgeActivity.imagePredictions = MAX_CONCURRENT_IMAGE_PREDICTIONS;
    const busy = await call("POST", `/v1/models/${modelId}/predict`, { key, ...png() });
    expect(busy.status).toBe(503);
    expect(busy.headers.get("retry-after")).toBe("1");
    expect((await busy.json<any>()).error).toMatchObject({ code: "edge_busy", details: { reason: "predictions", limit: MAX_CONCURRENT_IMAGE_PREDICTIONS } });
    expect((await callJson("POST", `/v1/models/${modelId}/predict`, { key, json: { embeddings: [new Array(TINY_DIM).fill(0)] } })).status).toBe(200);
    edgeActivity.imagePredictions = 0;
    expect((await call("POST", `/v1/models/${modelId}/predict`, { key, ...png() })).status).toBe(200);
    expect(edgeActivity.imagePredictions).toBe(0);
  });
});
