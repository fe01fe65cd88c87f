/**
 * /v1/backbones inside workerd. Each test creates its own project, so none depends on another's rows; the URL form
 * replaces `globalThis.fetch` (the Worker runs in the test's isolate) with files served from memory.
 */
import { env } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { buildTinyGraphModel, buildTinyModel, tinySpec, type TinyModelOptions } from "../fixtures/tiny-model";
import { getDb } from "../../workers/services/db";
import { loadBackboneFiles, resolveBackbone } from "../../workers/services/backbones";
import { inflateCounters } from "../../workers/services/zip-reader";
import { concatBytes } from "../../shared/bytes";
import { Zip, ZipDeflate } from "fflate";
import { buildZip, call, callJson, createProject, dohAnswer } from "./helpers";

const encode = (value: unknown) => new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value));

function modelForm(spec: unknown, zip: Uint8Array | null): FormData {
  const form = new FormData();
  if (spec !== undefined) form.set("spec", typeof spec === "string" ? spec : JSON.stringify(spec));
  if (zip) form.set("model", new Blob([zip], { type: "application/zip" }), "model.zip");
  return form;
}

async function upload(key: string, files: Record<string, Uint8Array>, spec: unknown = tinySpec()) {
  return callJson("POST", "/v1/backbones", { key, body: modelForm(spec, buildZip(files)) });
}

/** The tiny model's files with model.json replaced by `edit(modelJson)`. */
function editedModel(edit: (modelJson: any) => void, options: TinyModelOptions = {}): Record<string, Uint8Array> {
  const model = buildTinyModel(options);
  const json = structuredClone(model.modelJson);
  edit(json);
  const prefix = options.folder ? `${options.folder}/` : "";
  return { ...model.files, [`${prefix}model.json`]: encode(json) };
}

describe("POST /v1/backbones (zip upload)", () => {
  it("imports a layers model from a sub-folder with several shards and stores model.json + weights.bin", async () => {
    const { key, projectId } = await createProject();
    const model = buildTinyModel({ shards: 3, folder: "export/tiny" });
    const { status, body } = await upload(key, model.files);
    expect(status).toBe(201);
    expect(body).toMatchObject({ name: "tiny", builtin: false, format: "layers-model", param_count: 292, weight_bytes: 1168 });
    expect(body.id).toMatch(/^bb_/);
    expect(body.spec).toMatchObject({ feature_layer: "relu1", input_size: [32, 32], pooling: "avg", resize: "squash" });
    expect(Date.parse(body.created_at)).not.toBeNaN();

    const prefix = `projects/${projectId}/backbones/${body.id}`;
    const stored = await (await env.BUCKET.get(`${prefix}/model.json`))!.json<any>();
    expect(stored.weightsManifest).toEqual([{ paths: ["weights.bin"], weights: model.modelJson.weightsManifest.flatMap((g: any) => g.weights) }]);
    expect(stored.modelTopology).toEqual(model.modelJson.modelTopology);
    const weights = new Uint8Array(await (await env.BUCKET.get(`${prefix}/weights.bin`))!.arrayBuffer());
    expect(weights).toEqual(model.weightData);
  });

  it("loadBackboneFiles reads back the stored pair of a resolved backbone", async () => {
    const { key, projectId } = await createProject();
    const model = buildTinyModel();
    const { body } = await upload(key, model.files);
    const resolved = await resolveBackbone(getDb(env.DB), projectId, body.id);
    const files = await loadBackboneFiles(env.BUCKET, resolved);
    expect(files).not.toBeNull();
    expect(new Uint8Array(files!.weightData)).toEqual(model.weightData);
    expect(files!.modelJson.weightsManifest[0].paths).toEqual(["weights.bin"]);
    expect(await loadBackboneFiles(env.BUCKET, { ...resolved, objectPrefix: "projects/none/backbones/none" })).toBeNull();
  });

  it("imports a graph model whose feature layer is a node name", async () => {
    const { key } = await createProject();
    const model = buildTinyGraphModel();
    const { status, body } = await upload(key, model.files, tinySpec({ name: "tiny-graph", feature_layer: "conv/Conv2D" }));
    expect(status).toBe(201);
    expect(body).toMatchObject({ format: "graph-model", param_count: 216, weight_bytes: 864 });
  });

  it("refuses a model whose input has free height and width (model_dynamic_shape): its cost could not be told", async () => {
    const { key } = await createProject();
    const { status, body } = await upload(key, buildTinyModel({ inputSize: [null, null] }).files, tinySpec({ input_size: [64, 48] }));
    expect(status).toBe(422);
    expect(body.error).toMatchObject({ code: "model_dynamic_shape", details: { input: "input_1", model_input_shape: [null, null, null, 3] } });
  });

  it("counts quantized weights at their stored size (uint8 = 1 byte)", async () => {
    const { key } = await createProject();
    const model = buildTinyModel();
    const json = structuredClone(model.modelJson);
    json.weightsManifest[0].weights = json.weightsManifest[0].weights.map((w: any) => ({ ...w, quantization: { dtype: "uint8", min: -1, scale: 0.01 } }));
    const { status, body } = await upload(key, { "model.json": encode(json), "group1-shard1of1.bin": new Uint8Array(292) });
    expect(status).toBe(201);
    expect(body).toMatchObject({ param_count: 292, weight_bytes: 292 });
  });
});

