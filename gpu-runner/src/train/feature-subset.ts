/**
 * Feature-layer combinations as `auto` candidates. An embedding of several feature layers is their pooled outputs
 * concatenated (conv_pw_9 then conv_pw_13 for the default backbone: 384 + 768 values), so a head on a subset of the
 * layers is a head on some column ranges. It is trained on those columns and stored as a head on the whole
 * embedding whose first layer ignores the rest (zero weights, standardisation mean 0 and std 1 there): the edge,
 * the bundle and the embedding cache stay exactly as they are, and the backbone still computes every layer.
 */
import type { Head } from "../../../shared/head";

/** Some of the embedding's feature layers, as column ranges `[start, end)` of the embedding, in order. */
export interface FeatureSubset {
  layers: string[];
  ranges: Array<[number, number]>;
}

/**
 * The proper, non-empty subsets worth trying: each layer alone (with 2 layers that is every combination; with more,
 * pairs and larger sets would multiply the grid for little). Empty when the channels do not add up to `dim` (a
 * pooling that doubles the columns, an unknown layout) or there is a single layer.
 */
export function featureSubsets(layers: readonly string[], channels: readonly number[] | undefined, dim: number): FeatureSubset[] {
  if (!channels || channels.length !== layers.length || layers.length < 2 || channels.reduce((a, b) => a + b, 0) !== dim) return [];
  const starts = channels.map((_, i) => channels.slice(0, i).reduce((a, b) => a + b, 0));
  return layers.map((layer, i) => ({ layers: [layer], ranges: [[starts[i]!, starts[i]! + channels[i]!]] }));
}

export const subsetWidth = (subset: FeatureSubset): number => subset.ranges.reduce((sum, [start, end]) => sum + end - start, 0);

/**
 * The subset's columns of every row, shape [rows, width], on a SharedArrayBuffer (training threads read it as is).
 * @param embeddings shape [rows, dim].
 */
export function selectColumns(embeddings: Float32Array, dim: number, subset: FeatureSubset): Float32Array {
  const rows = embeddings.length / dim;
  const width = subsetWidth(subset);
  const out = new Float32Array(new SharedArrayBuffer(rows * width * 4));
  for (let row = 0; row < rows; row++) {
    let at = row * width;
    for (const [start, end] of subset.ranges) {
      out.set(embeddings.subarray(row * dim + start, row * dim + end), at);
      at += end - start;
    }
  }
  return out;
}

/** A head trained on the subset's columns → the same classifier on the whole `dim`-value embedding. */
export function expandHead(head: Head, subset: FeatureSubset, dim: number): Head {
  const first = head.layers[0]!;
  const units = first.units;
  const weights = new Float32Array(dim * units);
  const mean = new Float32Array(dim);
  const std = new Float32Array(dim).fill(1);
  let from = 0;
  for (const [start, end] of subset.ranges) {
    for (let column = start; column < end; column++, from++) {
      weights.set(first.weights.subarray(from * units, (from + 1) * units), column * units);
      if (head.standardize) {
        mean[column] = head.standardize.mean[from]!;
        std[column] = head.standardize.std[from]!;
      }
    }
  }
  return {
    ...head,
    inputDim: dim,
    standardize: head.standardize ? { mean, std } : null,
    layers: [{ ...first, inputDim: dim, weights }, ...head.layers.slice(1)],
  };
}
