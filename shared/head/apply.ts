/** Applying a head to embeddings at the edge and on the runner (plain TypeScript, no tfjs), and top-k. */
import type { Head } from "./format";

/**
 * Class probabilities for a batch of embeddings: standardise, then each dense layer in turn, then softmax.
 *
 * Plain TypeScript with float64 accumulation in a fixed order, so the same inputs give the same bits in Node and in
 * workerd (both V8); the result is rounded to float32 once, at the end.
 *
 * @param embeddings shape [n, inputDim], row-major.
 * @param n number of embeddings.
 * @returns probabilities, shape [n, labels.length], row-major; each row sums to 1 (up to float32 rounding).
 */
export function applyHead(head: Head, embeddings: Float32Array, n: number): Float32Array {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`n must be a non-negative integer, got ${n}`);
  if (embeddings.length !== n * head.inputDim) {
    throw new RangeError(`embeddings has ${embeddings.length} values, expected n × input_dim = ${n} × ${head.inputDim}`);
  }
  const classCount = head.labels.length;
  const probabilities = new Float32Array(n * classCount);
  const widest = Math.max(head.inputDim, ...head.layers.map((layer) => layer.units));
  let current = new Float64Array(widest);
  let next = new Float64Array(widest);

  for (let row = 0; row < n; row++) {
    const rowStart = row * head.inputDim;
    if (head.standardize) {
      const { mean, std } = head.standardize;
      for (let i = 0; i < head.inputDim; i++) current[i] = (embeddings[rowStart + i]! - mean[i]!) / std[i]!;
    } else {
      for (let i = 0; i < head.inputDim; i++) current[i] = embeddings[rowStart + i]!;
    }
    for (const layer of head.layers) {
      const { units, weights, bias } = layer;
      for (let u = 0; u < units; u++) next[u] = bias[u]!;
      // Input-major loop: walks `weights` sequentially, which is what its [inputDim, units] layout is for.
      for (let i = 0; i < layer.inputDim; i++) {
        const value = current[i]!;
        if (value === 0) continue; // common after relu; skipping adds exactly nothing
        const base = i * units;
        for (let u = 0; u < units; u++) next[u] += value * weights[base + u]!;
      }
      if (layer.activation === "relu") {
        for (let u = 0; u < units; u++) if (!(next[u]! > 0)) next[u] = 0;
      } else if (layer.activation === "softmax") {
        softmaxInPlace(next, units);
      }
      [current, next] = [next, current];
    }
    const outStart = row * classCount;
    for (let c = 0; c < classCount; c++) probabilities[outStart + c] = current[c]!;
  }
  return probabilities;
}

/** Softmax of `values[0..count)` in place, shifted by the maximum so exp() cannot overflow. */
function softmaxInPlace(values: Float64Array, count: number): void {
  let max = -Infinity;
  for (let i = 0; i < count; i++) if (values[i]! > max) max = values[i]!;
  let sum = 0;
  for (let i = 0; i < count; i++) {
    const e = Math.exp(values[i]! - max);
    values[i] = e;
    sum += e;
  }
  for (let i = 0; i < count; i++) values[i] = values[i]! / sum;
}

/** One prediction as the API returns it. */
export interface LabelProbability {
  label: string;
  probability: number;
}

/**
 * The `k` most probable labels of one embedding, most probable first; ties go to the lower class index.
 *
 * @param probabilities one row of `applyHead`'s output, shape [labels.length]
 *   (for row r of a batch: `probs.subarray(r * classCount, (r + 1) * classCount)`).
 */
export function topK(probabilities: ArrayLike<number>, k: number, labels: readonly string[]): LabelProbability[] {
  if (probabilities.length !== labels.length) {
    throw new RangeError(`probabilities has ${probabilities.length} values but there are ${labels.length} labels`);
  }
  const order = Array.from({ length: labels.length }, (_, index) => index);
  order.sort((a, b) => probabilities[b]! - probabilities[a]! || a - b);
  return order.slice(0, Math.max(0, Math.min(k, labels.length))).map((index) => ({ label: labels[index]!, probability: probabilities[index]! }));
}
