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
 * the same snapshot reads a few objects instead of one per image. A pack is cut in shards of at most
 * EMBEDDING_BODY_MAX_BYTES (32 MB: 6,500 records of 1,280 floats), each streamed into R2 and streamed back out, so
 * neither storing nor reading one holds it in memory. Every shard carries the count (`shards` custom metadata) and
 * runners write shard 0 last, so a pack whose shard 0 is readable is whole; a pack stored before shards existed
 * is its own shard 0 of 1.
 *
 * Wire and pack format: records of a 32-byte raw sha256 followed by `dim` little-endian float32 values.
 */
import { ApiError } from "../../shared/errors";
import { concatBytes } from "../../shared/bytes";
import { mapBounded } from "../../shared/concurrency";
import { EMBEDDING_RECORD_HEADER_BYTES, bytesToHex, hexToBytes } from "../../shared/wire";
import { embeddingItemKey, embeddingPackShardKey } from "./object-keys";

export { EMBEDDING_RECORD_HEADER_BYTES };
const READ_CONCURRENCY = 32;
const WRITE_CONCURRENCY = 16;
/** Largest embeddings body a runner sends (a batch of items, or one shard of a pack). */
export const EMBEDDING_BODY_MAX_BYTES = 32 * 1024 * 1024;
/** Most records in one items body: checking them against the snapshot takes one D1 statement per 90 (80 in all). */
export const EMBEDDING_ITEMS_MAX_RECORDS = 7_200;

/** One shard of a pack, to stream out, with the pack's shard count; null when it is not stored. */
export async function readEmbeddingPackShard(bucket: R2Bucket, projectId: string, key: string, pack: string, shard: number): Promise<{ body: ReadableStream; size: number; shards: number } | null> {
  const object = await bucket.get(embeddingPackShardKey(projectId, key, pack, shard));
  if (!object) return null;
  return { body: object.body, size: object.size, shards: Number(object.customMetadata?.shards ?? 1) || 1 };
}

/**
 * Streams one shard of a pack into R2 (`length` bytes, whole records), checking each record's hash against `allowed`
 * (the snapshot's images) as it passes: a record of another image errors the stream, and R2 then stores nothing.
 * Peak memory: one chunk in flight.
 */
export async function writeEmbeddingPackShard(bucket: R2Bucket, projectId: string, key: string, dim: number, pack: { id: string; shard: number; shards: number }, body: ReadableStream<Uint8Array>, length: number, allowed: Set<string>): Promise<number> {
  const recordBytes = EMBEDDING_RECORD_HEADER_BYTES + dim * 4;
  if (length % recordBytes !== 0) throw notWholeRecords(length, recordBytes, dim);
  let offset = 0; // bytes seen, over the whole body
  let violation: ApiError | null = null;
  const header = new Uint8Array(EMBEDDING_RECORD_HEADER_BYTES);
  const checked = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      for (let i = 0; i < chunk.length; ) {
        const inRecord = offset % recordBytes;
        if (inRecord < EMBEDDING_RECORD_HEADER_BYTES) {
          const take = Math.min(EMBEDDING_RECORD_HEADER_BYTES - inRecord, chunk.length - i);
          header.set(chunk.subarray(i, i + take), inRecord);
          i += take;
          offset += take;
          if (offset % recordBytes === EMBEDDING_RECORD_HEADER_BYTES) {
            const sha = bytesToHex(header);
            if (!allowed.has(sha)) {
              violation = new ApiError("not_leased", `Image ${sha} is not in the leased job's dataset snapshot; only its images' embeddings can be stored.`, { sha256: sha });
              controller.error(violation);
              return;
            }
          }
        } else {
          const take = Math.min(recordBytes - inRecord, chunk.length - i);
          i += take;
          offset += take;
        }
      }
      controller.enqueue(chunk);
    },
  });
  const source = body.pipeThrough(checked).pipeThrough(new FixedLengthStream(length));
  try {
    await bucket.put(embeddingPackShardKey(projectId, key, pack.id, pack.shard), source, { customMetadata: { shards: String(pack.shards) } });
  } catch (err) {
    throw violation ?? err;
  }
  return length / recordBytes;
}

const notWholeRecords = (length: number, recordBytes: number, dim: number) =>
  new ApiError("invalid_embedding_records", `The body is ${length} bytes, not a whole number of ${recordBytes}-byte records (32-byte sha256 + ${dim} float32).`);

/** Records for the hashes found in the cache (missing ones are simply absent). Peak memory: twice the answer (at most 1,000 records, 10 MB at 1,280 floats). */
export async function readEmbeddings(bucket: R2Bucket, projectId: string, key: string, shas: string[]): Promise<Uint8Array> {
  const found = await mapBounded(shas, READ_CONCURRENCY, async (sha) => {
    const object = await bucket.get(embeddingItemKey(projectId, key, sha));
    if (!object) return null;
    return concatBytes([hexToBytes(sha), new Uint8Array(await object.arrayBuffer())]);
  });
  return concatBytes(found.filter((record) => record !== null));
}

/** Stores each record under its image hash. Peak memory: the body, held once (at most EMBEDDING_BODY_MAX_BYTES). */
export async function writeEmbeddings(bucket: R2Bucket, projectId: string, key: string, dim: number, body: Uint8Array): Promise<number> {
  const recordBytes = EMBEDDING_RECORD_HEADER_BYTES + dim * 4;
  if (body.length % recordBytes !== 0) throw notWholeRecords(body.length, recordBytes, dim);
  const count = body.length / recordBytes;
  await mapBounded(Array.from({ length: count }, (_, i) => body.subarray(i * recordBytes, (i + 1) * recordBytes)), WRITE_CONCURRENCY, (record) =>
    bucket.put(embeddingItemKey(projectId, key, bytesToHex(record.subarray(0, EMBEDDING_RECORD_HEADER_BYTES))), record.slice(EMBEDDING_RECORD_HEADER_BYTES)),
  );
  return count;
}
