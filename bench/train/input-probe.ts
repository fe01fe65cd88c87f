/**
 * What the default backbone sees: input resolution, resize mode, pooling, and a second backbone's features beside
 * it. Each configuration is scored by 5-fold CV of a linear head on flowers5's 300 TRAINING images only (best L2 of
 * the grid by CV); the held-out accuracy of that CV-chosen head refit on all training images is printed beside it
 * for information and never used to choose.
 *
 *   npx tsx bench/train/input-probe.ts
 *   env: SIZES="224,256,288,320", RESIZES="squash,center_crop", POOLINGS="avg,avg+max", LAYER_SETS="13;9,13",
 *        L2S="0.1,0.3,1,3", TTA=1 (also flip-averaged features), CONCAT=1 (also beside MobileNetV2's features),
 *        MULTISCALE="224,288;288,384" (conv_pw_13 at several sizes, concatenated and averaged), V2=0 (skip MobileNetV2),
 *        FOLD_SEED=N (another stratified fold assignment: how much a CV difference is the folds')
 *
 * MobileNet v1 is fully convolutional up to its global pooling, so a larger input only needs the declared input
 * shape changed; the weights are the vendored ones.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { loadavg } from "node:os";
import path from "node:path";
import { loadVendoredBundle } from "../../gpu-runner/src/backbones/builtin-vendored";
import { loadBuiltinBundle } from "../../gpu-runner/src/backbones/job-backbone";
import { getNodeCodecs } from "../../gpu-runner/src/codecs-node";
import { createEngine } from "../../gpu-runner/src/engine/index";
import { trainHeadLbfgs } from "../../gpu-runner/src/train/lbfgs-head";
import { applyHead } from "../../shared/head";
import { averageEmbeddings } from "../../shared/image/augment";
import { decodeImage } from "../../shared/image/decode";
import { preprocessImage, type PreprocessSpec } from "../../shared/image/preprocess";
import { DEFAULT_BACKBONE, NSFWJS_MOBILENET_V2, preprocessSpecOf, singleSizeSpec } from "../../shared/catalog";
import { createRandom } from "../../shared/random";
import { hyperparametersSchema } from "../../shared/schemas";
import type { BackboneBundle } from "../../shared/backbone/types";
import { flowersAvailable, listFlowersSplit, topOneAccuracy } from "../embed/flowers";

if (!flowersAvailable()) {
  console.log("skipped: ../shared/datasets/flowers5 not found (set EDGETUNE_SHARED_DIR)");
  process.exit(0);
}
const OUT = path.resolve(import.meta.dirname, "../out/input-probe");
const list = (name: string, fallback: string) => (process.env[name] ?? fallback).split(/[;]/).filter(Boolean);
const SIZES = (process.env.SIZES ?? "224,256,288,320").split(",").filter(Boolean).map(Number);
const RESIZES = (process.env.RESIZES ?? "squash,center_crop").split(",") as PreprocessSpec["resize"][];
const POOLINGS = (process.env.POOLINGS ?? "avg,avg+max").split(",") as ("avg" | "avg+max")[];
const LAYER_SETS = list("LAYER_SETS", "13;9,13").map((s) => s.split(",").map((k) => `conv_pw_${k}_relu`));
const L2S = (process.env.L2S ?? "0.1,0.3,1,3").split(",").map(Number);

const { classes, files, labels, train, held } = await listFlowersSplit();
const n = files.length;
const codecs = await getNodeCodecs();
const decoded = await Promise.all(files.map(async (f) => decodeImage(new Uint8Array(await readFile(f.path)), codecs)));

function withInputSize(bundle: BackboneBundle, size: number): BackboneBundle {
  const modelJson = structuredClone(bundle.modelJson) as any;
  const layers = modelJson.modelTopology.model_config?.config?.layers ?? modelJson.modelTopology.config.layers;
  for (const layer of layers) if (layer.config?.batch_input_shape) layer.config.batch_input_shape = [null, size, size, 3];
  return { ...bundle, modelJson };
}

interface Features { name: string; data: Float32Array; dim: number }
async function embed(name: string, bundle: BackboneBundle, layers: string[], pooling: "avg" | "avg+max", spec: PreprocessSpec): Promise<Features> {
  const file = path.join(OUT, `${name}.bin`);
  const [h, w] = spec.input_size;
  try {
    const bytes = await readFile(file);
    const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    return { name, data, dim: data.length / n };
  } catch {}
  const engine = await createEngine(bundle, { feature_layers: layers, pooling, input_size: [h, w] }, { engine: "onnx" });
  const out = new Float32Array(n * engine.dim);
  const started = Date.now();
  for (let start = 0; start < n; start += 16) {
    const count = Math.min(16, n - start);
    const batch = new Float32Array(count * h * w * 3);
    for (let i = 0; i < count; i++) preprocessImage(decoded[start + i]!, spec, batch.subarray(i * h * w * 3, (i + 1) * h * w * 3));
    out.set(await engine.embed(batch, count), start * engine.dim);
  }
  const ms = (Date.now() - started) / n;
  const dim = engine.dim;
  await engine.close();
  console.log(`  embedded ${name}: dim ${dim}, ${ms.toFixed(1)} ms/image (load ${loadavg()[0]!.toFixed(1)})`);
  await mkdir(OUT, { recursive: true });
  await writeFile(file, new Uint8Array(out.buffer));
  return { name, data: out, dim };
}

function concat(parts: Features[]): Features {
  const dim = parts.reduce((a, p) => a + p.dim, 0);
  const data = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    let at = i * dim;
    for (const p of parts) (data.set(p.data.subarray(i * p.dim, (i + 1) * p.dim), at), (at += p.dim));
  }
  return { name: parts.map((p) => p.name).join(" + "), data, dim };
}

async function fitScore(f: Features, l2: number, fitRows: number[], scoreRows: number[]): Promise<number> {
  const { dim } = f;
  const rows = [...fitRows, ...scoreRows];
  const x = new Float32Array(rows.length * dim);
  const y = new Int32Array(rows.length);
  rows.forEach((r, k) => (x.set(f.data.subarray(r * dim, (r + 1) * dim), k * dim), (y[k] = labels[r]!)));
  const trainIndex = fitRows.map((_, k) => k);
  const valIndex = scoreRows.map((_, k) => fitRows.length + k);
  const hyperparameters = { ...hyperparametersSchema.parse({ label_smoothing: 0.1, epochs: 50, early_stopping_patience: 0 }), weight_decay: l2 };
  const trained = await trainHeadLbfgs({ embeddings: x, dim, labels: y, classCount: classes.length, trainIndex, valIndex }, { head: { type: "linear" }, hyperparameters, keep: "last" });
  const probs = applyHead(trained.head, x.subarray(fitRows.length * dim), scoreRows.length);
  return topOneAccuracy(probs, scoreRows, labels, classes.length);
}
const FOLDS = 5;
const foldOf = new Map<number, number>();
// FOLD_SEED (default 0: the fixed assignment) shuffles each class's training images before dealing them to folds.
const foldSeed = Number(process.env.FOLD_SEED ?? "0");
for (let c = 0; c < classes.length; c++) {
  const members = train.filter((i) => labels[i] === c);
  if (foldSeed !== 0) {
    const random = createRandom(foldSeed * 100 + c);
    for (let i = members.length - 1; i > 0; i--) {
      const j = random.nextInt(i + 1);
      [members[i], members[j]] = [members[j]!, members[i]!];
    }
  }
  members.forEach((i, k) => foldOf.set(i, (k + c) % FOLDS));
}

console.log("| features | dim | CV (train, 5-fold, best L2) | L2 | held-out (not used to choose) |");
console.log("| --- | --- | --- | --- | --- |");
async function report(f: Features): Promise<void> {
  let best = { cv: -1, l2: 0 };
  for (const l2 of L2S) {
    let total = 0;
    for (let k = 0; k < FOLDS; k++) total += await fitScore(f, l2, train.filter((i) => foldOf.get(i) !== k), train.filter((i) => foldOf.get(i) === k));
    if (total / FOLDS > best.cv + 1e-9) best = { cv: total / FOLDS, l2 };
  }
  const h = await fitScore(f, best.l2, train, held);
  console.log(`| ${f.name} | ${f.dim} | ${(best.cv * 100).toFixed(1)}% | ${best.l2} | ${(h * 100).toFixed(1)}% |`);
}

const v1 = await loadVendoredBundle(DEFAULT_BACKBONE);
const v2 = await loadBuiltinBundle(NSFWJS_MOBILENET_V2.id);
const v2Spec = preprocessSpecOf(NSFWJS_MOBILENET_V2.spec);
const v2Features = await embed("v2-224-squash", v2, ["block_13_expand_relu"], "avg", v2Spec);
for (const size of SIZES) {
  for (const resize of RESIZES) {
    for (const pooling of POOLINGS) {
      for (const layers of LAYER_SETS) {
        const tag = `v1-${size}-${resize}-${pooling}-${layers.map((l) => l.replace("conv_pw_", "").replace("_relu", "")).join("+")}`;
        const spec = { ...preprocessSpecOf(singleSizeSpec(DEFAULT_BACKBONE.spec)), input_size: [size, size] as [number, number], resize };
        const f = await embed(tag, size === 224 ? v1 : withInputSize(v1, size), layers, pooling, spec);
        await report(f);
        if (process.env.TTA === "1") {
          const mirror = await embed(`${tag}-view1`, size === 224 ? v1 : withInputSize(v1, size), layers, pooling, { ...spec, view: 1 });
          await report({ name: `${tag} flip-averaged`, dim: f.dim, data: averageEmbeddings(f.data, mirror.data) });
        }
        if (process.env.CONCAT === "1") await report(concat([f, v2Features]));
      }
    }
  }
}
// Several input sizes of one configuration, side by side (concatenated) and averaged (the same width as one).
for (const pair of list("MULTISCALE", "")) {
  const parts: Features[] = [];
  for (const size of pair.split(",").map(Number)) {
    const spec = { ...preprocessSpecOf(singleSizeSpec(DEFAULT_BACKBONE.spec)), input_size: [size, size] as [number, number], resize: "squash" as const };
    parts.push(await embed(`v1-${size}-squash-avg-13`, size === 224 ? v1 : withInputSize(v1, size), ["conv_pw_13_relu"], "avg", spec));
  }
  await report(concat(parts));
  const mean = new Float32Array(parts[0]!.data.length);
  for (const p of parts) for (let k = 0; k < mean.length; k++) mean[k]! += p.data[k]! / parts.length;
  await report({ name: `mean of ${parts.map((p) => p.name).join(", ")}`, dim: parts[0]!.dim, data: mean });
}
if (process.env.V2 !== "0") await report(v2Features);
console.log(`load ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
