/**
 * The self-contained bundle's API: GET /v1/models/:id/bundle/manifest lists every file with its download path, and
 * GET /v1/models/:id/bundle/files/:name streams each stored one as R2 holds it. The legacy GET /v1/models/:id/bundle
 * (format edgetune-bundle/1) keeps answering as before. The bundle running in Node and Chromium: tests/e2e/bundle.test.ts.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { BUNDLE_RUNTIME_FILES } from "../../shared/bundle/manifest";
import { featureSpecOf } from "../../shared/catalog";
import { headToTfjsModel } from "../../shared/head";
import { PREPROCESS_VERSION } from "../../shared/image/preprocess";
import { bundleManifestSchema } from "../../shared/schemas";
import { call, callJson, callMetered, createProject } from "./helpers";
import { createTinyModel, insertModel, seededHead, TINY_LABELS, uploadTinyBackbone } from "./predict-fixtures";

async function tinyModel(options: { tfjsHead?: boolean } = {}) {
  const { key, projectId } = await createProject();
  const backboneId = await uploadTinyBackbone(key);
  const { modelId, head } = await createTinyModel(projectId, backboneId);
  if (options.tfjsHead) {
    const { modelJson, weightData } = headToTfjsModel(head);
    const row = await env.DB.prepare("select object_prefix from models where id = ?").bind(modelId).first<{ object_prefix: string }>();
    await env.BUCKET.put(`${row!.object_prefix}/model.json`, JSON.stringify(modelJson));
    await env.BUCKET.put(`${row!.object_prefix}/weights.bin`, weightData);
  }
  return { key, projectId, backboneId, modelId };
}

async function bytesOf(res: Response): Promise<Uint8Array> {
  return new Uint8Array(await res.arrayBuffer());
}

describe("GET /v1/models/:id/bundle/manifest", () => {
  it("lists the backbone, the head, labels and the runtime with download paths and the parameters predict() uses", async () => {
    const { key, backboneId, modelId } = await tinyModel({ tfjsHead: true });
    const { status, body, d1 } = await callMetered("GET", `/v1/models/${modelId}/bundle/manifest`, { key });
    expect(status).toBe(200);
    expect(bundleManifestSchema.safeParse(body).success).toBe(true);
    expect(body).toMatchObject({ format: "edgetune-bundle/2", model_id: modelId, labels: TINY_LABELS, entry: "edgetune.mjs", top_k: 5 });
    expect(body.backbone).toMatchObject({ id: backboneId, format: "layers-model" });
    const spec = (await callJson("GET", `/v1/backbones/${backboneId}`, { key })).body.spec;
    expect(body.feature_spec).toEqual(featureSpecOf(spec));
    expect(body.preprocessing).toEqual({ version: PREPROCESS_VERSION, input_size: spec.input_size, mean: spec.normalization.mean, std: spec.normalization.std, resize: spec.resize });
    const paths = body.files.map((f: { path: string }) => f.path);
    expect(paths).toEqual(["edgetune.json", "labels.json", "backbone/model.json", "backbone/weights.bin", "head/head.json", "head/head.bin", "head/model.json", "head/weights.bin", ...BUNDLE_RUNTIME_FILES]);
    for (const [name, path] of Object.entries(body.paths)) expect(paths, name).toContain(path);
    expect(body.files.find((f: { path: string }) => f.path === "edgetune.mjs").url).toBe("/bundle-runtime/edgetune.mjs");
    // Auth, the model row and the user backbone's row; sizes come from R2, not D1.
    expect(d1.statements).toBeLessThanOrEqual(5);
  });

  it("every /v1 file downloads as stored, with its length; the edgetune.json entry is the manifest itself", async () => {
    const { key, projectId, backboneId, modelId } = await tinyModel({ tfjsHead: true });
    const manifest = (await callJson("GET", `/v1/models/${modelId}/bundle/manifest`, { key })).body;
    const backbonePrefix = (await env.DB.prepare("select object_prefix from backbones where id = ?").bind(backboneId).first<{ object_prefix: string }>())!.object_prefix;
    const modelPrefix = (await env.DB.prepare("select object_prefix from models where id = ?").bind(modelId).first<{ object_prefix: string }>())!.object_prefix;
    const stored: Record<string, string> = {
      "backbone/model.json": `${backbonePrefix}/model.json`,
      "backbone/weights.bin": `${backbonePrefix}/weights.bin`,
      "head/head.json": `${modelPrefix}/head.json`,
      "head/head.bin": `${modelPrefix}/head.bin`,
      "head/model.json": `${modelPrefix}/model.json`,
      "head/weights.bin": `${modelPrefix}/weights.bin`,
    };
    for (const file of manifest.files.filter((f: { url: string }) => f.url.startsWith("/v1/"))) {
      const res = await call("GET", file.url, { key });
      expect(res.status, file.path).toBe(200);
      const bytes = await bytesOf(res);
      if (file.path === "edgetune.json") {
        expect(JSON.parse(new TextDecoder().decode(bytes))).toEqual(manifest);
      } else if (file.path === "labels.json") {
        expect(JSON.parse(new TextDecoder().decode(bytes))).toEqual(TINY_LABELS);
      } else {
        const object = await env.BUCKET.get(stored[file.path]!);
        expect(bytes, file.path).toEqual(new Uint8Array(await object!.arrayBuffer()));
        expect(Number(res.headers.get("content-length")), file.path).toBe(file.bytes);
        expect(file.bytes).toBe(bytes.length);
      }
    }
    expect(projectId).toBeTruthy();
  });

  it("leaves the tfjs copy of the head out when it was not stored; predict() needs only head.json and head.bin", async () => {
    const { key, modelId } = await tinyModel();
    const { status, body } = await callJson("GET", `/v1/models/${modelId}/bundle/manifest`, { key });
    expect(status).toBe(200);
    const paths = body.files.map((f: { path: string }) => f.path);
    expect(paths).toContain("head/head.json");
    expect(paths).not.toContain("head/model.json");
  });

  it("answers 404 for another project's model and for an unknown one", async () => {
    const { modelId } = await tinyModel();
    const other = await createProject("other");
    expect((await callJson("GET", `/v1/models/${modelId}/bundle/manifest`, { key: other.key })).status).toBe(404);
    const res = await callJson("GET", `/v1/models/mdl_doesnotexist/bundle/manifest`, { key: other.key });
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe("model_not_found");
  });

  it("answers 409 backbone_deleted once the model's backbone is deleted, and 409 model_artifacts_missing without a head", async () => {
    const { key, backboneId, modelId } = await tinyModel();
    expect((await call("DELETE", `/v1/backbones/${backboneId}?force=true`, { key })).status).toBe(204);
    const deleted = await callJson("GET", `/v1/models/${modelId}/bundle/manifest`, { key });
    expect(deleted.status).toBe(409);
    expect(deleted.body.error.code).toBe("backbone_deleted");

    const fresh = await tinyModel();
    const row = await env.DB.prepare("select object_prefix from models where id = ?").bind(fresh.modelId).first<{ object_prefix: string }>();
    await env.BUCKET.delete(`${row!.object_prefix}/head.bin`);
    const missing = await callJson("GET", `/v1/models/${fresh.modelId}/bundle/manifest`, { key: fresh.key });
    expect(missing.status).toBe(409);
    expect(missing.body.error.code).toBe("model_artifacts_missing");
    expect(missing.body.error.message).toContain("head/head.bin");
  });

  it("lists a fine-tuned model's blocks.bin under format edgetune-bundle/3, and answers 409 model_artifacts_missing without it", async () => {
    const { key, modelId } = await tinyModel();
    const row = await env.DB.prepare("select object_prefix, metrics from models where id = ?").bind(modelId).first<{ object_prefix: string; metrics: string }>();
    await env.DB.prepare("update models set metrics = ? where id = ?").bind(JSON.stringify({ ...JSON.parse(row!.metrics), fine_tune: { blocks: 1, kept: true } }), modelId).run();
    const blocks = Uint8Array.from({ length: 96 }, (_, i) => i);
    await env.BUCKET.put(`${row!.object_prefix}/blocks.bin`, blocks);
    const { status, body } = await callJson("GET", `/v1/models/${modelId}/bundle/manifest`, { key });
    expect(status).toBe(200);
    expect(bundleManifestSchema.safeParse(body).success).toBe(true);
    expect(body.format).toBe("edgetune-bundle/3");
    expect(body.paths.head_blocks).toBe("head/blocks.bin");
    const entry = body.files.find((f: { path: string }) => f.path === "head/blocks.bin");
    expect(entry).toMatchObject({ url: `/v1/models/${modelId}/bundle/files/blocks.bin`, bytes: 96 });
    const download = await call("GET", entry.url, { key });
    expect(download.status).toBe(200);
    expect(await bytesOf(download)).toEqual(blocks);

    await env.BUCKET.delete(`${row!.object_prefix}/blocks.bin`);
    const missing = await callJson("GET", `/v1/models/${modelId}/bundle/manifest`, { key });
    expect(missing.status).toBe(409);
    expect(missing.body.error.code).toBe("model_artifacts_missing");
    expect(missing.body.error.message).toContain("head/blocks.bin");
  });

  it("answers 503 backbone_unavailable for a builtin backbone not published to R2 yet", async () => {
    const { key, projectId } = await createProject();
    const modelId = await insertModel({ projectId, backbone: "mobilenet_v2", head: seededHead(4, 2, [], 3, ["a", "b"]) });
    await env.BUCKET.delete(["backbones/builtin/bb_builtin_mobilenet_v2/model.json", "backbones/builtin/bb_builtin_mobilenet_v2/weights.bin"]);
    const res = await callJson("GET", `/v1/models/${modelId}/bundle/manifest`, { key });
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe("backbone_unavailable");
  });
});

describe("GET /v1/models/:id/bundle/files/:name", () => {
  it("answers 400 for a name outside the bundle, 404 artifact_not_found for a stored file that is gone", async () => {
    const { key, modelId } = await tinyModel();
    expect((await callJson("GET", `/v1/models/${modelId}/bundle/files/card.json`, { key })).status).toBe(400);
    const gone = await callJson("GET", `/v1/models/${modelId}/bundle/files/head-model.json`, { key });
    expect(gone.status).toBe(404);
    expect(gone.body.error.code).toBe("artifact_not_found");
  });
});

describe("GET /v1/models/:id/bundle (edgetune-bundle/1, kept for existing clients)", () => {
  it("still answers the head inline with the backbone reference", async () => {
    const { key, modelId } = await tinyModel({ tfjsHead: true });
    const { status, body } = await callJson("GET", `/v1/models/${modelId}/bundle`, { key });
    expect(status).toBe(200);
    expect(body.format).toBe("edgetune-bundle/1");
    expect(body.labels).toEqual(TINY_LABELS);
    expect(typeof body.head.weights_base64).toBe("string");
  });
});
