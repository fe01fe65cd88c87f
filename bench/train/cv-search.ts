/**
 * The `auto` head search on flowers5 alone (no platform): embeds the fixed split (every 4th file per class held out)
 * with the default builtin backbone once, as a runner does (bench/lib/flowers-embeddings.ts, cached under bench/out/), then runs `selectHead` exactly as a runner does
 * (stratified 5-fold CV on the 300 training images, worker threads) and prints every candidate's CV accuracy, the
 * search time, and — for information only, never used to choose — each candidate's held-out accuracy when refit
 * on all training images.
 *
 *   npx tsx bench/train/cv-search.ts [--workers N] [--no-subsets]
 */
import * as tf from "@tensorflow/tfjs";
import { workerFoldRunner } from "../../gpu-runner/src/train/cv-pool";
import { fitFold } from "../../gpu-runner/src/train/fit-fold";
import { candidateGrid, selectHead } from "../../gpu-runner/src/train/select-head";
import { DEFAULT_BACKBONE, featureLayers } from "../../shared/catalog";
import { featureSubsets } from "../../gpu-runner/src/train/feature-subset";
import { hyperparametersSchema } from "../../shared/schemas";
import { flowersAvailable } from "../embed/flowers";
import { embedFlowersSplit } from "../lib/flowers-embeddings";

if (!flowersAvailable()) {
  console.log("skipped: ../shared/datasets/flowers5 not found (set EDGETUNE_SHARED_DIR)");
  process.exit(0);
}
tf.env().set("PROD", true);
const workers = process.argv.includes("--workers") ? Number(process.argv[process.argv.indexOf("--workers") + 1]) : undefined;
const flowers = await embedFlowersSplit(DEFAULT_BACKBONE);
const { embeddings, dim, trainIndex, valIndex } = flowers;
const hyperparameters = hyperparametersSchema.parse({});
const data = { embeddings, dim, labels: flowers.labels, classCount: flowers.classes.length, hyperparameters };
// As the runner does for this backbone: heads on each feature layer alone are candidates too.
// `--no-subsets`: the grid without them (the grid before they were added, for comparisons).
const subsets = process.argv.includes("--no-subsets") ? [] : featureSubsets(featureLayers(DEFAULT_BACKBONE.spec), DEFAULT_BACKBONE.featureChannels, dim);

const runs: number[] = [];
let result!: Awaited<ReturnType<typeof selectHead>>;
for (let run = 0; run < 3; run++) {
  const started = performance.now();
  result = await selectHead({ labels: flowers.labels, trainIndex }, { folds: 5, seed: hyperparameters.seed, featureSubsets: subsets, runFolds: workerFoldRunner(data, { maxWorkers: workers }) });
  runs.push(performance.now() - started);
}
runs.sort((a, b) => a - b);
console.log(`flowers5, ${DEFAULT_BACKBONE.name} (${dim}-d), ${trainIndex.length} train / ${valIndex.length} held out; ${result.selection.candidates.length} candidates x ${result.selection.folds} folds`);
console.log(`load average ${(await import("node:os")).loadavg().map((l) => l.toFixed(2)).join(" ")}`);
console.log(`CV search wall time: median ${(runs[1]! / 1000).toFixed(2)} s (runs: ${runs.map((r) => (r / 1000).toFixed(2)).join(", ")} s), worker threads: ${workers ?? "default"}`);
console.log("\n| candidate | CV accuracy (mean ± std) | held-out accuracy (refit; not used to choose) | chosen |");
console.log("| --- | --- | --- | --- |");
for (const [index, candidate] of candidateGrid(hyperparameters, subsets).entries()) {
  const listed = result.selection.candidates[index]!;
  const heldOut = await fitFold(data, { candidate, trainRows: trainIndex, heldRows: valIndex }); // refit as run-job does: keep last
  console.log(`| ${candidate.head.type} ${JSON.stringify(candidate.hyperparameters)}${candidate.features ? ` on ${candidate.features.layers.join(" + ")}` : ""} | ${(listed.cv_accuracy_mean * 100).toFixed(1)}% ± ${(listed.cv_accuracy_std * 100).toFixed(1)} | ${(heldOut.accuracy * 100).toFixed(1)}% | ${index === result.selection.chosen_index ? "yes" : ""} |`);
}
