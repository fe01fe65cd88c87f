/**
 * GET /v1/models/compare: two models of one dataset, paired on the validation images both were evaluated on
 * (their `evaluation.json` artifacts), with the exact McNemar p-value; 404 for an unknown or foreign model, 409 for
 * models of different datasets or without per-image results, 400 without both ids.
 *
 * Isolation: each test creates its own project and models (fresh ids).
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { callJson, createProject } from "./helpers";
import { insertModel, seededHead } from "./predict-fixtures";
import { getDb } from "../../workers/services/db";
import { models } from "../../workers/db/schema";
import { eq } from "drizzle-orm";

async function modelWithEvaluation(projectId: string, images: Array<[string, string, string]> | null, datasetId = "ds_test"): Promise<string> {
  const modelId = await insertModel({ projectId, backbone: "bb_builtin_mobilenet_v2", head: seededHead(4, 2, [], 1, ["x", "y"]) });
  const row = (await getDb(env.DB).select().from(models).where(eq(models.id, modelId)).get())!;
  if (datasetId !== "ds_test") await getDb(env.DB).update(models).set({ datasetId }).where(eq(models.id, modelId));
  if (images) {
    const evaluation = { format: "edgetune-evaluation/1", labels: ["x", "y"], images: images.map(([sha256, label, predicted]) => ({ sha256, path: `${label}/${sha256}.jpg`, label, predicted, probability: 0.9 })) };
    await env.BUCKET.put(`${row.objectPrefix}/evaluation.json`, JSON.stringify(evaluation));
  }
  return modelId;
}

describe("GET /v1/models/compare", () => {
  it("pairs the shared validation images and answers the counts and the exact McNemar p-value", async () => {
    const { projectId, key } = await createProject();
    // 12 images: both right on 2, only B right on 6 (sha 3..8), both wrong on 1, only A right on 0; plus one
    // image only A saw. n = 9, b = 0, c = 6 → p = 2 · (1/2)^6 = 0.03125.
    const shared: Array<[string, string, string]> = [["1", "x", "x"], ["2", "y", "y"], ...["3", "4", "5", "6", "7", "8"].map((s): [string, string, string] => [s, "x", "y"]), ["9", "y", "x"]];
    const a = await modelWithEvaluation(projectId, [...shared, ["only-a", "x", "x"]]);
    const b = await modelWithEvaluation(projectId, shared.map(([sha, label, predicted]) => [sha, label, ["3", "4", "5", "6", "7", "8"].includes(sha) ? label : predicted]));
    const { status, body } = await callJson("GET", `/v1/models/compare?a=${a}&b=${b}`, { key });
    expect(status).toBe(200);
    expect(body).toMatchObject({ a, b, n: 9, accuracy_a: 2 / 9, accuracy_b: 8 / 9, only_a_right: 0, only_b_right: 6, both_right: 2, both_wrong: 1 });
    expect(body.p_value).toBeCloseTo(0.03125, 12);
  });

  it("answers 409 models_not_comparable for models of different datasets", async () => {
    const { projectId, key } = await createProject();
    const a = await modelWithEvaluation(projectId, [["1", "x", "x"]]);
    const b = await modelWithEvaluation(projectId, [["1", "x", "x"]], "ds_other");
    const { status, body } = await callJson("GET", `/v1/models/compare?a=${a}&b=${b}`, { key });
    expect(status).toBe(409);
    expect(body.error.code).toBe("models_not_comparable");
  });

  it("answers 409 evaluation_missing for a model without per-image results", async () => {
    const { projectId, key } = await createProject();
    const a = await modelWithEvaluation(projectId, [["1", "x", "x"]]);
    const b = await modelWithEvaluation(projectId, null);
    const { status, body } = await callJson("GET", `/v1/models/compare?a=${a}&b=${b}`, { key });
    expect(status).toBe(409);
    expect(body.error).toMatchObject({ code: "evaluation_missing", details: { model_id: b } });
  });

  it("answers 404 for another project's model and 400 without both ids", async () => {
    const mine = await createProject("mine");
    const theirs = await createProject("theirs");
    const a = await modelWithEvaluation(mine.projectId, [["1", "x", "x"]]);
    const foreign = await modelWithEvaluation(theirs.projectId, [["1", "x", "x"]]);
    expect((await callJson("GET", `/v1/models/compare?a=${a}&b=${foreign}`, { key: mine.key })).status).toBe(404);
    const missing = await callJson("GET", `/v1/models/compare?a=${a}`, { key: mine.key });
    expect(missing.status).toBe(400);
  });
});
