/**
 * /v1/aliases inside workerd: create, switch, history, rollback, delete, prediction by alias, and who may see what.
 * Models are rows inserted with drizzle whose heads sit in R2 (predict-fixtures.ts); every test has its own project.
 */
import { describe, expect, it } from "vitest";
import { makePng } from "../fixtures/images";
import { call, callJson, createProject, createTrainableDataset } from "./helpers";
import { createTinyModel, insertModel, seededHead, TINY_DIM, uploadTinyBackbone } from "./predict-fixtures";

/** A project with `count` ready models on the tiny backbone. */
async function projectWithModels(count: number) {
  const { key, projectId } = await createProject();
  const backboneId = await uploadTinyBackbone(key);
  const modelIds: string[] = [];
  for (let seed = 1; seed <= count; seed++) modelIds.push((await createTinyModel(projectId, backboneId, seed)).modelId);
  return { key, projectId, backboneId, modelIds };
}

const put = (key: string, name: string, modelId: string) => callJson("PUT", `/v1/aliases/${name}`, { key, json: { model_id: modelId } });

describe("PUT /v1/aliases/:name", () => {
  it("creates an alias (201), then switches it (200) recording the model it named before", async () => {
    const { key, modelIds: [a, b] } = await projectWithModels(2);
    const created = await put(key, "prod", a!);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: "prod", model_id: a, previous_model_id: null });
    expect(created.body.history).toHaveLength(1);
    const switched = await put(key, "prod", b!);
    expect(switched.status).toBe(200);
    expect(switched.body).toMatchObject({ name: "prod", model_id: b, previous_model_id: a });
    expect(switched.body.history.map((h: { model_id: string }) => h.model_id)).toEqual([b, a]);
    expect(Date.parse(switched.body.updated_at)).not.toBeNaN();
  });

  it("rolls back with one PUT of the previous model, and the history keeps every switch newest first", async () => {
    const { key, modelIds: [a, b] } = await projectWithModels(2);
    await put(key, "prod", a!);
    const switched = await put(key, "prod", b!);
    const rolledBack = await put(key, "prod", switched.body.previous_model_id);
    expect(rolledBack.body).toMatchObject({ model_id: a, previous_model_id: b });
    const { body } = await callJson("GET", "/v1/aliases/prod", { key });
    expect(body.model_id).toBe(a);
    expect(body.history).toEqual([
      expect.objectContaining({ model_id: a, previous_model_id: b }),
      expect.objectContaining({ model_id: b, previous_model_id: a }),
      expect.objectContaining({ model_id: a, previous_model_id: null }),
    ]);
  });

  it("changes nothing when the alias already names the model", async () => {
    const { key, modelIds: [a] } = await projectWithModels(1);
    const first = await put(key, "prod", a!);
    const again = await put(key, "prod", a!);
    expect(again.status).toBe(200);
    expect(again.body.history).toHaveLength(1);
    expect(again.body.updated_at).toBe(first.body.updated_at);
  });

  it("keeps a consistent chain under concurrent switches: each entry's predecessor is the entry before it", async () => {
    const { key, modelIds } = await projectWithModels(4);
    await put(key, "live", modelIds[0]!);
    const results = await Promise.all(modelIds.slice(1).map((id) => put(key, "live", id)));
    expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
    const { body } = await callJson("GET", "/v1/aliases/live", { key });
    const chain = [...body.history].reverse();
    expect(chain).toHaveLength(4);
    for (let i = 1; i < chain.length; i++) expect(chain[i].previous_model_id).toBe(chain[i - 1].model_id);
    expect(body.model_id).toBe(chain[3].model_id);
  });

  it("answers 404 for another project's model or an unknown one, and for another project's alias", async () => {
    const mine = await projectWithModels(1);
    const theirs = await projectWithModels(1);
    const foreign = await put(mine.key, "prod", theirs.modelIds[0]!);
    expect(foreign.status).toBe(404);
    expect(foreign.body.error.code).toBe("model_not_found");
    expect((await put(mine.key, "prod", "mdl_unknown")).status).toBe(404);
    await put(theirs.key, "shared-name", theirs.modelIds[0]!);
    expect((await callJson("GET", "/v1/aliases/shared-name", { key: mine.key })).status).toBe(404);
    expect((await callJson("POST", "/v1/aliases/shared-name/predict", { key: mine.key, json: { embeddings: [new Array(TINY_DIM).fill(0)] } })).status).toBe(404);
  });

  it("answers 409 for a model whose job has not succeeded", async () => {
    const { key, datasetId } = await createTrainableDataset();
    const job = await callJson("POST", "/v1/jobs", { key, json: { dataset_id: datasetId } });
    const res = await put(key, "prod", `mdl_${job.body.id.slice("job_".length)}`);
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe("model_not_ready");
  });

  it("answers 400 for an invalid name or body, naming the field", async () => {
    const { key, modelIds: [a] } = await projectWithModels(1);
    const badName = await put(key, "Not_Valid!", a!);
    expect(badName.status).toBe(400);
    expect(badName.body.error.details.issues[0].path).toBe("name");
    const badBody = await callJson("PUT", "/v1/aliases/prod", { key, json: { model: a } });
    expect(badBody.status).toBe(400);
    expect(badBody.body.error.code).toBe("invalid_request");
  });
});

