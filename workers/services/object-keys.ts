/**
 * The bucket's layout: every R2 key the Worker reads or writes is built here, so one file shows where each object
 * lives and that every tenant's objects sit under `projects/{projectId}/` (builtin backbones are the only shared
 * prefix; the embedding cache is per project too, see services/embeddings.ts).
 *
 *   projects/{projectId}/images/{sha256}                          image bytes, stored once per project
 *   projects/{projectId}/archives/{datasetId}/{ingestId}.zip      an uploaded archive until ingestion ends
 *   projects/{projectId}/archives/{ingestId}.entries.json         its central directory, read once
 *   projects/{projectId}/backbones/{backboneId}/{file}            an imported backbone: model.json, weights.bin
 *   backbones/builtin/{catalogId}/{file}                          a builtin backbone: only the bytes the catalog pins
 *   projects/{projectId}/models/{modelId}/{artifact}              a trained model: head.json, head.bin, card.json, ...
 *   projects/{projectId}/embeddings/{cacheKey}/{sha256}, .../packs/{pack}[.{shard}]   the project's embedding cache
 */

export type BackboneFile = "model.json" | "weights.bin";

export const imageObjectKey = (projectId: string, sha256: string) => `projects/${projectId}/images/${sha256}`;

export const archiveObjectKey = (projectId: string, datasetId: string, ingestId: string) => `projects/${projectId}/archives/${datasetId}/${ingestId}.zip`;
/** Every archive of one dataset (a deleted dataset's leftovers are removed by prefix). */
export const datasetArchivesPrefix = (projectId: string, datasetId: string) => `projects/${projectId}/archives/${datasetId}/`;
export const archiveEntriesObjectKey = (projectId: string, ingestId: string) => `projects/${projectId}/archives/${ingestId}.entries.json`;

export const backboneObjectPrefix = (projectId: string, backboneId: string) => `projects/${projectId}/backbones/${backboneId}`;
export const builtinObjectPrefix = (catalogId: string) => `backbones/builtin/${catalogId}`;
/** A backbone file under its prefix (a row's `object_prefix`, or one of the two prefixes above). */
/** A backbone zip on its way in: the multipart form's file, read from here in ranges and deleted after the import. */
export const backboneUploadKey = (projectId: string, uploadId: string) => `projects/${projectId}/uploads/backbone-${uploadId}.zip`;

export const backboneFileKey = (prefix: string, file: BackboneFile) => `${prefix}/${file}`;

export const modelObjectPrefix = (projectId: string, modelId: string) => `projects/${projectId}/models/${modelId}`;
/**
 * Where one attempt of the model's job writes its artifacts: a runner whose lease lapsed mid-upload finishes writing
 * into its own attempt's folder, never over the next attempt's files; the model row names the winning attempt's.
 */
export const modelAttemptPrefix = (projectId: string, modelId: string, attempt: number) => `${modelObjectPrefix(projectId, modelId)}/attempt-${attempt}`;
/** A model artifact under the model's prefix (its row's `object_prefix`). */
export const modelArtifactKey = (prefix: string, artifact: string) => `${prefix}/${artifact}`;

export const embeddingItemKey = (projectId: string, cacheKey: string, sha256: string) => `projects/${projectId}/embeddings/${cacheKey}/${sha256}`;
export const embeddingPackKey = (projectId: string, cacheKey: string, pack: string) => `projects/${projectId}/embeddings/${cacheKey}/packs/${pack}`;
/** Shard `shard` of a pack (services/embeddings.ts): shard 0 is the pack's own key, so packs stored whole before shards existed read as one shard. */
export const embeddingPackShardKey = (projectId: string, cacheKey: string, pack: string, shard: number) => `${embeddingPackKey(projectId, cacheKey, pack)}${shard === 0 ? "" : `.${shard}`}`;
