/**
 * The runner's embedding pipeline (gpu-runner/src/embed-dataset.ts): downloads, decoding on the pool several batches
 * ahead, the backbone one batch at a time. With an in-memory API client and a deterministic stand-in engine (each
 * embedding is a fixed function of the image's pixels), it must give every image the embedding of its own pixels,
 * whatever order the decode threads finish in, skip broken and missing images with a reason, store what it computed,
 * and fail the attempt when a download fails.
 */
import assert from "node:assert/strict";
import { afterAll, describe, it } from "vitest";
import { sha256Hex } from "../../shared/ids";
import { imageToTensorInput, type PreprocessSpec } from "../../shared/image/preprocess";
import { EMBEDDING_RECORD_HEADER_BYTES } from "../../shared/wire";
import type { RunnerClient } from "../../gpu-runner/src/api-client";
import { getNodeCodecs } from "../../gpu-runner/src/codecs-node";
import { DecodePool } from "../../gpu-runner/src/decode/decode-pool";
import { DECODE_AHEAD, embedDataset, type EmbedDatasetInput } from "../../gpu-runner/src/embed-dataset";
import type { EmbeddingEngine } from "../../gpu-runner/src/engine/types";
import { makeJpeg, makePng, makeTruncatedJpeg } from "../fixtures/images";

const preprocess: PreprocessSpec = { input_size: [8, 8], mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], resize: "squash" };
const PER_IMAGE = 8 * 8 * 3;
const DIM = 3;

/** Embedding of one image: per channel, a position-weighted sum of its pixels (any change to the pixels shows). */
function embedOne(pixels: Float32Array, offset: number): number[] {
  const out = [0, 0, 0];
  for (let i = 0; i < PER_IMAGE; i++) out[i % 3]! += pixels[offset + i]! * (1 + (i % 17));
  return out.map(Math.fround);
}

/** Per channel, the plain sum of a tensor's values. */
const sumOf = (pixels: Float32Array): number[] => {
  const out = [0, 0, 0];
  for (let i = 0; i < pixels.length; i++) out[i % 3]! += pixels[i]!;
  return out.map(Math.fround);
};

/** A stand-in backbone: deterministic, slow enough (a timer per batch) that decoding runs while it works. */
function fakeEngine(): EmbeddingEngine & { batches: number[] } {
  const batches: number[] = [];
  return {
    name: "fake",
    dim: DIM,
    batches,
    async embed(batch, n) {
      assert.equal(batch.length, n * PER_IMAGE);
      batches.push(n);
      await new Promise((resolve) => setTimeout(resolve, 5));
      const out = new Float32Array(n * DIM);
      for (let image = 0; image < n; image++) out.set(embedOne(batch, image * PER_IMAGE), image * DIM);
      return out;
    },
    async close() {},
  };
}

interface FakeApi {
  client: RunnerClient;
  stored: number;
}

/** The three calls embedDataset makes, answered from `images` (null: gone from storage); `failDownload(call)` fails a download. */
function fakeApi(images: Map<string, Uint8Array | null>, failDownload?: (call: number) => boolean): FakeApi {
  const api: FakeApi = { client: null as unknown as RunnerClient, stored: 0 };
  let downloads = 0;
  api.client = {
    lookupEmbeddings: async () => ({ records: new Uint8Array(0), fromPack: false }),
    getImages: async (_job: string, _lease: string, shas: string[]) => {
      if (failDownload?.(downloads++)) throw new Error("download failed: 503");
      await new Promise((resolve) => setTimeout(resolve, 1));
      return new Map(shas.map((sha) => [sha, images.get(sha)?.slice() ?? null] as const));
    },
    storeEmbeddings: async (_job: string, _lease: string, _key: string, dim: number, records: Uint8Array, options?: { items?: boolean }) => {
      if (options?.items !== false) api.stored += records.length / (EMBEDDING_RECORD_HEADER_BYTES + dim * 4);
    },
  } as unknown as RunnerClient;
  return api;
}

async function makeImages(count: number): Promise<{ images: Map<string, Uint8Array | null>; list: { sha256: string; path: string }[] }> {
  const images = new Map<string, Uint8Array | null>();
  const list: { sha256: string; path: string }[] = [];
  for (let i = 0; i < count; i++) {
    const bytes = i === 7 ? makeTruncatedJpeg() : i % 5 === 0 ? makeJpeg(i % 10 === 0 ? "small" : "other") : makePng(12 + (i % 7), 10 + (i % 5), i + 1);
    const sha = await sha256Hex(bytes);
    if (images.has(sha)) continue; // the two JPEG fixtures repeat: one item each
    images.set(sha, i === 11 ? null : bytes); // image 11 is gone from storage
    list.push({ sha256: sha, path: `class/${String(i).padStart(3, "0")}.img` });
  }
  return { images, list };
}

function inputFor(api: FakeApi, list: { sha256: string; path: string }[], engine: EmbeddingEngine, codecs: EmbedDatasetInput["codecs"], decodePool?: DecodePool, signal = new AbortController().signal): EmbedDatasetInput {
  return {
    client: api.client, jobId: "job_1", leaseToken: "lease", cacheKey: "0".repeat(64), images: list, preprocess, engine, codecs, decodePool,
    maxPixels: 1e7, signal, onProgress: () => undefined, log: () => undefined,
  };
}

