/** What a new user reads after uploading an archive that is not what the API expects: each case says what to fix. */
import { describe, expect, it } from "vitest";
import { makePng, textFile } from "../fixtures/images";
import { buildZip, call, callJson, createDataset, createProject, drainIngests } from "./helpers";

async function ingest(zip: Uint8Array, filename = "my-photos.zip") {
  const { key } = await createProject();
  const id = await createDataset(key);
  const res = await call("POST", `/v1/datasets/${id}/archive?filename=${encodeURIComponent(filename)}`, { key, body: zip, headers: { "content-type": "application/zip", "content-length": String(zip.length) } });
  expect(res.status).toBe(202);
  await drainIngests(id);
  return (await callJson("GET", `/v1/datasets/${id}`, { key })).body;
}

describe("ingest messages", () => {
  it("an empty zip ends empty and says the archive holds no files", async () => {
    const dataset = await ingest(buildZip({}));
    expect(dataset.status).toBe("empty");
    expect(dataset.error).toContain("holds no files");
    expect(dataset.not_trainable_reason).toContain("holds no files");
  });

  it("a zip whose every file is refused ends empty and points at the rejected list", async () => {
    const dataset = await ingest(buildZip({ "notes/a.txt": textFile(), "notes/b.txt": textFile() }));
    expect(dataset.status).toBe("empty");
    expect(dataset.error).toContain("None of the archive's 2 files");
    expect(dataset.rejected_count).toBe(2);
  });

  it("a file that is not a zip is named as the user named it, never by a storage key", async () => {
    const dataset = await ingest(new TextEncoder().encode("x".repeat(100)), "holiday.zip");
    expect(dataset.status).toBe("failed");
    expect(dataset.error).toMatch(/^holiday\.zip: .*not a ZIP/);
    expect(dataset.rejected).toEqual([expect.objectContaining({ path: "holiday.zip", code: "not_a_zip" })]);
    expect(JSON.stringify(dataset)).not.toMatch(/ing_|up_[a-z0-9]/);
  });

  it("an archive nested three folders deep gets one row that says to strip the prefix", async () => {
    const files: Record<string, Uint8Array> = {};
    for (let i = 0; i < 6; i++) files[`export/2024/flowers/roses/${i}.png`] = makePng(8, 8, i + 1);
    for (let i = 0; i < 6; i++) files[`export/2024/flowers/tulips/${i}.png`] = makePng(8, 8, i + 20);
    const dataset = await ingest(buildZip(files));
    expect(dataset.status).toBe("empty");
    expect(dataset.rejected).toEqual([{ path: "export/2024/flowers/", code: "nested_too_deep", message: expect.stringContaining("Strip the prefix") }]);
    expect(dataset.rejected[0].message).toContain("All 12 files");
  });

  it("still unwraps a single wrapping folder, and counts files, not folder entries, in ingest progress", async () => {
    const files: Record<string, Uint8Array> = { "flowers/": new Uint8Array(), "flowers/roses/": new Uint8Array(), "flowers/tulips/": new Uint8Array() };
    for (let i = 0; i < 5; i++) files[`flowers/roses/${i}.png`] = makePng(8, 8, i + 1);
    for (let i = 0; i < 5; i++) files[`flowers/tulips/${i}.png`] = makePng(8, 8, i + 20);
    const dataset = await ingest(buildZip(files));
    expect(dataset).toMatchObject({ status: "ready", image_count: 10, rejected_count: 0, ingest: { done: 10, total: 10 } });
  });

  it("tells a caller without a key which key to use", async () => {
    const res = await callJson("GET", "/v1/datasets", { key: null });
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("missing_api_key");
    expect(res.body.error.message).toContain("npm start");
    expect(res.body.error.message).toContain("edgetune login");
  });
});
