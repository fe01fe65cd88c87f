/**
 * flowers5's fixed split (bench/embed/flowers.ts listFlowersSplit) embedded by a builtin backbone exactly as a runner
 * does it (shared decoding and preprocessing at the backbone's input sizes, the onnx engine), cached in
 * bench/out/flowers-embeddings/ under the embedding cache key, so a change of backbone spec never reads stale rows.
 */
import { createHash } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { loadBuiltinBundle } from "../../gpu-runner/src/backbones/job-backbone";
import { getNodeCodecs } from "../../gpu-runner/src/codecs-node";
import { createEngine } from "../../gpu-runner/src/engine/index";
import { embeddingCacheKey, featureSpecOf, preprocessSpecOf, type CatalogEntry } from "../../shared/catalog";
import { decodeImage } from "../../shared/image/decode";
import { inputTensorLength, preprocessImage } from "../../shared/image/preprocess";
import { listFlowersSplit } from "../embed/flowers";

const OUT = path.resolve(import.meta.dirname, "../out/flowers-embeddings");

export interface FlowersEmbeddings {
  embeddings: Float32Array;
  dim: number;
  labels: Int32Array;
  classes: string[];
  trainIndex: number[];
  valIndex: number[];
}

export async function embedFlowersSplit(entry: CatalogEntry): Promise<FlowersEmbeddings> {
  const { classes, files, labels, train, held } = await listFlowersSplit();
  const key = createHash("sha256").update(embeddingCacheKey(entry.id, entry.weightsVersion, entry.spec)).digest("hex").slice(0, 16);
  const file = path.join(OUT, `${entry.name}-${key}.f32`);
  let embeddings: Float32Array;
  try {
    const bytes = await readFile(file);
    embeddings = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  } catch {
    const codecs = await getNodeCodecs();
    const preprocess = preprocessSpecOf(entry.spec);
    const perImage = inputTensorLength(preprocess);
    const engine = await createEngine(await loadBuiltinBundle(entry.id), featureSpecOf(entry.spec), { engine: "onnx" });
    embeddings = new Float32Array(files.length * engine.dim);
    for (let start = 0; start < files.length; start += 16) {
      const count = Math.min(16, files.length - start);
      const batch = new Float32Array(count * perImage);
      for (let i = 0; i < count; i++) preprocessImage(await decodeImage(new Uint8Array(await readFile(files[start + i]!.path)), codecs), preprocess, batch.subarray(i * perImage, (i + 1) * perImage));
      embeddings.set(await engine.embed(batch, count), start * engine.dim);
    }
    await engine.close();
    await mkdir(OUT, { recursive: true });
    await writeFile(file, new Uint8Array(embeddings.buffer));
  }
  return { embeddings, dim: embeddings.length / files.length, labels, classes, trainIndex: train, valIndex: held };
}
