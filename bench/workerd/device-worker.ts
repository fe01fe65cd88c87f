/**
 * The MobileNetV2 bench as a standalone Worker, for a quiet machine: bundled by esbuild (commands in device-run.sh) and
 * served by a bare `workerd` (device-run.sh), so it measures what a deployed Worker would run, tfjs bundled.
 *   GET /setup                    init + model load timings, fused-vs-plain max difference
 *   GET /run?which=<name>&n=<N>   N forward passes of one contender, in-Worker milliseconds per pass
 *   GET /bench?rounds=<N>         N rounds, each running every contender once (so load hits all alike): min/p50/p90
 */
import type { LayersModel } from "@tensorflow/tfjs-layers";
import type { Tensor } from "@tensorflow/tfjs-core";
import { ensureTfjsWasm, type Tfjs } from "../../workers/inference/tfjs-wasm";
import { buildFusedExecutor } from "./fused-executor";
import { syntheticImage, toModelArtifacts, type NsfwjsModelJson } from "./mobilenet-fixture";

let contenders: Record<string, () => Tensor> | null = null;

function maxAbsDifference(a: Tensor, b: Tensor): number {
  const x = a.dataSync(), y = b.dataSync();
  let max = 0;
  for (let i = 0; i < x.length; i++) max = Math.max(max, Math.abs(x[i]! - y[i]!));
  return max;
}

async function setup() {
  const t0 = performance.now();
  const tf: Tfjs = await ensureTfjsWasm();
  const t1 = performance.now();
  const { MobileNetV2Model } = await import("nsfwjs/models/mobilenet_v2");
  const modelJson = (await MobileNetV2Model.modelJson()).default as NsfwjsModelJson;
  const weightsBase64 = (await MobileNetV2Model.weightBundles[0]!()).default as string;
  const t2 = performance.now();
  const model: LayersModel = await tf.loadLayersModel(tf.io.fromMemory(toModelArtifacts(modelJson, weightsBase64)));
  const t3 = performance.now();
  const image = syntheticImage(tf);
  const first = model.predict(image) as Tensor;
  first.dataSync();
  const t4 = performance.now();
  const backbone = tf.model({ inputs: model.inputs, outputs: model.getLayer("flatten_1").output });
  const fusedBackbone = buildFusedExecutor(tf, model, "flatten_1");
  const fusedFull = buildFusedExecutor(tf, model, "dense_3");
  contenders = {
    plain: () => model.predict(image) as Tensor,
    fused: () => fusedFull.run(image),
    plainBackbone: () => backbone.predict(image) as Tensor,
    fusedBackbone: () => fusedBackbone.run(image),
  };
  let spin = 0;
  const c0 = performance.now();
  for (let i = 0; i < 3e7; i++) spin += i % 7;
  return {
    clockAdvancesDuringComputation: performance.now() - c0 > 0 && spin > 0,
    initMs: t1 - t0, importModelModulesMs: t2 - t1, loadLayersModelMs: t3 - t2, firstForwardMs: t4 - t3,
    fusedSteps: { backbone: fusedBackbone.stepCount, full: fusedFull.stepCount }, layers: model.layers.length,
    maxDiffBackbone: maxAbsDifference(backbone.predict(image) as Tensor, fusedBackbone.run(image)),
    maxDiffFull: maxAbsDifference(first, fusedFull.run(image)),
  };
}

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    try {
      if (url.pathname === "/setup") return Response.json(await setup());
      if (url.pathname === "/run" && contenders) {
        const run = contenders[url.searchParams.get("which") ?? ""];
        if (!run) return new Response("unknown contender", { status: 400 });
        const times: number[] = [];
        for (let i = 0; i < Number(url.searchParams.get("n") ?? 1); i++) {
          const start = performance.now();
          const y = run();
          y.dataSync();
          times.push(performance.now() - start);
          y.dispose();
        }
        return Response.json(times);
      }
      if (url.pathname === "/bench" && contenders) {
        const rounds = Number(url.searchParams.get("rounds") ?? 30);
        const times: Record<string, number[]> = Object.fromEntries(Object.keys(contenders).map((name) => [name, []]));
        for (let round = 0; round < rounds + 3; round++) {
          for (const [name, run] of Object.entries(contenders)) {
            const start = performance.now();
            const y = run();
            y.dataSync();
            if (round >= 3) times[name]!.push(performance.now() - start);
            y.dispose();
          }
        }
        return Response.json(Object.fromEntries(Object.entries(times).map(([name, t]) => {
          const sorted = [...t].sort((a, b) => a - b);
          const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
          return [name, { min: sorted[0], p50: at(0.5), p90: at(0.9), runs: sorted.length }];
        })));
      }
      return new Response("call /setup first", { status: 404 });
    } catch (error) {
      return new Response(String((error as Error).stack ?? error), { status: 500 });
    }
  },
};