describe("GET, DELETE and predict by alias", () => {
  it("lists the project's aliases by name, and deletes one (204) leaving the model", async () => {
    const { key, modelIds: [a, b] } = await projectWithModels(2);
    await put(key, "staging", b!);
    await put(key, "prod", a!);
    const listed = await callJson("GET", "/v1/aliases", { key });
    expect(listed.body.aliases.map((x: { name: string; model_id: string }) => [x.name, x.model_id])).toEqual([["prod", a], ["staging", b]]);
    expect((await call("DELETE", "/v1/aliases/staging", { key })).status).toBe(204);
    expect((await callJson("GET", "/v1/aliases/staging", { key })).body.error.code).toBe("alias_not_found");
    expect((await call("DELETE", "/v1/aliases/staging", { key })).status).toBe(404);
    expect((await callJson("GET", `/v1/models/${b}`, { key })).status).toBe(200);
  });

  it("predicts with the model the alias names now, and with the new one right after a switch", async () => {
    const { key, modelIds: [a, b] } = await projectWithModels(2);
    await put(key, "prod", a!);
    const viaAlias = await callJson("POST", "/v1/aliases/prod/predict?top_k=3", { key, body: makePng(), headers: { "content-type": "image/png" } });
    const direct = await callJson("POST", `/v1/models/${a}/predict?top_k=3`, { key, body: makePng(), headers: { "content-type": "image/png" } });
    expect(viaAlias.status).toBe(200);
    expect(viaAlias.body).toMatchObject({ alias: "prod", model_id: a, predictions: direct.body.predictions });
    await put(key, "prod", b!);
    const switched = await callJson("POST", "/v1/aliases/prod/predict", { key, json: { embeddings: [new Array(TINY_DIM).fill(0.3)] } });
    expect(switched.body.model_id).toBe(b);
  });

  it("drops an alias when its model is deleted with ?force=true (without it: 409 in_use, tests/workers/in-use.test.ts)", async () => {
    const { key, projectId, backboneId } = await projectWithModels(0);
    const modelId = await insertModel({ projectId, backbone: backboneId, head: seededHead(TINY_DIM, 2, [], 4, ["p", "q"]) });
    await put(key, "prod", modelId);
    expect((await call("DELETE", `/v1/models/${modelId}`, { key })).status).toBe(409);
    expect((await call("DELETE", `/v1/models/${modelId}?force=true`, { key })).status).toBe(204);
    expect((await callJson("POST", "/v1/aliases/prod/predict", { key, json: { embeddings: [new Array(TINY_DIM).fill(0)] } })).status).toBe(404);
  });

  it("answers 401 without an API key", async () => {
    expect((await call("GET", "/v1/aliases", { key: null })).status).toBe(401);
    expect((await call("PUT", "/v1/aliases/prod", { key: null, json: { model_id: "mdl_x" } })).status).toBe(401);
    expect((await call("POST", "/v1/aliases/prod/predict", { key: null, json: { embeddings: [[0]] } })).status).toBe(401);
  });
});
