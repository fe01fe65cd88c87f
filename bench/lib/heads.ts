/** Heads for benchmarks: deterministic weights, no training. */
import type { Head } from "../../shared/head";

/** A standardised linear softmax head over `dim`-d embeddings with `classes` labels, weights from a seeded LCG. */
export function seededHead(dim: number, classes: number, seed: number): Head {
  let state = seed;
  const next = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 31 - 1);
  return {
    inputDim: dim,
    labels: Array.from({ length: classes }, (_, i) => `label_${i}`),
    standardize: { mean: Float32Array.from({ length: dim }, () => 0.5 + 0.3 * next()), std: Float32Array.from({ length: dim }, () => 0.6 + 0.3 * next()) },
    layers: [{ type: "dense", inputDim: dim, units: classes, activation: "softmax", weights: Float32Array.from({ length: dim * classes }, () => next() * 0.08), bias: new Float32Array(classes) }],
  };
}
