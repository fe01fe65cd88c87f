/**
 * The full-batch training objective of a head, in plain TypeScript: a dense network (0 to 3 ReLU hidden layers,
 * softmax output) over standardised embeddings, with the label-smoothed, class-weighted cross-entropy of
 * train-head.ts plus an L2 penalty on the kernels:
 *
 *   f(θ) = (1/n) Σᵢ Σ_c −T[i,c] · log softmax(net(xᵢ))_c  +  (λ/2) Σ_layers ‖W‖²
 *
 * where T holds the smoothed one-hot targets times the row's class weight. For a linear head f is convex, so
 * L-BFGS (lbfgs.ts) finds its minimum from zero in a few dozen evaluations.
 *
 * Parameters live in one Float64Array, layer after layer: the kernel unit-major ([units, inputDim], so every
 * product is a dot product over contiguous memory), then the bias. `toDenseLayers` turns that back into the head
 * format ([inputDim, units]). Activations are float32 (the embeddings are), sums and gradients float64. The order
 * of every floating-point operation is fixed, so results are bit-identical between runs.
 */
import type { DenseLayer } from "../../../shared/head";
import type { Objective } from "./lbfgs";

export interface DenseObjectiveInput {
  /** Standardised rows, shape [rows, dim], row-major. */
  x: Float32Array;
  rows: number;
  dim: number;
  /** Loss targets [rows, classCount]: smoothed one-hot × class weight (see buildTargets in train-head.ts). */
  targets: Float32Array;
  /** True class per row, for the accuracy count. */
  labels: Int32Array;
  classCount: number;
  hidden: readonly number[];
  /** λ of the L2 penalty on kernels (biases are not penalised). */
  l2: number;
}

interface LayerShape {
  inputDim: number;
  units: number;
  /** Offset of the kernel [units, inputDim] in θ; the bias [units] follows it. */
  offset: number;
}

export function layerShapes(dim: number, hidden: readonly number[], classCount: number): LayerShape[] {
  const widths = [dim, ...hidden, classCount];
  let offset = 0;
  return widths.slice(1).map((units, index) => {
    const shape = { inputDim: widths[index]!, units, offset };
    offset += units * (widths[index]! + 1);
    return shape;
  });
}

export function parameterCount(dim: number, hidden: readonly number[], classCount: number): number {
  const last = layerShapes(dim, hidden, classCount).at(-1)!;
  return last.offset + last.units * (last.inputDim + 1);
}

/** Head-format layers ([inputDim, units] kernels) → θ. */
export function fromDenseLayers(layers: readonly DenseLayer[]): Float64Array {
  const theta = new Float64Array(layers.reduce((sum, layer) => sum + layer.units * (layer.inputDim + 1), 0));
  let offset = 0;
  for (const { inputDim, units, weights, bias } of layers) {
    for (let u = 0; u < units; u++) for (let i = 0; i < inputDim; i++) theta[offset + u * inputDim + i] = weights[i * units + u]!;
    offset += units * inputDim;
    for (let u = 0; u < units; u++) theta[offset + u] = bias[u]!;
    offset += units;
  }
  return theta;
}

/** θ → head-format layers (float32, [inputDim, units] kernels), ReLU hidden layers and a softmax output. */
export function toDenseLayers(theta: Float64Array, dim: number, hidden: readonly number[], classCount: number): DenseLayer[] {
  const shapes = layerShapes(dim, hidden, classCount);
  return shapes.map(({ inputDim, units, offset }, index): DenseLayer => {
    const weights = new Float32Array(inputDim * units);
    for (let u = 0; u < units; u++) for (let i = 0; i < inputDim; i++) weights[i * units + u] = theta[offset + u * inputDim + i]!;
    const bias = Float32Array.from(theta.subarray(offset + units * inputDim, offset + units * (inputDim + 1)));
    return { type: "dense", inputDim, units, activation: index === shapes.length - 1 ? "softmax" : "relu", weights, bias };
  });
}

/** Rows per block: activations of a block stay in cache between the forward and the backward pass. */
const BLOCK_ROWS = 64;

export class DenseObjective implements Objective {
  readonly dimension: number;
  /** Data loss (without the L2 term) and correct top-1 count at the last evaluated θ. */
  lastDataLoss = NaN;
  lastCorrect = 0;
  private readonly shapes: LayerShape[];
  /** Per layer: activations entering it for one block (layer 0 reads `x` directly). */
  private readonly activations: Float32Array[];
  /** Per layer: d loss / d pre-activation output, one block. */
  private readonly deltas: Float64Array[];

