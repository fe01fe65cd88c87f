/**
 * The embedding cache in R2. An embedding depends only on (backbone weights, feature layers, preprocessing, image
 * bytes), so it is stored under `projects/{project}/embeddings/{cache key}/{image sha256}` and reused by every later job of the
 * same project that holds the same image: a second job on the same dataset computes none.
 *
 * Per project, not shared across tenants, on purpose. A shared cache would let one tenant learn that another has
 * embedded the same bytes: not from a field (hits could be hidden from metrics and events) but from time, since a job
 * whose embeddings are all cached finishes in a fraction of the time (started_at/finished_at and the progress events
 * show it), which is enough to test "does any tenant hold this photo?". And a runner leasing one tenant's job could
 * write embeddings that another tenant's jobs would then read. Per-project keys close both; the price is that two
 * tenants with the same public photos each embed them once.
 * A job also stores all its embeddings as one "pack" keyed by the hash of its sorted image hashes, so a retrain of
 * the same snapshot reads one object instead of one per image.
 *
 * Wire and pack format: records of a 32-byte raw sha256 followed by `dim` little-endian float32 values.
 */
import { ApiError } from "../../shared/errors";
import { concatBytes } from "../../shared/bytes";
import { mapBounded } from "../../shared/concurrency";
import { EMBEDDING_RECORD_HEADER_BYTES, bytesToHex, hexToBytes } from "../../shared/wire";
import { embeddingItemKey, embeddingPackKey } from "./object-keys";

export { EMBEDDING_RECORD_HEADER_BYTES };
const READ_CONCURRENCY = 32;
const WRITE_CONCURRENCY = 16;



export async function readEmbeddingPack(bucket: R2Bucket, projectId: string, key: string, pack: string): Promise<ArrayBuffer | null> {
  const object = await bucket.get(embeddingPackKey(projectId, key, pack));
  return object ? object.arrayBuffer() : null;
}

/** Records for the hashes found in the cache (missing ones are simply absent). */
export async function readEmbeddings(bucket: R2Bucket, projectId: string, key: string, shas: string[]): Promise<Uint8Array> {
  const found = await mapBounded(shas, READ_CONCURRENCY, async (sha) => {
    const object = await bucket.get(embeddingItemKey(projectId, key, sha));
    if (!object) return null;
    return concatBytes([hexToBytes(sha), new Uint8Array(await object.arrayBuffer())]);
  });
  return concatBytes(found.filter((record) => record !== null));
}

/** Stores each record under its image hash (and the whole body as a pack when `pack` is given). */
export async function writeEmbeddings(bucket: R2Bucket, projectId: string, key: string, dim: number, body: Uint8Array, pack?: string, items = true): Promise<number> {
  const recordBytes = EMBEDDING_RECORD_HEADER_BYTES + dim * 4;
  if (body.length % recordBytes !== 0) {
    throw new ApiError("invalid_embedding_records", `The body is ${body.length} bytes, not a whole number of ${recordBytes}-byte records (32-byte sha256 + ${dim} float32).`);
  }
  const count = body.length / recordBytes;
  if (items) {
    await mapBounded(Array.from({ length: count }, (_, i) => body.subarray(i * recordBytes, (i + 1) * recordBytes)), WRITE_CONCURRENCY, (record) =>
      bucket.put(embeddingItemKey(projectId, key, bytesToHex(record.subarray(0, EMBEDDING_RECORD_HEADER_BYTES))), record.slice(EMBEDDING_RECORD_HEADER_BYTES)),
    );
  }
  if (pack) await bucket.put(embeddingPackKey(projectId, key, pack), body);
  return count;
}
