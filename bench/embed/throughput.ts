/**
 * Images per second of each embedding engine, batch 32, for the builtin MobileNetV2 (at its chosen feature spec)
 * and ImageNet MobileNet v1 0.25 (if ../shared is present). Contenders run one at a time; each gets one warm-up
 * batch, then `--rounds` timed batches (median reported).
 *
 *   npx tsx bench/embed/throughput.ts [--engines onnx,tfjs-wasm,tfjs-node,...] [--threads 2] [--rounds 3] [--batch 32]
 *
 * Also the builtin MobileNetV2 run through to `out_relu` (the whole feature network, 1280-d): the same work as
 * PyTorch's `mobilenet_v2().features` in bench/train/pytorch_embed.py, for a like-for-like comparison.
 */
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { BUILTIN_FEATURE_SPEC, MOBILENET_V1_FEATURE_SPEC } from "../../shared/backbone/builtin";
import { getInputShape } from "../../shared/backbone/model-json";
import type { BackboneBundle, FeatureSpec } from "../../shared/backbone/types";
import { loadNsfwjsBundle } from "../../gpu-runner/src/backbones/builtin-nsfwjs";
import { createEngine, EngineUnavailableError, type EngineKind } from "../../gpu-runner/src/engine/index";
import { loadBundleFromDir } from "../../gpu-runner/src/backbones/load-bundle";
import { MOBILENET_V1_DIR } from "./flowers";

function arg(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? process.argv[index + 1]! : fallback;
}

const engines = arg("engines", "onnx,tfjs-wasm,tfjs-node,tfjs-node-gpu,webgpu").split(",") as EngineKind[];
const threads = Number(arg("threads", String(availableParallelism())));
const rounds = Number(arg("rounds", "3"));
const batchSize = Number(arg("batch", "32"));

async function measure(label: string, bundle: BackboneBundle, feature: FeatureSpec, engine: EngineKind): Promise<string> {
  const [h, w, c] = getInputShape(bundle.modelJson);
  const batch = new Float32Array(batchSize * h * w * c);
  const [lo, hi] = bundle.inputRange;
  for (let i = 0; i < batch.length; i++) batch[i] = lo + ((i * 2654435761) % 1000) / 1000 * (hi - lo);
  let instance;
  try {
    const started = performance.now();
    instance = await createEngine(bundle, feature, { engine, threads });
    const startMs = performance.now() - started;
    await instance.embed(batch, batchSize); // warm-up
    const times: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const t0 = performance.now();
      await instance.embed(batch, batchSize);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    const median = times[Math.floor(times.length / 2)]!;
    return `| ${label} | ${instance.name} | ${instance.dim} | ${((batchSize * 1000) / median).toFixed(1)} | ${median.toFixed(0)} | ${(startMs / 1000).toFixed(1)} |`;
  } catch (error) {
    const reason = error instanceof EngineUnavailableError ? error.message : `failed: ${(error as Error).message}`;
    return `| ${label} | ${engine} | - | skipped | - | ${reason} |`;
  } finally {
    await instance?.close();
  }
}

const contenders: Array<{ label: string; bundle: () => Promise<BackboneBundle>; feature: FeatureSpec }> = [
  { label: "nsfwjs MobileNetV2 (builtin)", bundle: loadNsfwjsBundle, feature: BUILTIN_FEATURE_SPEC },
  { label: "nsfwjs MobileNetV2 to out_relu (as PyTorch's features)", bundle: loadNsfwjsBundle, feature: { feature_layers: ["out_relu"], pooling: "avg" } },
];
if (existsSync(MOBILENET_V1_DIR)) {
  contenders.push({ label: "MobileNet v1 0.25", bundle: () => loadBundleFromDir(MOBILENET_V1_DIR, { inputRange: [-1, 1] }), feature: MOBILENET_V1_FEATURE_SPEC });
} else {
  console.log(`note: ${MOBILENET_V1_DIR} not found, MobileNet v1 skipped`);
}

console.log(`batch ${batchSize}, ${threads} threads, median of ${rounds}`);
console.log("| backbone | engine | dim | img/s | ms/batch | start s |");
console.log("| --- | --- | --- | --- | --- | --- |");
for (const contender of contenders) {
  const bundle = await contender.bundle();
  for (const engine of engines) console.log(await measure(contender.label, bundle, contender.feature, engine));
}