  constructor(private readonly input: DenseObjectiveInput) {
    const { x, rows, dim, targets, labels, classCount, hidden } = input;
    if (x.length !== rows * dim) throw new RangeError(`x has ${x.length} values, expected ${rows} × ${dim}`);
    if (targets.length !== rows * classCount || labels.length !== rows) throw new RangeError("targets/labels do not match rows × classCount");
    this.shapes = layerShapes(dim, hidden, classCount);
    this.dimension = parameterCount(dim, hidden, classCount);
    this.activations = this.shapes.map((shape) => new Float32Array(BLOCK_ROWS * shape.units));
    this.deltas = this.shapes.map((shape) => new Float64Array(BLOCK_ROWS * shape.units));
  }

  evaluate(theta: Float64Array, gradient: Float64Array): number {
    const { x, rows, dim, targets, labels, classCount, l2 } = this.input;
    const shapes = this.shapes;
    const last = shapes.length - 1;
    gradient.fill(0);
    let lossSum = 0;
    let correct = 0;
    const logits = this.activations[last]!;
    for (let start = 0; start < rows; start += BLOCK_ROWS) {
      const count = Math.min(BLOCK_ROWS, rows - start);
      // Forward.
      for (let layer = 0; layer <= last; layer++) {
        const { inputDim, units, offset } = shapes[layer]!;
        const source = layer === 0 ? x : this.activations[layer - 1]!;
        const sourceOffset = layer === 0 ? start * dim : 0;
        denseForward(source, sourceOffset, count, inputDim, theta, offset, units, this.activations[layer]!, layer < last);
      }
      // Softmax cross-entropy; d loss / d logits into deltas[last].
      const delta = this.deltas[last]!;
      for (let r = 0; r < count; r++) {
        const row = start + r;
        const base = r * classCount;
        let max = -Infinity;
        let argmax = 0;
        for (let c = 0; c < classCount; c++) {
          const z = logits[base + c]!;
          if (z > max) (max = z), (argmax = c);
        }
        if (argmax === labels[row]) correct++;
        let sumExp = 0;
        for (let c = 0; c < classCount; c++) sumExp += Math.exp(logits[base + c]! - max);
        const logSumExp = max + Math.log(sumExp);
        let weight = 0;
        for (let c = 0; c < classCount; c++) {
          const t = targets[row * classCount + c]!;
          weight += t;
          lossSum -= t * (logits[base + c]! - logSumExp);
        }
        for (let c = 0; c < classCount; c++) {
          const p = Math.exp(logits[base + c]! - logSumExp);
          delta[base + c] = (weight * p - targets[row * classCount + c]!) / rows;
        }
      }
      // Backward.
      for (let layer = last; layer >= 0; layer--) {
        const { inputDim, units, offset } = shapes[layer]!;
        const source = layer === 0 ? x : this.activations[layer - 1]!;
        const sourceOffset = layer === 0 ? start * dim : 0;
        denseBackwardWeights(source, sourceOffset, count, inputDim, this.deltas[layer]!, units, gradient, offset);
        if (layer > 0) denseBackwardInput(this.deltas[layer]!, count, units, theta, offset, inputDim, this.activations[layer - 1]!, this.deltas[layer - 1]!);
      }
    }
    this.lastDataLoss = lossSum / rows;
    this.lastCorrect = correct;
    let penalty = 0;
    if (l2 > 0) {
      for (const { inputDim, units, offset } of shapes) {
        for (let i = offset, end = offset + units * inputDim; i < end; i++) {
          const w = theta[i]!;
          penalty += w * w;
          gradient[i] += l2 * w;
        }
      }
    }
    return this.lastDataLoss + 0.5 * l2 * penalty;
  }
}

/**
 * Logits of `rows` rows of `x` ([rows, dim], standardised) through the network θ, float32 [rows, classCount].
 * Same arithmetic as the objective's forward pass.
 */
export function denseLogits(theta: Float64Array, x: Float32Array, rows: number, dim: number, hidden: readonly number[], classCount: number): Float32Array {
  const shapes = layerShapes(dim, hidden, classCount);
  const out = new Float32Array(rows * classCount);
  const buffers = shapes.map((shape) => new Float32Array(BLOCK_ROWS * shape.units));
  for (let start = 0; start < rows; start += BLOCK_ROWS) {
    const count = Math.min(BLOCK_ROWS, rows - start);
    shapes.forEach(({ inputDim, units, offset }, layer) => {
      const source = layer === 0 ? x : buffers[layer - 1]!;
      denseForward(source, layer === 0 ? start * dim : 0, count, inputDim, theta, offset, units, buffers[layer]!, layer < shapes.length - 1);
    });
    out.set(buffers.at(-1)!.subarray(0, count * classCount), start * classCount);
  }
  return out;
}

/**
 * out[r, u] = b[u] + Σ_i source[r, i] · W[u, i] (optionally ReLU), for `count` rows. Two rows × two units per
 * inner loop: each load feeds two multiply-adds, about 1.6x faster than one dot product at a time in V8.
 */