describe("POST /v1/backbones rejects malformed models with 422", () => {
  it("model_json_missing when the zip has no model.json", async () => {
    const { key } = await createProject();
    const { status, body } = await upload(key, { "weights.bin": new Uint8Array(8) });
    expect(status).toBe(422);
    expect(body.error.code).toBe("model_json_missing");
    expect(body.error.details.entries).toEqual(["weights.bin"]);
  });

  it("model_json_invalid for garbage JSON, naming the file", async () => {
    const { key } = await createProject();
    const { status, body } = await upload(key, { "m/model.json": encode("{not json"), "m/group1-shard1of1.bin": new Uint8Array(4) });
    expect(status).toBe(422);
    expect(body.error.code).toBe("model_json_invalid");
    expect(body.error.details.file).toBe("m/model.json");
  });

  it("model_json_invalid when weightsManifest is missing", async () => {
    const { key } = await createProject();
    const { status, body } = await upload(key, editedModel((json) => delete json.weightsManifest));
    expect(status).toBe(422);
    expect(body.error).toMatchObject({ code: "model_json_invalid", details: { field: "weightsManifest" } });
  });

  it("unsupported_model_format for a format other than layers-model or graph-model", async () => {
    const { key } = await createProject();
    const { status, body } = await upload(key, editedModel((json) => (json.format = "tfjs-saved-model")));
    expect(status).toBe(422);
    expect(body.error).toMatchObject({ code: "unsupported_model_format", details: { format: "tfjs-saved-model" } });
  });

  it("weight_file_missing naming the shard the manifest lists", async () => {
    const { key } = await createProject();
    const { files } = buildTinyModel({ shards: 2, folder: "tiny" });
    delete files["tiny/group1-shard2of2.bin"];
    const { status, body } = await upload(key, files);
    expect(status).toBe(422);
    expect(body.error.code).toBe("weight_file_missing");
    expect(body.error.details.file).toBe("tiny/group1-shard2of2.bin");
    expect(body.error.message).toContain("group1-shard2of2.bin");
  });

  it("weight_size_mismatch with expected and actual bytes", async () => {
    const { key } = await createProject();
    const { files } = buildTinyModel();
    files["group1-shard1of1.bin"] = files["group1-shard1of1.bin"].slice(0, 1000);
    const { status, body } = await upload(key, files);
    expect(status).toBe(422);
    expect(body.error).toMatchObject({ code: "weight_size_mismatch", details: { group: 0, expected_bytes: 1168, actual_bytes: 1000 } });
  });

  it("feature_layer_not_found listing candidates near the end of the network", async () => {
    const { key } = await createProject();
    const { status, body } = await upload(key, buildTinyModel().files, tinySpec({ feature_layer: ["relu1", "block_99"] }));
    expect(status).toBe(422);
    expect(body.error.code).toBe("feature_layer_not_found");
    expect(body.error.details.feature_layer).toEqual(["block_99"]);
    expect(body.error.details.candidates).toEqual(["conv1", "bn1", "relu1"]);
    expect(body.error.message).toContain("'relu1'");
  });

  it("feature_layer_not_found for a graph model's unknown node", async () => {
    const { key } = await createProject();
    const { status, body } = await upload(key, buildTinyGraphModel().files, tinySpec({ feature_layer: "nope" }));
    expect(status).toBe(422);
    expect(body.error.code).toBe("feature_layer_not_found");
    expect(body.error.details.candidates).toContain("conv/Conv2D");
  });

  it("feature_layer_not_spatial for a layer whose output is already pooled", async () => {
    const { key } = await createProject();
    const { status, body } = await upload(key, buildTinyModel().files, tinySpec({ feature_layer: "gap" }));
    expect(status).toBe(422);
    expect(body.error).toMatchObject({ code: "feature_layer_not_spatial", details: { feature_layer: "gap", rank: 2 } });
  });

  it("input_size_mismatch when the model's fixed input differs from spec.input_size", async () => {
    const { key } = await createProject();
    const { status, body } = await upload(key, buildTinyModel().files, tinySpec({ input_size: [224, 224] }));
    expect(status).toBe(422);
    expect(body.error).toMatchObject({ code: "input_size_mismatch", details: { model_input_shape: [null, 32, 32, 3], input_size: [224, 224] } });
    expect(body.error.message).toContain('"input_size": [32, 32]');
  });

  it("extra_input_sizes_builtin_only: a user's backbone is fed at the one size its model declares", async () => {
    const { key } = await createProject();
    const { status, body } = await upload(key, buildTinyModel().files, tinySpec({ extra_input_sizes: [[48, 48]] }));
    expect(status).toBe(422);
    expect(body.error).toMatchObject({ code: "extra_input_sizes_builtin_only", details: { extra_input_sizes: [[48, 48]] } });
    expect(body.error.message).toContain("Remove it");
    expect((await callJson("GET", "/v1/backbones", { key })).body.backbones.filter((b: any) => !b.builtin)).toHaveLength(0);
  });

  it("input_size_mismatch for a graph model's placeholder shape", async () => {
    const { key } = await createProject();
    const { status, body } = await upload(key, buildTinyGraphModel().files, tinySpec({ feature_layer: "conv/Conv2D", input_size: [64, 64] }));
    expect(status).toBe(422);
    expect(body.error.code).toBe("input_size_mismatch");
  });

  it("not_a_zip when the model file is not an archive", async () => {
    const { key } = await createProject();
    const { status, body } = await callJson("POST", "/v1/backbones", { key, body: modelForm(tinySpec(), encode(buildTinyModel().modelJson)) });
    expect(status).toBe(422);
    expect(body.error.code).toBe("not_a_zip");
  });

  it("stores nothing for a rejected model", async () => {
    const { key, projectId } = await createProject();
    const { files } = buildTinyModel();
    files["group1-shard1of1.bin"] = new Uint8Array(4);
    await upload(key, files);
    expect((await env.BUCKET.list({ prefix: `projects/${projectId}/backbones/` })).objects).toEqual([]);
    expect((await callJson("GET", "/v1/backbones", { key })).body.backbones.filter((b: any) => !b.builtin)).toEqual([]);
  });
});

