/**
 * Head training: time and validation accuracy of each trainer, side by side in the same run.
 *
 * Contenders (`--solvers`), all with the job defaults (up to 100 epochs or iterations, early stopping after 15
 * without a better val loss, best epoch kept):
 * - "lbfgs-js", "lbfgs-onnx1", "lbfgs-onnx2": full-batch L-BFGS (lbfgs-head.ts) with its objective in plain
 *   TypeScript or in onnxruntime on 1 or 2 threads (sessions built beforehand, as the runner's training thread does);
 *   each fits twice, the second fit has a warm JIT (as every job after a runner's first); MLPs by L-BFGS at any size;
 * - "adam-onnx2": MLP heads by mini-batch Adam over the same onnxruntime graph (minibatch-adam.ts), what the runner
 *   uses from 4,096 training rows (lbfgs-head.ts ADAM_MIN_ROWS); linear heads are L-BFGS whatever the option;
 * - "lbfgs-onnx1-old": lbfgs-onnx1 as it was before issue 12's solver pass (a transposed copy of x fed to onnxruntime,
 *   linear heads run to a 1e-10 relative decrease, so early stopping's patience ends them), "lbfgs-onnx1-xt": that copy
 *   with today's tolerance, "lbfgs-onnx1-gather": standardised training rows gathered instead of folding the
 *   standardisation into the weights over the raw rows (linear heads); side by side with "lbfgs-onnx1" they show what each change buys;
 * - "minibatch" on tfjs-wasm: the trainer before L-BFGS (Adam, batch 32, dropout for MLPs), one fit.
 *
 * Data sets:
 * - flowers5 (../shared/datasets/flowers5, 400 photos, fixed split: every 4th file per class → val) embedded with
 *   the default backbone on the onnx engine exactly as the runner does (decode, preprocess, embed); the embeddings
 *   are cached in bench/out/ so later runs skip that. Skipped with a message when ../shared is not there.
 * - synthetic 20,000 x 1024, 5 classes (Gaussian clusters with overlapping noise; 80/20 stratified split).
 *
 *   npx tsx bench/train/head-speed.ts [--sets flowers5,synthetic20k] [--heads linear,mlp]
 *                                     [--solvers lbfgs-js,lbfgs-onnx1,lbfgs-onnx2,adam-onnx2,minibatch,lbfgs-onnx1-old,lbfgs-onnx1-xt,lbfgs-onnx1-gather]
 *                                     [--minibatch-max-epochs N]   (caps the tfjs trainer on the 20k set; default 100)
 *
 * Prints a markdown table. Numbers, not a test: the 2-core box is shared, so compare rows of the same run; CPU ms
 * (this process, all threads) is steadier than wall ms when other work competes for the cores.
 */
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { DEFAULT_BACKBONE } from "../../shared/catalog";
import { embedFlowersSplit } from "../lib/flowers-embeddings";
import { createRandom } from "../../shared/random";
import type { HeadSpec } from "../../shared/schemas";
import { splitStratified } from "../../shared/split";
import { DEFAULT_HYPERPARAMETERS } from "../../gpu-runner/src/train/defaults";
import { trainHeadLbfgs, type LbfgsHeadOptions, type ObjectiveBackend } from "../../gpu-runner/src/train/lbfgs-head";
import { warmUpHeadSessions } from "../../gpu-runner/src/train/onnx-objective";
import { trainHead, type HeadSolver, type HeadTrainingInput } from "../../gpu-runner/src/train/train-head";

tf.env().set("PROD", true);
const here = path.dirname(fileURLToPath(import.meta.url));
const SHARED = process.env.EDGETUNE_SHARED_DIR ?? path.resolve(here, "../../../shared");
const FLOWERS = path.join(SHARED, "datasets", "flowers5");
const arg = (name: string, fallback: string) => (process.argv.includes(`--${name}`) ? process.argv[process.argv.indexOf(`--${name}`) + 1]! : fallback);
const sets = arg("sets", "flowers5,synthetic20k").split(",");
const headNames = arg("heads", "linear,mlp").split(",");
const solvers = arg("solvers", "lbfgs-js,lbfgs-onnx1,lbfgs-onnx2,minibatch").split(",");
const minibatchMaxEpochs = Number(arg("minibatch-max-epochs", "100"));

