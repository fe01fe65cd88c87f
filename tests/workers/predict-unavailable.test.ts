/**
 * When tfjs' WASM backend cannot start, image predictions answer 503 `inference_unavailable` at once (never a hung
 * request), embeddings still work, and the next request tries again.
 *
 * Isolation: these tests need an isolate in which tfjs has not been initialised; the pool gives each test file its
 * own module graph and runs a file's tests in order, so the failures come before the success.
 */
import { env } from "cloudflare:test";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { errorResponse } from "../../workers/app";
import { InferenceUnavailableError } from "../../workers/inference/tfjs-wasm";
import { getDb } from "../../workers/services/db";
import { getServableModel, predict } from "../../workers/services/inference";
import { makePng } from "../fixtures/images";
import { callJson, createProject } from "./helpers";
import { createTinyModel, TINY_DIM, uploadTinyBackbone } from "./predict-fixtures";

const realInstantiate = WebAssembly.instantiate;
let key: string;
let projectId: string;
let modelId: string;

beforeAll(async () => {
  // The pool transforms the tfjs packages on first import (seconds); do it before any deadline runs.
  await Promise.all([import("@tensorflow/tfjs-core"), import("@tensorflow/tfjs-layers"), import("@tensorflow/tfjs-backend-wasm")]);
  ({ key, projectId } = await createProject());
  ({ modelId } = await createTinyModel(projectId, await uploadTinyBackbone(key)));
}, 120_000);

afterEach(() => {
  WebAssembly.instantiate = realInstantiate;
});

const predictPng = () => callJson("POST", `/v1/models/${modelId}/predict`, { key, body: makePng(), headers: { "content-type": "image/png" } });

describe("predictions while tfjs cannot start", () => {
  it("answers 503 inference_unavailable when the WASM module cannot be instantiated, while embeddings still predict", async () => {
    WebAssembly.instantiate = (() => Promise.reject(new Error("stubbed link failure"))) as typeof WebAssembly.instantiate;
    const { status, body } = await predictPng();
    expect(status).toBe(503);
    expect(body.error.code).toBe("inference_unavailable");
    expect(body.error.message).toMatch(/embeddings/);
    const embeddings = await callJson("POST", `/v1/models/${modelId}/predict`, { key, json: { embeddings: [new Array(TINY_DIM).fill(0)] } });
    expect(embeddings.status).toBe(200);
  });

  it("gives up after TFJS_INIT_TIMEOUT_MS when init hangs, instead of hanging the request", async () => {
    WebAssembly.instantiate = (() => new Promise(() => {})) as typeof WebAssembly.instantiate;
    const db = getDb(env.DB);
    const model = await getServableModel(db, projectId, modelId);
    const started = Date.now();
    const error = await predict({ ...env, TFJS_INIT_TIMEOUT_MS: "300" } as Env, db, model, { kind: "images", images: [{ bytes: makePng(), index: 0 }] }, 3).catch((e: unknown) => e);
    // The service throws the domain error; the app's error handler answers it 503 (see the request-level test above).
    expect(error).toBeInstanceOf(InferenceUnavailableError);
    expect(errorResponse(error, "test").status).toBe(503);
    expect((error as InferenceUnavailableError).code).toBe("inference_unavailable");
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("predicts on the next request once tfjs can start: failures are not remembered", async () => {
    const { status, body } = await predictPng();
    expect(status).toBe(200);
    expect(body.predictions[0]).toHaveLength(3);
  });
});