/**
 * A zip holding `files` plus `bombPath`, whose data deflates `inflatedBytes` zero bytes (deflate gives about 1000:1
 * on zeros). Built chunk by chunk from one reused 1 MiB buffer, so the test never holds the inflated bytes either.
 */
function zipWithBomb(files: Record<string, Uint8Array>, bombPath: string, inflatedBytes: number): Uint8Array {
  const parts: Uint8Array[] = [];
  const zip = new Zip((err, data) => {
    if (err) throw err;
    parts.push(data);
  });
  for (const [path, bytes] of Object.entries(files)) {
    const file = new ZipDeflate(path, { level: 6 });
    zip.add(file);
    file.push(bytes, true);
  }
  const bomb = new ZipDeflate(bombPath, { level: 9 });
  zip.add(bomb);
  const zeros = new Uint8Array(1 << 20);
  for (let left = inflatedBytes; left > 0; left -= zeros.length) bomb.push(zeros.subarray(0, Math.min(zeros.length, left)), left <= zeros.length);
  zip.end();
  return concatBytes(parts);
}

/** Rewrites the uncompressed size the central directory declares for `name` (a zip that lies about an entry). */
function declareSize(zip: Uint8Array, name: string, size: number): Uint8Array {
  const out = zip.slice();
  const view = new DataView(out.buffer);
  for (let p = 0; p + 46 <= out.length; p++) {
    if (view.getUint32(p, true) !== 0x02014b50) continue;
    const nameLength = view.getUint16(p + 28, true);
    if (new TextDecoder().decode(out.subarray(p + 46, p + 46 + nameLength)) === name) {
      view.setUint32(p + 24, size, true);
      return out;
    }
  }
  throw new Error(`no central directory entry '${name}'`);
}