describe("embedDataset", () => {
  const pool = new DecodePool({ threads: 2 });
  afterAll(() => pool.close());

  it(`gives every image the embedding of its own pixels across ${DECODE_AHEAD} batches decoded ahead, and skips broken and missing images`, async () => {
    const codecs = await getNodeCodecs();
    const { images, list } = await makeImages(150); // 5 batches of 32, the last one short
    for (const decodePool of [pool, undefined]) {
      const api = fakeApi(images);
      const engine = fakeEngine();
      const result = await embedDataset(inputFor(api, list, engine, codecs, decodePool));
      const broken = list.find((item) => item.path.endsWith("007.img"))!;
      const gone = list.find((item) => item.path.endsWith("011.img"))!;
      assert.deepEqual(result.skipped.map((s) => s.path), [broken.path, gone.path]);
      assert.equal(result.skipped[1]!.code, "image_missing");
      assert.match(result.skipped[0]!.code, /^[a-z_]+$/);
      assert.equal(result.computed, list.length - 2);
      assert.equal(result.bySha.size, list.length - 2);
      assert.equal(api.stored, list.length - 2);
      assert.ok(engine.batches.length >= Math.ceil(list.length / 32));
      for (const item of list) {
        if (item === broken || item === gone) continue;
        const pixels = await imageToTensorInput(images.get(item.sha256)!, preprocess, codecs, { maxPixels: 1e7 });
        assert.deepEqual([...result.bySha.get(item.sha256)!], embedOne(pixels, 0), `${item.path} (${decodePool ? "pool" : "this thread"})`);
      }
    }
  });

  it("hands a backbone fed at two input sizes its batches split by size, from arrays reused batch after batch", async () => {
    const codecs = await getNodeCodecs();
    const { images, list } = await makeImages(150);
    const twoSizes: PreprocessSpec = { ...preprocess, extra_input_sizes: [[5, 7]] };
    const lengths = [PER_IMAGE, 5 * 7 * 3];
    const seen = new Set<ArrayBufferLike>();
    const engine: EmbeddingEngine = {
      name: "fake, two sizes",
      dim: DIM * 2,
      embed: () => Promise.reject(new Error("embed must not be called: the batch comes split by size")),
      async embedParts(parts, n) {
        assert.deepEqual(parts.map((part) => part.length), lengths.map((length) => n * length));
        parts.forEach((part) => seen.add(part.buffer));
        await new Promise((resolve) => setTimeout(resolve, 5));
        const out = new Float32Array(n * DIM * 2);
        for (let image = 0; image < n; image++) {
          out.set(embedOne(parts[0]!, image * PER_IMAGE), image * DIM * 2);
          out.set(sumOf(parts[1]!.subarray(image * lengths[1]!, (image + 1) * lengths[1]!)), image * DIM * 2 + DIM);
        }
        return out;
      },
      async close() {},
    };
    const result = await embedDataset({ ...inputFor(fakeApi(images), list, engine, codecs, pool), preprocess: twoSizes });
    assert.equal(result.computed, list.length - 2);
    for (const item of list) {
      const embedding = result.bySha.get(item.sha256);
      if (!embedding) continue;
      const pixels = await imageToTensorInput(images.get(item.sha256)!, twoSizes, codecs, { maxPixels: 1e7 });
      assert.deepEqual([...embedding], [...embedOne(pixels, 0), ...sumOf(pixels.subarray(PER_IMAGE))], item.path);
    }
    // 5 batches, at most DECODE_AHEAD + 1 of them in memory at once: the arrays of the first ones are reused.
    assert.ok(seen.size <= 2 * (DECODE_AHEAD + 1), `${seen.size} arrays for 5 batches`);
  });

  it("fails the attempt when a download fails, after the work it started has settled", async () => {
    const codecs = await getNodeCodecs();
    const { images, list } = await makeImages(120);
    const api = fakeApi(images, (call) => call === 2);
    await assert.rejects(embedDataset(inputFor(api, list, fakeEngine(), codecs, pool)), /download failed: 503/);
    // The pool is still usable by the next job.
    const again = await embedDataset(inputFor(fakeApi(images), list, fakeEngine(), codecs, pool));
    assert.equal(again.computed, list.length - 2);
  });

  it("stops at once when the lease is lost (the signal aborts)", async () => {
    const codecs = await getNodeCodecs();
    const { images, list } = await makeImages(120);
    const controller = new AbortController();
    const engine = fakeEngine();
    const original = engine.embed.bind(engine);
    engine.embed = async (batch, n) => {
      if (engine.batches.length === 1) controller.abort(new Error("lease lost"));
      return original(batch, n);
    };
    await assert.rejects(embedDataset(inputFor(fakeApi(images), list, engine, codecs, pool, controller.signal)), /lease lost/);
    assert.ok(engine.batches.length <= 2, `ran ${engine.batches.length} batches after the abort`);
  });
});
