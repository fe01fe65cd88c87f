/**
 * The edge's embedder for the default backbone at each of its input-size settings, one setting per process (the
 * tfjs-wasm heap never shrinks, so a fresh process shows each one's own high-water mark): the WASM heap after one
 * compile and a few embeds, the weight bytes held, and the time of one embed, in Node's tfjs-wasm (the edge's code
 * path; workerd's absolute times differ, the ratios hold).
 *
 *   npx tsx bench/predict/multi-size-memory.ts            (runs every setting, each in its own child process)
 *   npx tsx bench/predict/multi-size-memory.ts <setting>  (one of: 224-published, 288, 352, default, default-unshared)
 *
 * Prints numbers; asserts nothing.
 */
import { execFileSync } from "node:child_process";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { loadVendoredBundle } from "../../gpu-runner/src/backbones/builtin-vendored";
import { DEFAULT_BACKBONE, preprocessSpecOf, singleSizeSpec } from "../../shared/catalog";
import { inputTensorLength } from "../../shared/image/preprocess";
import type { BackboneSpec } from "../../shared/schemas";
import { averageEmbeddings } from "../../shared/image/augment";
import { createEmbedder, type Embedder } from "../../workers/inference/embedder";

const SETTINGS: Record<string, BackboneSpec> = {
  "224-published": { ...singleSizeSpec(DEFAULT_BACKBONE.spec), input_size: [224, 224], feature_layer: ["conv_pw_9_relu", "conv_pw_13_relu"] },
  "288": singleSizeSpec(DEFAULT_BACKBONE.spec),
  "352": { ...singleSizeSpec(DEFAULT_BACKBONE.spec), input_size: [352, 352] },
  default: DEFAULT_BACKBONE.spec,
  "default-unshared": DEFAULT_BACKBONE.spec,
};

async function unshared(bundle: Awaited<ReturnType<typeof loadVendoredBundle>>, spec: BackboneSpec): Promise<Embedder> {
  const parts = await Promise.all([spec.input_size, ...(spec.extra_input_sizes ?? [])].map((input_size) => createEmbedder(tf as never, bundle, singleSizeSpec({ ...spec, input_size }), {})));
  let offset = 0;
  return {
    ...parts[0]!,
    weightBytes: parts.reduce((sum, part) => sum + part.weightBytes, 0),
    async embed(image) {
      const embeddings: Float32Array[] = [];
      offset = 0;
      for (const part of parts) {
        const [h, w, c] = part.inputShape;
        embeddings.push(await part.embed(image.subarray(offset, (offset += h * w * c))));
      }
      return averageEmbeddings(...embeddings);
    },
    dispose: () => parts.forEach((part) => part.dispose()),
  };
}

const which = process.argv[2];
if (!which) {
  console.log(`| setting | input sizes | weights held | WASM heap after compile | WASM heap after 5 embeds | ms per embed |`);
  console.log(`| --- | --- | ---: | ---: | ---: | ---: |`);
  for (const name of Object.keys(SETTINGS)) {
    process.stdout.write(execFileSync(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), name], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }));
  }
  console.log(`load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
} else {
  const spec = SETTINGS[which];
  if (!spec) throw new Error(`unknown setting ${which}; one of ${Object.keys(SETTINGS).join(", ")}`);
  await tf.setBackend("wasm");
  const heapMb = () => ((tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.buffer.byteLength / 1e6).toFixed(1);
  const bundle = await loadVendoredBundle(DEFAULT_BACKBONE);
  // "default-unshared": the two sizes as two separate embedders, each with its own copy of the weights (as before
  // fused-backbone.ts SharedWeights), averaged the same way.
  const embedder = which === "default-unshared" ? await unshared(bundle, spec) : await createEmbedder(tf as never, bundle, spec, {});
  const afterCompile = heapMb();
  const image = new Float32Array(inputTensorLength(preprocessSpecOf(spec))).map((_, i) => Math.sin(i * 0.01));
  await embedder.embed(image);
  const started = performance.now();
  for (let i = 0; i < 5; i++) await embedder.embed(image);
  const ms = (performance.now() - started) / 5;
  const sizes = [spec.input_size, ...(spec.extra_input_sizes ?? [])].map((s) => s.join("x")).join(" + ");
  console.log(`| ${which} (${embedder.engine}) | ${sizes} | ${(embedder.weightBytes / 1e6).toFixed(1)} MB | ${afterCompile} MB | ${heapMb()} MB | ${ms.toFixed(1)} |`);
  embedder.dispose();
}