describe("POST /v1/backbones refuses zip bombs without inflating them", () => {
  it("422 zip_bomb for a 100 KB entry declaring 100 MB, refused from the central directory before a byte of it is inflated", async () => {
    const { key, projectId } = await createProject();
    const model = buildTinyModel();
    const zip = zipWithBomb({ "model.json": model.files["model.json"] }, "group1-shard1of1.bin", 100_000_000);
    expect(zip.length).toBeLessThan(150_000);
    const before = { ...inflateCounters };
    const { status, body } = await callJson("POST", "/v1/backbones", { key, body: modelForm(tinySpec(), zip) });
    expect(status).toBe(422);
    expect(body.error).toMatchObject({ code: "zip_bomb", details: { file: "group1-shard1of1.bin", declared_bytes: 100_000_000, max_ratio: 20 } });
    expect(body.error.message).toContain("compression ratio");
    // Only model.json was inflated: the bomb entry never reached the inflater.
    expect(inflateCounters.entries - before.entries).toBe(1);
    expect(inflateCounters.bytes - before.bytes).toBe(model.files["model.json"].length);
    expect((await env.BUCKET.list({ prefix: `projects/${projectId}/backbones/` })).objects).toEqual([]);
  });

  it("422 zip_bomb for a model.json declaring a ratio no JSON reaches", async () => {
    const { key } = await createProject();
    const zip = zipWithBomb({}, "model.json", 10_000_000);
    const before = { ...inflateCounters };
    const { status, body } = await callJson("POST", "/v1/backbones", { key, body: modelForm(tinySpec(), zip) });
    expect(status).toBe(422);
    expect(body.error).toMatchObject({ code: "zip_bomb", details: { file: "model.json", max_ratio: 100 } });
    expect(inflateCounters.bytes).toBe(before.bytes);
  });

  it("422 corrupt_entry for an entry that inflates past the size it declares, cut off there (streamed, never whole)", async () => {
    const { key, projectId } = await createProject();
    const model = buildTinyModel();
    // The central directory says 1,168 bytes (what the manifest needs, a plausible ratio); the data inflates to 8 MB.
    const zip = declareSize(zipWithBomb({ "model.json": model.files["model.json"] }, "group1-shard1of1.bin", 8_000_000), "group1-shard1of1.bin", model.weightBytes);
    const before = { ...inflateCounters };
    const { status, body } = await callJson("POST", "/v1/backbones", { key, body: modelForm(tinySpec(), zip) });
    expect(status).toBe(422);
    expect(body.error).toMatchObject({ code: "corrupt_entry", details: { file: "group1-shard1of1.bin", declared_bytes: model.weightBytes } });
    // Inflating stopped at the first chunk past 1,168 bytes, far short of the 8 MB the data holds.
    expect(inflateCounters.bytes - before.bytes).toBeLessThan(1024 * 1024);
    expect((await env.BUCKET.list({ prefix: `projects/${projectId}/backbones/` })).objects).toEqual([]);
  });

  it("imports a model whose weights are stored (method 0) as well as deflated, streaming them into R2", async () => {
    const { key } = await createProject();
    const model = buildTinyModel({ shards: 2 });
    const { status, body } = await callJson("POST", "/v1/backbones", { key, body: modelForm(tinySpec(), buildZip(model.files, 0)) });
    expect(status).toBe(201);
    expect(body.weight_bytes).toBe(model.weightBytes);
  });
});

/** The tiny graph model's files with model.json replaced by `edit(modelJson)`. */
function editedGraphModel(edit: (modelJson: any) => void, options: TinyModelOptions = {}): Record<string, Uint8Array> {
  const model = buildTinyGraphModel(options);
  const json = structuredClone(model.modelJson);
  edit(json);
  return { ...model.files, "model.json": encode(json) };
}

const graphSpec = () => tinySpec({ name: "tiny-graph", feature_layer: "conv/Conv2D" });

