/**
 * The same full-batch objective as dense-objective.ts, computed by onnxruntime (CPU execution provider, MLAS
 * GEMMs with AVX-512 where the CPU has it) instead of plain TypeScript loops: one ONNX graph does the forward pass,
 * the softmax cross-entropy's gradient and the backward pass, so each evaluation is one `session.run`.
 *
 * Why: the work per evaluation is about 3 · rows · Σ(inputDim · units) multiply-adds (forward, weight gradient,
 * input gradient); for 16,000 × 1024 → 5 that is 160 M, about 100 ms in plain JS on an idle core here and ~10 ms in
 * MLAS (bench/train/head-speed.ts has the measured figures).
 *
 * Split of the work: the graph returns the logits and the gradients (float32); the loss and the accuracy are
 * summed here from the logits in float64, so the line search compares values that float32 rounding cannot blur.
 * The L2 term is added here too. The embeddings and targets are handed to onnxruntime once per evaluation as
 * tensors over the same buffers (no copy on the JS side).
 */
import { encodeModel, int64Raw, TensorDataType, type NodeInit, type TensorInit } from "../engine/onnx/protobuf";
import type { Standardization } from "../../../shared/head";
import { layerShapes, parameterCount, type DenseObjectiveInput } from "./dense-objective";
import type { Objective } from "./lbfgs";
import { nativeCall } from "../threads/native-gate";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Ort = any;

const OPSET = 13;

let ortModule: Promise<Ort> | null = null;
/** onnxruntime-node, or null when it cannot load on this host (then the plain-JS objective is used). */
export function loadOrt(): Promise<Ort | null> {
  const moduleName = "onnxruntime-node";
  // Loading the binding runs native code too: held under the gate like every call (native-gate.ts).
  ortModule ??= nativeCall(() => import(moduleName)).then(
    (ort) => (ort.default?.InferenceSession ? ort.default : ort),
    () => null,
  );
  return ortModule;
}

/**
 * ONNX graph of the objective (`withGradients`) or of the logits alone, for a network of `layerCount` dense layers.
 * Every size is symbolic (rows `n`, layer widths `d0` = dim, `d1`, ..., classes `d{layerCount}`), so one session
 * serves every dimension, hidden width and class count: sessions are built once per thread and kept
 * (`headSession`). Inputs: `x` [n, d0], and for gradients (`xt` = xᵀ [d0, n] with `firstGradient` "xt"), `targets_scaled` [n, k] = T / n and
 * `weights_scaled` [n, 1] = rowSum(T) / n; per layer `w{l}` [d{l+1}, d{l}] (the θ layout) and `b{l}` [d{l+1}].
 * Outputs: `logits` [n, k], and `gw{l}`, `gb{l}` shaped like `w{l}`, `b{l}`.
 */
