/**
 * The runner's per-process backbone cache is bounded (issue 7: "the per-process backbone cache is unbounded"):
 * least recently used bundles go first, by count and by bytes (gpu-runner/src/backbones/job-backbone.ts).
 */
import assert from "node:assert/strict";
import { describe, it } from "vitest";
import { evictLeastRecentlyUsed, MAX_CACHED_BUNDLE_BYTES, MAX_CACHED_BUNDLES } from "../../gpu-runner/src/backbones/job-backbone";

const MB = 1024 * 1024;

describe("backbone bundle cache eviction", () => {
  it("keeps at most the entry limit, dropping the least recently used first", () => {
    const entries = new Map(["a", "b", "c", "d", "e", "f"].map((key) => [key, { bytes: MB }]));
    assert.deepEqual(evictLeastRecentlyUsed(entries, 4, 100 * MB), ["a", "b"]);
    assert.deepEqual([...entries.keys()], ["c", "d", "e", "f"]);
  });

  it("keeps the total bytes within the limit", () => {
    const entries = new Map([["old", { bytes: 300 * MB }], ["mid", { bytes: 200 * MB }], ["new", { bytes: 100 * MB }]]);
    assert.deepEqual(evictLeastRecentlyUsed(entries, 10, 350 * MB), ["old"]);
    assert.deepEqual([...entries.keys()], ["mid", "new"]);
  });

  it("never drops the newest entry, even when it alone is over the byte limit", () => {
    const entries = new Map([["a", { bytes: MB }], ["huge", { bytes: 2048 * MB }]]);
    evictLeastRecentlyUsed(entries, 4, 512 * MB);
    assert.deepEqual([...entries.keys()], ["huge"]);
  });

  it("has limits that bound the runner's memory", () => {
    assert.ok(MAX_CACHED_BUNDLES >= 1 && MAX_CACHED_BUNDLES <= 8);
    assert.ok(MAX_CACHED_BUNDLE_BYTES <= 1024 * MB);
  });
});