describe("POST /v1/backbones audits what a model may run (422 naming the layer or node)", () => {
  it("model_control_flow for a graph model with a StatelessWhile loop", async () => {
    const { key, projectId } = await createProject();
    const files = editedGraphModel((json) => json.modelTopology.node.push({ name: "spin/while", op: "StatelessWhile", input: ["conv/Conv2D"], attr: { T: { list: { type: ["DT_FLOAT"] } }, body: { func: { name: "spin_body" } }, cond: { func: { name: "spin_cond" } } } }));
    const { status, body } = await upload(key, files, graphSpec());
    expect(status).toBe(422);
    expect(body.error).toMatchObject({ code: "model_control_flow", details: { node: "spin/while", op: "StatelessWhile" } });
    expect(body.error.message).toContain("executeAsync");
    expect((await env.BUCKET.list({ prefix: `projects/${projectId}/backbones/` })).objects).toEqual([]);
  });

  it("model_control_flow for tensor lists and arrays, whatever their exact op name", async () => {
    const { key } = await createProject();
    for (const op of ["TensorListReserve", "TensorArrayV3", "Switch", "Enter"]) {
      const files = editedGraphModel((json) => json.modelTopology.node.push({ name: `n_${op}`, op, input: ["conv/Conv2D"] }));
      const { status, body } = await upload(key, files, graphSpec());
      expect(status).toBe(422);
      expect(body.error).toMatchObject({ code: "model_control_flow", details: { op } });
    }
  });

  it("model_function_library for a graph model that carries a function library", async () => {
    const { key } = await createProject();
    const files = editedGraphModel((json) => (json.modelTopology.library = { function: [{ signature: { name: "while_body_17" }, nodeDef: [] }] }));
    const { status, body } = await upload(key, files, graphSpec());
    expect(status).toBe(422);
    expect(body.error).toMatchObject({ code: "model_function_library", details: { functions: ["while_body_17"] } });
  });

  it("model_dynamic_shape for a graph model whose input has a free spatial size", async () => {
    const { key } = await createProject();
    const { status, body } = await upload(key, buildTinyGraphModel({ inputSize: [null, null] }).files, graphSpec());
    expect(status).toBe(422);
    expect(body.error).toMatchObject({ code: "model_dynamic_shape", details: { input: "input", model_input_shape: [null, null, null, 3] } });
  });

  it("model_op_not_allowed for an op outside the allowlist (one tfjs runs only with executeAsync)", async () => {
    const { key } = await createProject();
    const files = editedGraphModel((json) => json.modelTopology.node.push({ name: "nms", op: "NonMaxSuppressionV5", input: ["conv/Conv2D"] }));
    const { status, body } = await upload(key, files, graphSpec());
    expect(status).toBe(422);
    expect(body.error).toMatchObject({ code: "model_op_not_allowed", details: { node: "nms", op: "NonMaxSuppressionV5" } });
  });

  it("model_layer_not_allowed for a layers model with a Lambda or a custom layer", async () => {
    const { key } = await createProject();
    for (const className of ["Lambda", "MyCustomLayer"]) {
      const files = editedModel((json) => {
        const layers = json.modelTopology.model_config?.config.layers ?? json.modelTopology.config.layers;
        layers.splice(3, 0, { class_name: className, name: "sneaky", inbound_nodes: [[["bn1", 0, 0, {}]]], config: { name: "sneaky", function: ["4wEAAAAAAAAA", null, null], function_type: "lambda" } });
      });
      const { status, body } = await upload(key, files);
      expect(status).toBe(422);
      expect(body.error).toMatchObject({ code: "model_layer_not_allowed", details: { layer: "sneaky", class_name: className } });
    }
  });
});