export function buildObjectiveGraph(layerCount: number, withGradients: boolean, firstGradient: FirstLayerGradient = "transA"): Uint8Array {
  const last = layerCount - 1;
  const width = (layer: number) => `d${layer}`;
  const nodes: NodeInit[] = [];
  const initializers: TensorInit[] = [{ name: "axis0", dims: [1], dataType: TensorDataType.INT64, raw: int64Raw([0]) }];
  const float = (name: string, dims: Array<number | string>) => ({ name, elemType: TensorDataType.FLOAT, dims });
  const inputs = [float("x", ["n", width(0)])];
  const outputs = [float("logits", ["n", width(layerCount)])];
  let activation = "x";
  const activations = ["x"];
  for (let layer = 0; layer < layerCount; layer++) {
    inputs.push(float(`w${layer}`, [width(layer + 1), width(layer)]), float(`b${layer}`, [width(layer + 1)]));
    const z = layer === last ? "logits" : `z${layer}`;
    nodes.push({ opType: "Gemm", inputs: [activation, `w${layer}`, `b${layer}`], outputs: [z], attributes: { transB: 1 } });
    if (layer < last) {
      nodes.push({ opType: "Relu", inputs: [z], outputs: [`a${layer + 1}`] });
      activation = `a${layer + 1}`;
      activations.push(activation);
    }
  }
  if (withGradients) {
    if (firstGradient === "xt") inputs.push(float("xt", [width(0), "n"]));
    inputs.push(float("targets_scaled", ["n", width(layerCount)]), float("weights_scaled", ["n", 1]));
    // d(mean weighted CE)/d logits = (rowSum(T)·softmax − T) / n.
    nodes.push({ opType: "Softmax", inputs: ["logits"], outputs: ["p"], attributes: { axis: 1 } });
    nodes.push({ opType: "Mul", inputs: ["p", "weights_scaled"], outputs: ["pw"] });
    nodes.push({ opType: "Sub", inputs: ["pw", "targets_scaled"], outputs: [`dz${last}`] });
    for (let layer = last; layer >= 0; layer--) {
      if (layer === 0) {
        // dzᵀ·x as (xᵀ·dz)ᵀ: MLAS runs a GEMM with only `units` rows (5 classes) and K = n several times slower than one
        // with `dim` rows (measured 16,000 × 1024 → 5: ~70 ms vs ~20 ms on a loaded core). Gemm with transA=1 reads x as
        // xᵀ in place: the same CPU per fit as feeding a transposed copy (bench/train/head-speed.ts, 20,000 rows: 733 vs
        // 678 ms on a loaded box, within its noise) without the copy's 65 MB and the ~75 ms it takes to write.
        if (firstGradient === "xt") nodes.push({ opType: "MatMul", inputs: ["xt", `dz${layer}`], outputs: ["gw0t"] });
        else nodes.push({ opType: "Gemm", inputs: ["x", `dz${layer}`], outputs: ["gw0t"], attributes: { transA: 1 } });
        nodes.push({ opType: "Transpose", inputs: ["gw0t"], outputs: ["gw0"], attributes: { perm: [1, 0] } });
      } else {
        nodes.push({ opType: "Gemm", inputs: [`dz${layer}`, activations[layer]!], outputs: [`gw${layer}`], attributes: { transA: 1 } });
      }
      nodes.push({ opType: "ReduceSum", inputs: [`dz${layer}`, "axis0"], outputs: [`gb${layer}`], attributes: { keepdims: 0 } });
      outputs.push(float(`gw${layer}`, [width(layer + 1), width(layer)]), float(`gb${layer}`, [width(layer + 1)]));
      if (layer > 0) {
        // Through the ReLU: its output a is ≥ 0, so sign(a) is exactly its derivative (0 where it was clipped).
        nodes.push({ opType: "MatMul", inputs: [`dz${layer}`, `w${layer}`], outputs: [`da${layer}`] });
        nodes.push({ opType: "Sign", inputs: [activations[layer]!], outputs: [`mask${layer}`] });
        nodes.push({ opType: "Mul", inputs: [`da${layer}`, `mask${layer}`], outputs: [`dz${layer - 1}`] });
      }
    }
  }
  return encodeModel({ name: withGradients ? "head objective" : "head logits", nodes, initializers, inputs, outputs }, OPSET);
}

/**
 * How the graph computes the first layer's weight gradient dzᵀ·x: "xt" as (xᵀ·dz)ᵀ over a transposed copy of x fed
 * in, "transA" as Gemm(x, dz, transA=1)ᵀ over x itself (no copy).
 */
export type FirstLayerGradient = "xt" | "transA";

async function createSession(ort: Ort, bytes: Uint8Array, threads: number): Promise<Ort> {
  // Every call into onnxruntime holds this worker's gate, so terminating the worker waits for it (native-gate.ts).
  return nativeCall(() => ort.InferenceSession.create(bytes, {
    executionProviders: ["cpu"],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
    logSeverityLevel: 3,
    extra: { session: { intra_op: { allow_spinning: "0" } } },
  }));
}

/**
 * Sessions of this thread, by (layers, gradients or logits, threads); never released (a handful, ~1 MB each).
 * Creating one took 160-270 ms on this loaded box, more than a whole linear fit on flowers5 once it exists, so the
 * training thread builds the common ones when it starts (`warmUpHeadSessions`) and every fit reuses them.
 * `session.run` is safe to call concurrently on one session.
 */
const sessions = new Map<string, Promise<Ort>>();

