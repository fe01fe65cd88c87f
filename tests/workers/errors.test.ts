/**
 * The error catalogue: one code per condition, one status per code, published in the OpenAPI document, and domain
 * errors (images, zips, heads, inference) answered by the single error handler with their catalogue status.
 */
import { HTTPException } from "hono/http-exception";
import { describe, expect, it } from "vitest";
import { ApiError, ERROR_CODES, ERROR_STATUS, withContext } from "../../shared/errors";
import { HeadFormatError } from "../../shared/head";
import { ImageError } from "../../shared/image/errors";
import { errorResponse } from "../../workers/app";
import { InferenceUnavailableError } from "../../workers/inference/errors";
import { ZipFormatError } from "../../workers/services/zip-reader";
import { call, callJson } from "./helpers";

const answer = async (err: unknown) => {
  const res = errorResponse(err, "test");
  return { status: res.status, body: (await res.json()) as { error: { code: string; message: string; details?: Record<string, unknown> } } };
};

describe("error catalogue", () => {
  it("publishes every code as the enum of the OpenAPI Error schema", async () => {
    const { body } = await callJson("GET", "/openapi.json", { key: null });
    expect(body.components.schemas.ErrorCode.enum).toEqual(ERROR_CODES);
    expect(body.components.schemas.Error.properties.error.properties.code.$ref).toBe("#/components/schemas/ErrorCode");
  });

  it("gives an ApiError the status of its code", () => {
    for (const code of ERROR_CODES) expect(new ApiError(code, "x").status).toBe(ERROR_STATUS[code]);
  });

  it("answers an image error with its code and 422 wherever it comes from, with the context the caller added", async () => {
    const error = withContext(new ImageError("too_many_pixels", "The image declares 400,000,000 pixels.", { pixels: 4e8 }), "Image 2 ('a.png')", { index: 2 });
    const { status, body } = await answer(error);
    expect(status).toBe(422);
    expect(body.error).toEqual({ code: "too_many_pixels", message: "Image 2 ('a.png'): The image declares 400,000,000 pixels.", details: { index: 2, pixels: 4e8 } });
  });

  it("answers a zip error with its code and 422", async () => {
    const { status, body } = await answer(new ZipFormatError("corrupt_zip", "The ZIP central directory is damaged."));
    expect(status).toBe(422);
    expect(body.error.code).toBe("corrupt_zip");
  });

  it("answers an unreadable stored head 500 model_head_invalid and an engine that cannot start 503 inference_unavailable", async () => {
    const head = await answer(withContext(new HeadFormatError("expected 4 floats", "layers.0.bias"), "Model 'mdl_x'", { model_id: "mdl_x" }));
    expect(head.status).toBe(500);
    expect(head.body.error).toMatchObject({ code: "model_head_invalid", details: { model_id: "mdl_x" } });
    expect(head.body.error.message).toMatch(/train the model again/);
    const engine = await answer(new InferenceUnavailableError("TensorFlow.js WASM backend did not initialise within 300 ms"));
    expect(engine.status).toBe(503);
    expect(engine.body.error.code).toBe("inference_unavailable");
  });

  it("answers a body Hono cannot parse as malformed_json or malformed_multipart, never a code outside the catalogue", async () => {
    expect((await answer(new HTTPException(400, { message: "Malformed JSON in request body" }))).body.error.code).toBe("malformed_json");
    expect((await answer(new HTTPException(400, { message: "Malformed FormData request. bad boundary" }))).body.error.code).toBe("malformed_multipart");
    const gate = await answer(new HTTPException(415, { message: "Unsupported Media Type" }));
    expect(gate.status).toBe(415);
    expect(gate.body.error.code).toBe("unsupported_media_type");
  });

  it("answers anything else as a 500 internal_error with an id, without the internal message", async () => {
    const { status, body } = await answer(new Error("secret table name"));
    expect(status).toBe(500);
    expect(body.error.code).toBe("internal_error");
    expect(body.error.message).not.toContain("secret");
    expect(String(body.error.details?.error_id)).toMatch(/^err_/);
  });

  it("answers an unknown route 404 route_not_found", async () => {
    const res = await call("GET", "/v1/nothing-here");
    expect(res.status).toBe(404);
    expect(((await res.json()) as any).error.code).toBe("route_not_found");
  });
});
