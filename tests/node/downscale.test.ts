/**
 * sdk/downscale-node.ts: the copy `predictFiles` sends when the edge refuses a photo over its pixel limit (422
 * `too_many_pixels`): within the limit, the same picture (box averages of the original's pixels), upright.
 */
import assert from "node:assert/strict";
import { describe, it } from "vitest";
import { downscaleToFit, imagePixels } from "../../sdk/downscale-node";
import { getNodeCodecs } from "../../gpu-runner/src/codecs-node";
import { decodeImage } from "../../shared/image/decode";
import { makeColouredPng, makeHugePngHeader } from "../fixtures/images";

describe("downscaleToFit", () => {
  it("shrinks by the smallest whole factor that fits the limit, keeping the aspect ratio and the colours", async () => {
    const png = makeColouredPng(2400, 1800, [40, 60, 200], 7, 0);
    assert.deepEqual(imagePixels(png), { width: 2400, height: 1800 });
    const copy = await downscaleToFit(png, 2_000_000);
    assert.deepEqual({ width: copy.width, height: copy.height, from: copy.from }, { width: 1200, height: 900, from: { width: 2400, height: 1800 } });
    assert.deepEqual(imagePixels(copy.bytes), { width: 1200, height: 900 });
    const decoded = await decodeImage(copy.bytes, await getNodeCodecs());
    for (const i of [0, 4 * 450 * 1200 + 4 * 600, decoded.data.length - 4]) {
      assert.ok(Math.abs(decoded.data[i]! - 40) <= 3 && Math.abs(decoded.data[i + 1]! - 60) <= 3 && Math.abs(decoded.data[i + 2]! - 200) <= 3, `pixel ${i / 4}: ${[...decoded.data.subarray(i, i + 3)]}`);
    }
  });

  it("keeps the picture's mean colour (box averages), with k from the limit (60 x 50 over 1,001 pixels: k = 2)", async () => {
    const png = makeColouredPng(60, 50, [180, 90, 30], 3, 40);
    const original = await decodeImage(png, await getNodeCodecs());
    const copy = await downscaleToFit(png, 1001);
    assert.deepEqual([copy.width, copy.height], [30, 25]);
    const shrunk = await decodeImage(copy.bytes, await getNodeCodecs());
    const mean = (data: Uint8ClampedArray, channel: number) => {
      let sum = 0;
      for (let i = channel; i < data.length; i += 4) sum += data[i]!;
      return sum / (data.length / 4);
    };
    for (const channel of [0, 1, 2]) {
      assert.ok(Math.abs(mean(shrunk.data, channel) - mean(original.data, channel)) < 1.5, `channel ${channel}: ${mean(shrunk.data, channel)} vs ${mean(original.data, channel)}`);
    }
    await assert.rejects(downscaleToFit(new Uint8Array([1, 2, 3]), 1000), /This file is not an image/);
    // A decompression bomb's header (30000 x 30000 declared in a tiny PNG) is refused before any pixel buffer exists.
    await assert.rejects(downscaleToFit(makeHugePngHeader(30000, 30000), 2_000_000), (error: Error & { code?: string }) => error.code === "too_many_pixels");
  });
});