function headSession(ort: Ort, layerCount: number, withGradients: boolean, threads: number, firstGradient: FirstLayerGradient = "transA"): Promise<Ort> {
  const key = `${layerCount}/${withGradients ? `objective-${firstGradient}` : "logits"}/${threads}`;
  let session = sessions.get(key);
  if (!session) {
    session = createSession(ort, buildObjectiveGraph(layerCount, withGradients, firstGradient), threads);
    session.catch(() => sessions.delete(key));
    sessions.set(key, session);
  }
  return session;
}

/**
 * Builds this thread's sessions for linear heads and one-hidden-layer MLPs (objective and logits) ahead of the
 * first fit. Resolves false when onnxruntime cannot load here.
 */
export async function warmUpHeadSessions(threads: number): Promise<boolean> {
  const ort = await loadOrt();
  if (!ort) return false;
  await Promise.all([1, 2].flatMap((layers) => [headSession(ort, layers, true, threads), headSession(ort, layers, false, threads)]));
  return true;
}

/** Float32 copies of θ's per-layer kernels and biases, rewritten in place before every run. */
class LayerTensors {
  readonly kernels: Float32Array[];
  readonly biases: Float32Array[];
  constructor(private readonly shapes: ReturnType<typeof layerShapes>) {
    this.kernels = shapes.map(({ inputDim, units }) => new Float32Array(inputDim * units));
    this.biases = shapes.map(({ units }) => new Float32Array(units));
  }
  load(theta: Float64Array): void {
    this.shapes.forEach(({ inputDim, units, offset }, layer) => {
      const kernel = this.kernels[layer]!;
      for (let i = 0; i < kernel.length; i++) kernel[i] = theta[offset + i]!;
      const bias = this.biases[layer]!;
      for (let u = 0; u < units; u++) bias[u] = theta[offset + units * inputDim + u]!;
    });
  }
  /** Layer 0 for raw rows: W' = W / std, b' = b − W'·mean (see RawRows), from θ in float64. */
  foldStandardization(theta: Float64Array, { mean, std }: Standardization): void {
    const { inputDim, units, offset } = this.shapes[0]!;
    const kernel = this.kernels[0]!;
    for (let u = 0; u < units; u++) {
      let shift = 0;
      for (let i = 0; i < inputDim; i++) {
        const w = theta[offset + u * inputDim + i]! / std[i]!;
        kernel[u * inputDim + i] = w;
        shift += w * mean[i]!;
      }
      this.biases[0]![u] = theta[offset + units * inputDim + u]! - shift;
    }
  }
  feeds(ort: Ort): Record<string, unknown> {
    const feeds: Record<string, unknown> = {};
    this.shapes.forEach(({ inputDim, units }, layer) => {
      feeds[`w${layer}`] = new ort.Tensor("float32", this.kernels[layer]!, [units, inputDim]);
      feeds[`b${layer}`] = new ort.Tensor("float32", this.biases[layer]!, [units]);
    });
    return feeds;
  }
}

/**
 * A fit on the raw embeddings instead of a standardised copy of the training rows: `x` is every row of the
 * embeddings as they are, `targets` and `labels` cover every row (targets zero outside training), and the loss and
 * accuracy count `trainRows` only. The standardisation is folded into the first layer: W' = W / std and
 * b' = b − W'·mean give the same logits as W and b on standardised rows, and the gradient maps back as
 * gW = (g' − gb ⊗ mean) / std. Why: gathering and standardising 16,000 × 1024 rows took ~100 ms of CPU, more than
 * the work it saves on the rows outside training, and one forward pass then also yields the validation logits.
 */
export interface RawRows {
  standardize: Standardization;
  trainRows: readonly number[];
}

export class OnnxObjective implements Objective {
  readonly dimension: number;
  lastDataLoss = NaN;
  lastCorrect = 0;
  /** Logits of every row of x at `lastTheta` (the last evaluation). */
  private lastLogits: Float32Array | null = null;
  private readonly lastTheta: Float64Array;
  private readonly layers: LayerTensors;
  private readonly targetsScaled: Float32Array;
  /** xᵀ when the graph reads it ("xt", see buildObjectiveGraph); null with "transA". */
  private readonly xTransposed: Float32Array | null;
  private readonly weightsScaled: Float32Array;

