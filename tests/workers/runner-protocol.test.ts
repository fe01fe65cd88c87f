/** The runner protocol has one schema per message (shared/schemas.ts): the Worker publishes them and the runner parses with them. */
import { describe, expect, it } from "vitest";
import { callJson } from "./helpers";

describe("runner protocol schemas", () => {
  it("publishes the lease, heartbeat, complete and fail messages in the runner protocol's own OpenAPI document", async () => {
    const { body } = await callJson("GET", "/runner/openapi.json", { key: null });
    const ref = (path: string, status = "200") => body.paths[path].post.responses[status].content["application/json"].schema.$ref;
    expect(ref("/v1/runner/lease")).toBe("#/components/schemas/LeasedJob");
    expect(ref("/v1/runner/jobs/{id}/heartbeat")).toBe("#/components/schemas/HeartbeatResponse");
    expect(ref("/v1/runner/jobs/{id}/complete")).toBe("#/components/schemas/CompleteResponse");
    expect(ref("/v1/runner/jobs/{id}/fail")).toBe("#/components/schemas/FailResponse");
    expect(body.paths["/v1/runner/jobs/{id}/heartbeat"].post.requestBody.content["application/json"].schema.$ref).toBe("#/components/schemas/HeartbeatRequest");
    expect(body.components.schemas.LeasedJob.properties.images.items.properties.split.enum).toEqual(["auto", "train", "val"]);
    expect(Object.keys(body.components.securitySchemes)).toEqual(["runnerToken"]);
    expect(Object.keys(body.paths).every((path) => path.startsWith("/v1/runner/"))).toBe(true);
  });

  it("keeps the runner protocol out of the public document", async () => {
    const { body } = await callJson("GET", "/openapi.json", { key: null });
    expect(Object.keys(body.paths).filter((path) => path.startsWith("/v1/runner/"))).toEqual([]);
    expect(Object.keys(body.paths)).toContain("/v1/runners");
    expect(Object.keys(body.components.securitySchemes)).toEqual(["bearer"]);
  });
});