/** flowers5 through the default backbone as a runner embeds it (bench/lib/flowers-embeddings.ts, cached). */
async function flowers5(): Promise<HeadTrainingInput | null> {
  if (!existsSync(FLOWERS)) {
    console.log(`flowers5 skipped: ${FLOWERS} not found (set EDGETUNE_SHARED_DIR)`);
    return null;
  }
  const set = await embedFlowersSplit(DEFAULT_BACKBONE);
  return { embeddings: set.embeddings, dim: set.dim, labels: set.labels, classCount: set.classes.length, labelNames: set.classes, trainIndex: set.trainIndex, valIndex: set.valIndex };
}

/**
 * 20,000 x 1024, 5 classes: centre c is a random direction of length 2.5 in a random 64-d subspace of features, each row
 * its centre plus N(0, 1) per feature plus a per-row brightness offset, so classes overlap (a linear head tops out
 * near 90%, not 100%), and features need standardising (offset 2, scale 0.5 to 3).
 */
function synthetic20k(): HeadTrainingInput {
  const n = 20_000, dim = 1024, classCount = 5;
  const random = createRandom(7);
  const centres = Array.from({ length: classCount }, () => {
    const centre = new Float32Array(dim);
    for (let i = 0; i < 64; i++) centre[random.nextInt(dim)] = random.nextNormal();
    const norm = Math.hypot(...centre);
    return centre.map((value) => (value / norm) * 2.5);
  });
  const scale = Float32Array.from({ length: dim }, () => 0.5 + 2.5 * random.nextFloat());
  const embeddings = new Float32Array(n * dim);
  const labels = new Int32Array(n);
  for (let row = 0; row < n; row++) {
    const label = row % classCount;
    labels[row] = label;
    const brightness = random.nextNormal();
    for (let i = 0; i < dim; i++) embeddings[row * dim + i] = 2 + scale[i]! * (centres[label]![i]! + random.nextNormal() + 0.3 * brightness);
  }
  const split = splitStratified(labels, 0.2, 7);
  return { embeddings, dim, labels, classCount, trainIndex: split.train, valIndex: split.val };
}

const HEADS: Record<string, HeadSpec> = { linear: { type: "linear" }, mlp: { type: "mlp", hidden: [256], dropout: 0.2 } };

/**
 * The contenders: the L-BFGS solver with its objective in plain JS or in onnxruntime (1 or 2 intra-op threads; the
 * runner passes its --threads, one per core), and the old tfjs mini-batch trainer.
 */