  private constructor(
    private readonly ort: Ort,
    private readonly session: Ort,
    private readonly input: DenseObjectiveInput,
    firstGradient: FirstLayerGradient,
    xTransposed?: Float32Array,
    private readonly raw?: RawRows,
  ) {
    const { dim, hidden, classCount, targets } = input;
    // The loss is a mean over the training rows.
    const rows = raw ? raw.trainRows.length : input.rows;
    this.dimension = parameterCount(dim, hidden, classCount);
    this.lastTheta = new Float64Array(this.dimension);
    this.layers = new LayerTensors(layerShapes(dim, hidden, classCount));
    this.targetsScaled = new Float32Array(targets.length);
    if (xTransposed && xTransposed.length !== rows * dim) throw new RangeError(`xTransposed has ${xTransposed.length} values, expected ${dim} × ${rows}`);
    this.xTransposed = firstGradient === "xt" ? xTransposed ?? transpose(input.x, rows, dim) : null;
    this.weightsScaled = new Float32Array(input.rows);
    this.refreshTargets();
  }

  /**
   * Re-reads `input.targets` after the caller refilled it in place (mini-batch training reuses one objective per
   * batch shape: minibatch-adam.ts). Not for raw rows, where x and targets are fixed.
   */
  refreshTargets(): void {
    const { targets, classCount } = this.input;
    const rows = this.raw ? this.raw.trainRows.length : this.input.rows;
    for (let i = 0; i < targets.length; i++) this.targetsScaled[i] = targets[i]! / rows;
    for (let r = 0; r < this.input.rows; r++) {
      let sum = 0;
      for (let c = 0; c < classCount; c++) sum += targets[r * classCount + c]!;
      this.weightsScaled[r] = sum / rows;
    }
  }

  /**
   * Null when onnxruntime is not available (the caller falls back to the plain-JS objective). `xTransposed`: xᵀ
   * [dim, rows] when the caller already has it (gatherStandardizedRows writes it in the same pass as x).
   */
  static async create(input: DenseObjectiveInput, threads: number, firstGradient: FirstLayerGradient = "transA", xTransposed?: Float32Array, raw?: RawRows): Promise<OnnxObjective | null> {
    const ort = await loadOrt();
    if (!ort) return null;
    if (raw && firstGradient !== "transA") throw new RangeError("a fit on raw rows computes its first-layer gradient by transA");
    const session = await headSession(ort, input.hidden.length + 1, true, threads, firstGradient);
    return new OnnxObjective(ort, session, input, firstGradient, xTransposed, raw);
  }

  async evaluate(theta: Float64Array, gradient: Float64Array): Promise<number> {
    const { x, rows, dim, classCount, targets, labels, l2 } = this.input;
    const ort = this.ort;
    const raw = this.raw;
    this.layers.load(theta);
    if (raw) this.layers.foldStandardization(theta, raw.standardize);
    const feeds = {
      x: new ort.Tensor("float32", x, [rows, dim]),
      ...(this.xTransposed ? { xt: new ort.Tensor("float32", this.xTransposed, [dim, rows]) } : {}),
      targets_scaled: new ort.Tensor("float32", this.targetsScaled, [rows, classCount]),
      weights_scaled: new ort.Tensor("float32", this.weightsScaled, [rows, 1]),
      ...this.layers.feeds(ort),
    };
    const outputs = await nativeCall(() => this.session.run(feeds));
    const logits = outputs.logits.data as Float32Array;
    this.lastLogits = logits;
    this.lastTheta.set(theta);
    const { lossSum, correct } = crossEntropySum(logits, targets, labels, classCount, raw?.trainRows);
    this.lastDataLoss = lossSum / (raw ? raw.trainRows.length : rows);
    this.lastCorrect = correct;
    let penalty = 0;
    layerShapes(dim, this.input.hidden, classCount).forEach(({ inputDim, units, offset }, layer) => {
      const gw = outputs[`gw${layer}`].data as Float32Array;
      const gb = outputs[`gb${layer}`].data as Float32Array;
      for (let i = 0; i < gw.length; i++) {
        const w = theta[offset + i]!;
        penalty += w * w;
        gradient[offset + i] = gw[i]! + l2 * w;
      }
      if (raw && layer === 0) {
        const { mean, std } = raw.standardize;
        for (let u = 0; u < units; u++) {
          for (let i = 0; i < inputDim; i++) gradient[offset + u * inputDim + i] = (gw[u * inputDim + i]! - gb[u]! * mean[i]!) / std[i]! + l2 * theta[offset + u * inputDim + i]!;
        }
      }
      for (let u = 0; u < units; u++) gradient[offset + units * inputDim + u] = gb[u]!;
    });
    return this.lastDataLoss + 0.5 * l2 * penalty;
  }

