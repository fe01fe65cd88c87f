/**
 * The embedding cache in R2. An embedding depends only on (backbone weights, feature layers, preprocessing, image
 * bytes), so it is stored under `embeddings/{cache key}/{image sha256}` and reused by every later job, on any
 * dataset of any project, that holds the same image: a second job on the same dataset computes none.
 * A job also stores all its embeddings as one "pack" keyed by the hash of its sorted image hashes, so a retrain of
 * the same snapshot reads one object instead of one per image.
 *
 * Wire and pack format: records of a 32-byte raw sha256 followed by `dim` little-endian float32 values.
 */
import { ApiError } from "../../shared/errors";
import { EMBEDDING_RECORD_HEADER_BYTES, bytesToHex, hexToBytes } from "../../shared/wire";
import { embeddingItemKey, embeddingPackKey } from "./object-keys";

export { EMBEDDING_RECORD_HEADER_BYTES };
const READ_CONCURRENCY = 32;



export async function readEmbeddingPack(bucket: R2Bucket, key: string, pack: string): Promise<ArrayBuffer | null> {
  const object = await bucket.get(embeddingPackKey(key, pack));
  return object ? object.arrayBuffer() : null;
}

/** Records for the hashes found in the cache (missing ones are simply absent). */
export async function readEmbeddings(bucket: R2Bucket, key: string, shas: string[]): Promise<Uint8Array> {
  const found: Uint8Array[] = new Array(shas.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(READ_CONCURRENCY, shas.length) }, async () => {
      while (next < shas.length) {
        const i = next++;
        const object = await bucket.get(embeddingItemKey(key, shas[i]));
        if (!object) continue;
        const vector = new Uint8Array(await object.arrayBuffer());
        const record = new Uint8Array(EMBEDDING_RECORD_HEADER_BYTES + vector.length);
        record.set(hexToBytes(shas[i]), 0);
        record.set(vector, EMBEDDING_RECORD_HEADER_BYTES);
        found[i] = record;
      }
    }),
  );
  const records = found.filter(Boolean);
  const out = new Uint8Array(records.reduce((s, r) => s + r.length, 0));
  let offset = 0;
  for (const r of records) {
    out.set(r, offset);
    offset += r.length;
  }
  return out;
}

/** Stores each record under its image hash (and the whole body as a pack when `pack` is given). */
export async function writeEmbeddings(bucket: R2Bucket, key: string, dim: number, body: Uint8Array, pack?: string, items = true): Promise<number> {
  const recordBytes = EMBEDDING_RECORD_HEADER_BYTES + dim * 4;
  if (body.length % recordBytes !== 0) {
    throw new ApiError("invalid_embedding_records", `The body is ${body.length} bytes, not a whole number of ${recordBytes}-byte records (32-byte sha256 + ${dim} float32).`);
  }
  const count = body.length / recordBytes;
  let next = items ? 0 : count;
  await Promise.all(
    Array.from({ length: Math.min(16, count) }, async () => {
      while (next < count) {
        const i = next++;
        const record = body.subarray(i * recordBytes, (i + 1) * recordBytes);
        await bucket.put(embeddingItemKey(key, bytesToHex(record.subarray(0, EMBEDDING_RECORD_HEADER_BYTES))), record.slice(EMBEDDING_RECORD_HEADER_BYTES));
      }
    }),
  );
  if (pack) await bucket.put(embeddingPackKey(key, pack), body);
  return count;
}
