/**
 * Where a leased job's backbone comes from. Builtin backbones are vendored in gpu-runner/vendor or ship inside npm
 * packages (offline); the runner publishes one to R2 through the API if it finds it missing there, so the edge can load the very same bytes.
 * User backbones are read from R2 through the API. Bundles are kept per process in a small LRU cache
 * (`MAX_CACHED_BUNDLES`, `MAX_CACHED_BUNDLE_BYTES`): a runner serving many jobs on the same backbone parses its
 * weights once, and one serving many users' backbones does not grow without bound.
 */
import { withSingleWeightsFile } from "../../../shared/backbone/model-json";
import type { BackboneBundle, LayersModelJson } from "../../../shared/backbone/types";
import { findBuiltinBackbone, inputRangeOfNormalization } from "../../../shared/catalog";
import type { BackboneSpec } from "../../../shared/schemas";
import type { LeasedJob, RunnerClient } from "../api-client";
import { loadNsfwjsBundle } from "./builtin-nsfwjs";
import { loadVendoredBundle } from "./builtin-vendored";

/** Loaders for the builtin catalog's entries, by catalog id: vendored ones from gpu-runner/vendor (sha256-checked). */
const BUILTIN_LOADERS: Record<string, () => Promise<BackboneBundle>> = {
  bb_builtin_mobilenet_v2: loadNsfwjsBundle,
  bb_builtin_mobilenet_v1_075: () => loadVendoredBundle(findBuiltinBackbone("bb_builtin_mobilenet_v1_075")!),
};

/** The bundle of a builtin catalog entry by id, straight from this runner's files (benchmarks use it too). */
export function loadBuiltinBundle(id: string): Promise<BackboneBundle> {
  const loader = BUILTIN_LOADERS[id];
  if (!loader) throw new Error(`this runner does not know the builtin backbone ${id}; update the runner`);
  return loader();
}

/** The numeric range `(x - mean) / std` maps [0, 1] pixels to (the first channel's; used for logs and bundles). */
export function inputRangeOf(spec: BackboneSpec): [number, number] {
  return inputRangeOfNormalization(spec);
}


/** `bundle` as the two objects the API stores: model.json naming one `weights.bin`, and the weight bytes. */
export function bundleFiles(bundle: BackboneBundle): { modelJson: Uint8Array; weights: Uint8Array } {
  const modelJson = withSingleWeightsFile(bundle.modelJson);
  return { modelJson: new TextEncoder().encode(JSON.stringify(modelJson)), weights: new Uint8Array(bundle.weightData) };
}

/**
 * At most this many bundles, and this many weight bytes, stay cached (the least recently used go first). A bundle is
 * its float32 weights (MobileNetV2: 14 MB; a user's ResNet-50 would be ~100 MB); the runner also keeps one engine,
 * which holds its own copy, so 4 bundles / 512 MB bounds this cache well below a GPU host's memory.
 */
export const MAX_CACHED_BUNDLES = 4;
export const MAX_CACHED_BUNDLE_BYTES = 512 * 1024 * 1024;

/** Insertion order = recency order (a hit is re-inserted). */
const bundles = new Map<string, { bundle: Promise<BackboneBundle>; bytes: number }>();
const published = new Set<string>();

/**
 * Drops least recently used entries (the Map's first keys) until at most `maxEntries` remain and their `bytes` sum
 * to at most `maxBytes`; the newest entry always stays, however big. Returns the dropped keys.
 */
export function evictLeastRecentlyUsed<K>(entries: Map<K, { bytes: number }>, maxEntries: number, maxBytes: number): K[] {
  let bytes = [...entries.values()].reduce((sum, entry) => sum + entry.bytes, 0);
  const dropped: K[] = [];
  for (const [key, entry] of entries) {
    if (entries.size <= 1 || (entries.size <= maxEntries && bytes <= maxBytes)) break;
    entries.delete(key);
    bytes -= entry.bytes;
    dropped.push(key);
  }
  return dropped;
}

function evictBundles(): void {
  evictLeastRecentlyUsed(bundles, MAX_CACHED_BUNDLES, MAX_CACHED_BUNDLE_BYTES);
}

/** Keys of the cached bundles, least recently used first (for tests and logs). */
export function cachedBundleKeys(): string[] {
  return [...bundles.keys()];
}

/** The job whose lease gives access to its backbone's files. */
export interface LeaseRef {
  jobId: string;
  leaseToken: string;
}

async function loadFromApi(client: RunnerClient, backbone: LeasedJob["backbone"], lease: LeaseRef): Promise<BackboneBundle> {
  const [modelJsonBytes, weights] = await Promise.all([client.getBackboneFile(lease.jobId, lease.leaseToken, "model.json"), client.getBackboneFile(lease.jobId, lease.leaseToken, "weights.bin")]);
  if (!modelJsonBytes || !weights) throw new Error(`backbone ${backbone.id}: model.json or weights.bin is missing from storage; import the backbone again`);
  const modelJson = JSON.parse(new TextDecoder().decode(modelJsonBytes)) as LayersModelJson;
  const weightData = weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength) as ArrayBuffer;
  return { name: backbone.id, modelJson, weightData, inputRange: inputRangeOf(backbone.spec) };
}

/**
 * The bundle of a leased job's backbone. For a builtin one, also makes sure the API holds its files (weights
 * first, model.json last, so a present model.json means a complete pair).
 */
export async function loadJobBackbone(client: RunnerClient, backbone: LeasedJob["backbone"], log: (msg: string) => void, lease: LeaseRef): Promise<BackboneBundle> {
  const key = `${backbone.id}@${backbone.weights_version}`;
  let entry = bundles.get(key);
  if (entry) {
    bundles.delete(key); // re-inserted below as the most recently used
  } else {
    const loader = backbone.builtin ? BUILTIN_LOADERS[backbone.id] : undefined;
    if (backbone.builtin && (!loader || !findBuiltinBackbone(backbone.id))) throw new Error(`this runner does not know the builtin backbone ${backbone.id}; update the runner`);
    const bundle = loader ? loader() : loadFromApi(client, backbone, lease);
    entry = { bundle, bytes: 0 };
    const loading = entry;
    bundle.then((loaded) => {
      loading.bytes = loaded.weightData.byteLength;
      evictBundles();
    }, () => {
      if (bundles.get(key) === loading) bundles.delete(key);
    });
  }
  bundles.set(key, entry);
  evictBundles();
  const loaded = await entry.bundle;
  if (backbone.builtin && !published.has(key)) {
    if (!(await client.getBackboneFile(lease.jobId, lease.leaseToken, "model.json"))) {
      const files = bundleFiles(loaded);
      await client.putBackboneFile(backbone.id, "weights.bin", files.weights);
      await client.putBackboneFile(backbone.id, "model.json", files.modelJson);
      log(`published builtin backbone ${backbone.id} to storage (${(files.weights.length / 1e6).toFixed(1)} MB) for the edge`);
    }
    published.add(key);
  }
  return loaded;
}