  /**
   * Logits [rows.length, classCount] of the given rows of x at θ, from the last evaluation when it was at θ (after an
   * accepted L-BFGS step it was), else null.
   */
  logitsOfRows(theta: Float64Array, rows: readonly number[]): Float32Array | null {
    const logits = this.lastLogits;
    if (!logits) return null;
    for (let i = 0; i < theta.length; i++) if (theta[i] !== this.lastTheta[i]) return null;
    const k = this.input.classCount;
    const out = new Float32Array(rows.length * k);
    rows.forEach((row, position) => out.set(logits.subarray(row * k, (row + 1) * k), position * k));
    return out;
  }
}

/** Logits through onnxruntime, for the validation rows. */
export class OnnxLogits {
  private readonly layers: LayerTensors;
  private constructor(
    private readonly ort: Ort,
    private readonly session: Ort,
    shapes: ReturnType<typeof layerShapes>,
  ) {
    this.layers = new LayerTensors(shapes);
  }

  static async create(dim: number, hidden: readonly number[], classCount: number, threads: number): Promise<OnnxLogits | null> {
    const ort = await loadOrt();
    if (!ort) return null;
    return new OnnxLogits(ort, await headSession(ort, hidden.length + 1, false, threads), layerShapes(dim, hidden, classCount));
  }

  async logits(theta: Float64Array, x: Float32Array, rows: number, dim: number): Promise<Float32Array> {
    this.layers.load(theta);
    const feeds = { x: new this.ort.Tensor("float32", x, [rows, dim]), ...this.layers.feeds(this.ort) };
    const outputs = await nativeCall(() => this.session.run(feeds));
    return outputs.logits.data as Float32Array;
  }
}

/** [rows, cols] → [cols, rows], in 64 × 64 tiles so both sides stay in cache. */
function transpose(matrix: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(matrix.length);
  const TILE = 64;
  for (let r0 = 0; r0 < rows; r0 += TILE) {
    for (let c0 = 0; c0 < cols; c0 += TILE) {
      const rEnd = Math.min(rows, r0 + TILE), cEnd = Math.min(cols, c0 + TILE);
      for (let r = r0; r < rEnd; r++) for (let c = c0; c < cEnd; c++) out[c * rows + r] = matrix[r * cols + c]!;
    }
  }
  return out;
}

/**
 * Σ_rows −Σ_c T[r,c]·log softmax(logits[r])_c in float64, and the top-1 correct count (first max wins ties), over
 * every row or over `rows` only.
 */
export function crossEntropySum(logits: Float32Array, targets: Float32Array, labels: Int32Array, classCount: number, rows?: readonly number[]): { lossSum: number; correct: number } {
  let lossSum = 0;
  let correct = 0;
  const count = rows ? rows.length : labels.length;
  for (let position = 0; position < count; position++) {
    const r = rows ? rows[position]! : position;
    const base = r * classCount;
    let max = -Infinity;
    let argmax = 0;
    for (let c = 0; c < classCount; c++) {
      if (logits[base + c]! > max) (max = logits[base + c]!), (argmax = c);
    }
    if (argmax === labels[r]) correct++;
    let sumExp = 0;
    for (let c = 0; c < classCount; c++) sumExp += Math.exp(logits[base + c]! - max);
    const logSumExp = max + Math.log(sumExp);
    for (let c = 0; c < classCount; c++) lossSum -= targets[base + c]! * (logits[base + c]! - logSumExp);
  }
  return { lossSum, correct };
}