function denseForward(source: Float32Array, sourceOffset: number, count: number, inputDim: number, theta: Float64Array, offset: number, units: number, out: Float32Array, relu: boolean): void {
  const biasOffset = offset + units * inputDim;
  let r = 0;
  for (; r + 1 < count; r += 2) {
    const a0 = sourceOffset + r * inputDim;
    const a1 = a0 + inputDim;
    let u = 0;
    for (; u + 1 < units; u += 2) {
      const w0 = offset + u * inputDim;
      const w1 = w0 + inputDim;
      let s00 = 0, s01 = 0, s10 = 0, s11 = 0;
      for (let i = 0; i < inputDim; i++) {
        const x0 = source[a0 + i]!, x1 = source[a1 + i]!;
        const v0 = theta[w0 + i]!, v1 = theta[w1 + i]!;
        s00 += x0 * v0;
        s01 += x0 * v1;
        s10 += x1 * v0;
        s11 += x1 * v1;
      }
      const b0 = theta[biasOffset + u]!, b1 = theta[biasOffset + u + 1]!;
      out[r * units + u] = activate(s00 + b0, relu);
      out[r * units + u + 1] = activate(s01 + b1, relu);
      out[(r + 1) * units + u] = activate(s10 + b0, relu);
      out[(r + 1) * units + u + 1] = activate(s11 + b1, relu);
    }
    for (; u < units; u++) {
      const w0 = offset + u * inputDim;
      let s0 = 0, s1 = 0;
      for (let i = 0; i < inputDim; i++) {
        const v = theta[w0 + i]!;
        s0 += source[a0 + i]! * v;
        s1 += source[a1 + i]! * v;
      }
      out[r * units + u] = activate(s0 + theta[biasOffset + u]!, relu);
      out[(r + 1) * units + u] = activate(s1 + theta[biasOffset + u]!, relu);
    }
  }
  for (; r < count; r++) {
    const a0 = sourceOffset + r * inputDim;
    for (let u = 0; u < units; u++) {
      const w0 = offset + u * inputDim;
      let s = 0;
      for (let i = 0; i < inputDim; i++) s += source[a0 + i]! * theta[w0 + i]!;
      out[r * units + u] = activate(s + theta[biasOffset + u]!, relu);
    }
  }
}

function activate(value: number, relu: boolean): number {
  return relu && value < 0 ? 0 : value;
}

/**
 * gradient W[u, :] += Σ_r delta[r, u] · source[r, :], gradient b[u] += Σ_r delta[r, u]. Four rows per pass, so each
 * load and store of the gradient row carries four multiply-adds.
 */
function denseBackwardWeights(source: Float32Array, sourceOffset: number, count: number, inputDim: number, delta: Float64Array, units: number, gradient: Float64Array, offset: number): void {
  const biasOffset = offset + units * inputDim;
  for (let u = 0; u < units; u++) {
    const g0 = offset + u * inputDim;
    let r = 0;
    for (; r + 3 < count; r += 4) {
      const d0 = delta[r * units + u]!, d1 = delta[(r + 1) * units + u]!, d2 = delta[(r + 2) * units + u]!, d3 = delta[(r + 3) * units + u]!;
      gradient[biasOffset + u] += d0 + d1 + d2 + d3;
      if (d0 === 0 && d1 === 0 && d2 === 0 && d3 === 0) continue;
      const a0 = sourceOffset + r * inputDim;
      const a1 = a0 + inputDim, a2 = a1 + inputDim, a3 = a2 + inputDim;
      for (let i = 0; i < inputDim; i++) gradient[g0 + i] += d0 * source[a0 + i]! + d1 * source[a1 + i]! + d2 * source[a2 + i]! + d3 * source[a3 + i]!;
    }
    for (; r < count; r++) {
      const d0 = delta[r * units + u]!;
      gradient[biasOffset + u] += d0;
      if (d0 === 0) continue;
      const a0 = sourceOffset + r * inputDim;
      for (let i = 0; i < inputDim; i++) gradient[g0 + i] += d0 * source[a0 + i]!;
    }
  }
}

/** previousDelta[r, i] = (Σ_u delta[r, u] · W[u, i]) where the ReLU was active (activation > 0), else 0. */
function denseBackwardInput(delta: Float64Array, count: number, units: number, theta: Float64Array, offset: number, inputDim: number, activation: Float32Array, previousDelta: Float64Array): void {
  previousDelta.fill(0, 0, count * inputDim);
  for (let r = 0; r < count; r++) {
    const p0 = r * inputDim;
    for (let u = 0; u < units; u++) {
      const d = delta[r * units + u]!;
      if (d === 0) continue;
      const w0 = offset + u * inputDim;
      for (let i = 0; i < inputDim; i++) previousDelta[p0 + i] += d * theta[w0 + i]!;
    }
    for (let i = 0; i < inputDim; i++) if (!(activation[p0 + i]! > 0)) previousDelta[p0 + i] = 0;
  }
}