describe("POST /v1/backbones request errors", () => {
  it("400 naming the spec field that is wrong", async () => {
    const { key } = await createProject();
    const spec: any = tinySpec();
    delete spec.feature_layer;
    const { status, body } = await upload(key, buildTinyModel().files, spec);
    expect(status).toBe(400);
    expect(body.error.code).toBe("invalid_request");
    expect(body.error.details.issues[0].path).toBe("spec.feature_layer");
  });

  it("400 when spec is not JSON or the model file is missing", async () => {
    const { key } = await createProject();
    const notJson = await callJson("POST", "/v1/backbones", { key, body: modelForm("{oops", buildZip(buildTinyModel().files)) });
    expect(notJson.status).toBe(400);
    expect(notJson.body.error.details.issues[0].path).toBe("spec");
    const noModel = await callJson("POST", "/v1/backbones", { key, body: modelForm(tinySpec(), null) });
    expect(noModel.status).toBe(400);
    expect(noModel.body.error.details.issues[0].path).toBe("model");
  });

  it("409 for a spec named like a builtin backbone", async () => {
    const { key } = await createProject();
    const { status, body } = await upload(key, buildTinyModel().files, tinySpec({ name: "mobilenet_v2" }));
    expect(status).toBe(409);
    expect(body.error.code).toBe("backbone_name_reserved");
  });

  it("413 for a body declared larger than 100 MB", async () => {
    const { key } = await createProject();
    const res = await call("POST", "/v1/backbones", { key, body: new Uint8Array(16), headers: { "content-type": "multipart/form-data; boundary=x", "content-length": String(101_000_000) } });
    expect(res.status).toBe(413);
    expect(((await res.json()) as any).error).toMatchObject({ code: "payload_too_large", details: { limit_bytes: 100_000_000 } });
  });

  it("415 for a body that is neither multipart nor JSON", async () => {
    const { key } = await createProject();
    const res = await call("POST", "/v1/backbones", { key, body: buildZip(buildTinyModel().files), headers: { "content-type": "application/zip" } });
    expect(res.status).toBe(415);
  });

  it("401 without an API key", async () => {
    const { status, body } = await callJson("POST", "/v1/backbones", { key: null, body: modelForm(tinySpec(), buildZip(buildTinyModel().files)) });
    expect(status).toBe(401);
    expect(body.error.code).toBe("missing_api_key");
  });
});

describe("POST /v1/backbones (JSON with a model.json URL)", () => {
  afterEach(() => vi.restoreAllMocks());

  /** Serves `files` at https://models.test/<path>; every other URL answers 404. */
  function serve(files: Record<string, Uint8Array>) {
    const requested: string[] = [];
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input: RequestInfo | URL) => {
      const url = input instanceof Request ? input.url : String(input);
      // The URL policy resolves names over DNS-over-HTTPS first: models.test is a public host.
      if (url.startsWith("https://cloudflare-dns.com/dns-query?")) return dohAnswer(url, { "models.test": ["93.184.215.14"] });
      requested.push(url);
      const path = url.startsWith("https://models.test/") ? decodeURIComponent(url.slice("https://models.test/".length)) : null;
      const bytes = path === null ? undefined : files[path];
      return bytes ? new Response(bytes) : new Response("not found", { status: 404 });
    });
    return requested;
  }

  it("fetches model.json and the weight files beside it", async () => {
    const { key, projectId } = await createProject();
    const model = buildTinyModel({ shards: 2, folder: "tiny" });
    const requested = serve(model.files);
    const { status, body } = await callJson("POST", "/v1/backbones", { key, json: { ...tinySpec(), url: "https://models.test/tiny/model.json" } });
    expect(status).toBe(201);
    expect(body).toMatchObject({ param_count: 292, weight_bytes: 1168, format: "layers-model" });
    expect(requested).toEqual(["https://models.test/tiny/model.json", "https://models.test/tiny/group1-shard1of2.bin", "https://models.test/tiny/group1-shard2of2.bin"]);
    const weights = new Uint8Array(await (await env.BUCKET.get(`projects/${projectId}/backbones/${body.id}/weights.bin`))!.arrayBuffer());
    expect(weights).toEqual(model.weightData);
  });

  it("422 model_fetch_failed naming the weight file that could not be fetched", async () => {
    const { key, projectId } = await createProject();
    const { files } = buildTinyModel({ shards: 2 });
    delete files["group1-shard2of2.bin"];
    serve(files);
    const { status, body } = await callJson("POST", "/v1/backbones", { key, json: { ...tinySpec(), url: "https://models.test/model.json" } });
    expect(status).toBe(422);
    expect(body.error).toMatchObject({ code: "model_fetch_failed", details: { url: "https://models.test/group1-shard2of2.bin" } });
    expect(JSON.stringify(body)).not.toMatch(/404|not found/);
    expect((await env.BUCKET.list({ prefix: `projects/${projectId}/backbones/` })).objects).toEqual([]);
  });

  it("422 weight_size_mismatch for a served file larger than the manifest needs", async () => {
    const { key } = await createProject();
    const { files } = buildTinyModel();
    files["group1-shard1of1.bin"] = new Uint8Array(5000);
    serve(files);
    const { status, body } = await callJson("POST", "/v1/backbones", { key, json: { ...tinySpec(), url: "https://models.test/model.json" } });
    expect(status).toBe(422);
    expect(body.error.code).toBe("weight_size_mismatch");
  });

  it("validates the spec before downloading any weight file", async () => {
    const { key } = await createProject();
    const requested = serve(buildTinyModel().files);
    const { status, body } = await callJson("POST", "/v1/backbones", { key, json: { ...tinySpec({ feature_layer: "nope" }), url: "https://models.test/model.json" } });
    expect(status).toBe(422);
    expect(body.error.code).toBe("feature_layer_not_found");
    expect(requested).toEqual(["https://models.test/model.json"]);
  });

  it("400 naming url for a scheme other than http(s), and for unknown fields", async () => {
    const { key } = await createProject();
    const ftp = await callJson("POST", "/v1/backbones", { key, json: { ...tinySpec(), url: "ftp://models.test/model.json" } });
    expect(ftp.status).toBe(400);
    expect(ftp.body.error.details.issues[0].path).toBe("url");
    const extra = await callJson("POST", "/v1/backbones", { key, json: { ...tinySpec(), url: "https://models.test/model.json", colour: "red" } });
    expect(extra.status).toBe(400);
  });
});

