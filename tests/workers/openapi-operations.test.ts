/** The OpenAPI document is usable by client generators: every operation has a unique operationId. */
import { describe, expect, it } from "vitest";
import { deriveOperationId } from "../../workers/routes/operation-ids";
import { callJson } from "./helpers";

describe("OpenAPI operationIds", () => {
  it("names every operation, uniquely", async () => {
    const doc = (await callJson("GET", "/openapi.json", { key: null })).body;
    const ids: string[] = [];
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      for (const [method, op] of Object.entries<any>(item)) {
        if (!["get", "post", "put", "patch", "delete"].includes(method)) continue;
        expect(op.operationId, `${method.toUpperCase()} ${path}`).toMatch(/^[a-z][A-Za-z0-9]+$/);
        ids.push(op.operationId);
      }
    }
    expect(ids.length).toBeGreaterThan(20);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toContain("listDatasets");
    expect(ids).toContain("getUpload");
    expect(ids).toContain("createWebhook");
  });

  it("derives names from method and path", () => {
    expect(deriveOperationId("get", "/v1/datasets")).toBe("listDatasets");
    expect(deriveOperationId("get", "/v1/datasets/{id}")).toBe("getDataset");
    expect(deriveOperationId("post", "/v1/datasets")).toBe("createDataset");
    expect(deriveOperationId("post", "/v1/jobs/{id}/cancel")).toBe("cancelJob");
    expect(deriveOperationId("put", "/v1/datasets/{id}/uploads/{upload_id}/parts/{n}")).toBe("putDatasetUploadPart");
    expect(deriveOperationId("post", "/v1/aliases/{name}/predict")).toBe("predictAlias");
  });
});
