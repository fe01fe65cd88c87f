/** The small shared helpers every layer uses instead of its own copy. */
import { crc32 as zlibCrc32 } from "node:zlib";
import { describe, expect, it } from "vitest";
import { concatBytes, crc32 } from "../../shared/bytes";
import { chunk } from "../../shared/chunk";
import { mapBounded } from "../../shared/concurrency";
import { jitteredBackoffMs } from "../../shared/retry";

describe("shared helpers", () => {
  it("concatBytes joins parts in order, including empty ones", () => {
    expect([...concatBytes([Uint8Array.of(1, 2), new Uint8Array(0), Uint8Array.of(3)])]).toEqual([1, 2, 3]);
    expect(concatBytes([]).length).toBe(0);
  });

  it("crc32 matches zlib's on whole buffers and on a sub-range", () => {
    const bytes = Uint8Array.from({ length: 1037 }, (_, i) => (i * 31 + 7) & 0xff);
    expect(crc32(bytes)).toBe(zlibCrc32(bytes));
    expect(crc32(bytes, 5, 600)).toBe(zlibCrc32(bytes.subarray(5, 600)));
  });

  it("chunk splits into groups of at most n, the last shorter", () => {
    expect(chunk([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]]);
    expect(chunk([], 3)).toEqual([]);
  });

  it("mapBounded keeps the input order and never has more than `limit` calls in flight", async () => {
    let inFlight = 0;
    let peak = 0;
    const out = await mapBounded([5, 1, 4, 2, 3, 0], 2, async (ms, i) => {
      peak = Math.max(peak, ++inFlight);
      await new Promise((r) => setTimeout(r, ms));
      inFlight--;
      return i * 10;
    });
    expect(out).toEqual([0, 10, 20, 30, 40, 50]);
    expect(peak).toBe(2);
  });

  it("jitteredBackoffMs doubles per attempt up to the cap and stays in the upper half", () => {
    const options = { baseMs: 1000, maxMs: 30_000 };
    expect(jitteredBackoffMs(0, options, () => 0)).toBe(500);
    expect(jitteredBackoffMs(0, options, () => 0.999999)).toBe(1000);
    expect(jitteredBackoffMs(3, options, () => 1)).toBe(8000);
    expect(jitteredBackoffMs(20, options, () => 0)).toBe(15_000);
    expect(jitteredBackoffMs(20, options, () => 1)).toBe(30_000);
  });
});