describe("GET and DELETE /v1/backbones", () => {
  it("lists the builtin backbones first, then the project's own", async () => {
    const { key } = await createProject();
    const { body: own } = await upload(key, buildTinyModel().files);
    const { status, body } = await callJson("GET", "/v1/backbones", { key });
    expect(status).toBe(200);
    expect(body.backbones[0]).toMatchObject({ id: "bb_builtin_mobilenet_v1_075", name: "mobilenet_v1_075", builtin: true, spec: { input_size: [288, 288], extra_input_sizes: [[352, 352]], normalization: { mean: [0.5, 0.5, 0.5] } } });
    expect(body.backbones[1]).toMatchObject({ id: "bb_builtin_mobilenet_v2", name: "mobilenet_v2", builtin: true, spec: { input_size: [224, 224] } });
    for (const builtin of body.backbones.slice(0, 2)) {
      expect(builtin.license).toBeTruthy();
      expect(builtin.source).toBeTruthy();
    }
    expect(body.backbones.at(-1)).toMatchObject({ id: own.id, builtin: false });
    expect(body.backbones.filter((b: any) => !b.builtin)).toHaveLength(1);
  });

  it("reads a builtin backbone by name and an own one by id", async () => {
    const { key } = await createProject();
    const { body: own } = await upload(key, buildTinyModel().files);
    expect((await callJson("GET", "/v1/backbones/mobilenet_v2", { key })).body).toMatchObject({ builtin: true, id: "bb_builtin_mobilenet_v2" });
    expect((await callJson("GET", `/v1/backbones/${own.id}`, { key })).body).toEqual(own);
  });

  it("answers 404 for another project's backbone, on read and delete", async () => {
    const { key } = await createProject("owner");
    const { key: otherKey } = await createProject("other");
    const { body: own } = await upload(key, buildTinyModel().files);
    const read = await callJson("GET", `/v1/backbones/${own.id}`, { key: otherKey });
    expect(read.status).toBe(404);
    expect(read.body.error.code).toBe("backbone_not_found");
    expect((await callJson("DELETE", `/v1/backbones/${own.id}`, { key: otherKey })).status).toBe(404);
    expect((await callJson("GET", "/v1/backbones", { key: otherKey })).body.backbones.every((b: any) => b.builtin)).toBe(true);
  });

  it("deletes an own backbone and its files: 204, then 404", async () => {
    const { key, projectId } = await createProject();
    const { body: own } = await upload(key, buildTinyModel().files);
    expect((await call("DELETE", `/v1/backbones/${own.id}`, { key })).status).toBe(204);
    expect((await callJson("GET", `/v1/backbones/${own.id}`, { key })).status).toBe(404);
    expect((await env.BUCKET.list({ prefix: `projects/${projectId}/backbones/` })).objects).toEqual([]);
  });

  it("refuses to delete a builtin backbone with 409", async () => {
    const { key } = await createProject();
    const { status, body } = await callJson("DELETE", "/v1/backbones/mobilenet_v2", { key });
    expect(status).toBe(409);
    expect(body.error.code).toBe("builtin_backbone");
  });
});