const CONTENDERS: Record<string, { solver: HeadSolver; backend?: ObjectiveBackend; threads?: number; label: string; options?: LbfgsHeadOptions }> = {
  "lbfgs-js": { solver: "lbfgs", backend: "js", label: "L-BFGS, objective in plain JS" },
  // Before issue 12's solver pass: xᵀ materialised, linear heads run to lbfgs.ts's 1e-10 relative decrease.
  "lbfgs-onnx1-old": { solver: "lbfgs", backend: "onnx", threads: 1, label: "L-BFGS, onnxruntime 1 thread, xᵀ copy, rel. decrease 1e-10", options: { firstGradient: "xt", linearRelativeDecreaseTolerance: 1e-10 } },
  "lbfgs-onnx1-gather": { solver: "lbfgs", backend: "onnx", threads: 1, label: "L-BFGS, onnxruntime 1 thread, standardised rows gathered, rel. decrease 1e-5", options: { rawRows: false } },
  "lbfgs-onnx1-xt": { solver: "lbfgs", backend: "onnx", threads: 1, label: "L-BFGS, onnxruntime 1 thread, xᵀ copy, rel. decrease 1e-5", options: { firstGradient: "xt" } },
  "lbfgs-onnx1": { solver: "lbfgs", backend: "onnx", threads: 1, label: "L-BFGS, objective in onnxruntime, 1 thread", options: { mlpSolver: "lbfgs" } },
  "lbfgs-onnx2": { solver: "lbfgs", backend: "onnx", threads: 2, label: "L-BFGS, objective in onnxruntime, 2 threads", options: { mlpSolver: "lbfgs" } },
  // MLP heads: mini-batch Adam over the same onnxruntime graph (minibatch-adam.ts), what `auto` picks from 4,096 rows.
  "adam-onnx2": { solver: "lbfgs", backend: "onnx", threads: 2, label: "mini-batch Adam (1,024 rows), objective in onnxruntime, 2 threads", options: { mlpSolver: "adam" } },
  minibatch: { solver: "minibatch", label: "mini-batch Adam (tfjs-wasm)" },
};

await tf.setBackend("wasm");
// As the runner's training thread does at start: onnxruntime sessions exist before the first fit.
await warmUpHeadSessions(1);
await warmUpHeadSessions(2);
console.log(`load average ${os.loadavg().map((value) => value.toFixed(2)).join(" ")} (2 cores, shared)`);
console.log("| data | head | solver | wall ms (1st fit / 2nd) | CPU ms (2nd) | epochs/iterations | stop | best-epoch val acc |");
console.log("| --- | --- | --- | ---: | ---: | ---: | --- | ---: |");
for (const setName of sets) {
  const input = setName === "flowers5" ? await flowers5() : setName === "synthetic20k" ? synthetic20k() : null;
  if (!input) continue;
  const label = `${setName} (${input.trainIndex.length} train / ${input.valIndex.length} val, ${input.dim}-d)`;
  for (const headName of headNames) {
    for (const name of solvers) {
      const contender = CONTENDERS[name];
      if (!contender) throw new Error(`unknown solver ${name}; one of ${Object.keys(CONTENDERS).join(", ")}`);
      const minibatch = contender.solver === "minibatch";
      // The tfjs trainer on 16,000 rows takes minutes: one fit, capped.
      const epochs = minibatch && input.trainIndex.length > 5000 ? Math.min(minibatchMaxEpochs, DEFAULT_HYPERPARAMETERS.epochs) : DEFAULT_HYPERPARAMETERS.epochs;
      const config = { head: HEADS[headName]!, hyperparameters: { ...DEFAULT_HYPERPARAMETERS, epochs } };
      const walls: number[] = [];
      let cpuMs = 0;
      let result;
      for (let fit = 0; fit < (minibatch ? 1 : 2); fit++) {
        const started = performance.now();
        const cpuBefore = process.cpuUsage();
        result = minibatch
          ? await trainHead(input, { ...config, solver: "minibatch" }, {}, tf)
          : await trainHeadLbfgs(input, config, {}, { backend: contender.backend, threads: contender.threads, ...contender.options });
        walls.push(performance.now() - started);
        const cpu = process.cpuUsage(cpuBefore);
        cpuMs = (cpu.user + cpu.system) / 1000;
      }
      const best = result!.epochs[result!.bestEpoch - 1]!;
      console.log(`| ${label} | ${headName} | ${contender.label} | ${walls.map((ms) => ms.toFixed(0)).join(" / ")} | ${cpuMs.toFixed(0)} | ${result!.epochs.length}${epochs < DEFAULT_HYPERPARAMETERS.epochs ? ` (cap ${epochs})` : ""} | ${result!.stopReason} | ${(best.val_accuracy * 100).toFixed(1)}% |`);
    }
  }
}
console.log(`load average ${os.loadavg().map((value) => value.toFixed(2)).join(" ")}`);
