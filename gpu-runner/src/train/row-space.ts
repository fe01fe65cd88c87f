/**
 * Fitting a head in the span of its training rows when there are fewer rows than features (flowers5: 240 to 300
 * rows of 1,152 features; most user datasets below a thousand images).
 *
 * Why it is the same fit: the first layer's kernel W enters the objective only through X·Wᵀ and the L2 term
 * (λ/2)‖W‖². Write W = B·Qᵀ + W⊥ with Q an orthonormal basis of the rows' span (d × r, r ≤ n): the data term does
 * not see W⊥, the penalty only grows with it, and its gradient is λ·W⊥, so from a start with W⊥ = 0 (a linear head
 * starts at zero; an MLP here draws its start in the span) every L-BFGS iterate keeps W⊥ = 0. In coordinates
 * Z = X·Q (n × r) the objective is the same function of B as it was of W (‖B‖ = ‖W‖), and L-BFGS, built from dot
 * products only, takes the same steps. So the head is the same, up to rounding, at r/d of the cost per pass:
 * measured in bench/train/cv-search.ts.
 *
 * How: the Gram matrix K = X·Xᵀ (n²·d/2 multiply-adds, float64), a Cholesky factorisation that skips rows already
 * (nearly) in the span of earlier ones (standardised rows are centred, so at least one always is), giving
 * Z = the factor's rows and the basis as combinations of the kept rows: Q = X_keptᵀ · L_kept⁻ᵀ. New rows are
 * projected with one Gram row and a triangular solve; the trained kernel B is lifted back to W = B·Qᵀ.
 */

/** Below this pivot (relative to the largest squared row norm) a row counts as lying in the span of earlier ones. */
const PIVOT_TOLERANCE = 1e-10;

export interface RowSpace {
  /** r: the dimension of the span. */
  rank: number;
  /** The training rows in span coordinates, shape [n, rank]. */
  coordinates: Float32Array;
  /** Rows [count, d] (same standardisation as the training rows) → their coordinates [count, rank]. */
  project(rows: Float32Array, count: number): Float32Array;
  /** A kernel [units, rank] in span coordinates (unit-major, float64) → the same map on the features, [units, d]. */
  lift(kernel: Float64Array, units: number): Float64Array;
}

/** Fitting in the span pays when it has at most this fraction of the features' dimensions (n rows span ≤ n). */
const MAX_SPAN_FRACTION = 0.75;

export const isSpanWorthIt = (rows: number, dim: number): boolean => rows < MAX_SPAN_FRACTION * dim;

/**
 * The span of `x`'s rows, or null when it would not save work (see `isSpanWorthIt`).
 * @param x shape [n, d], row-major.
 */
export function rowSpaceOf(x: Float32Array, n: number, d: number): RowSpace | null {
  if (!isSpanWorthIt(n, d)) return null;
  const gram = gramMatrix(x, n, d);
  let largest = 0;
  for (let i = 0; i < n; i++) largest = Math.max(largest, gram[i * n + i]!);
  // factor[i, c]: row i's coordinate on basis vector c; pivots[c]: the row that opened basis vector c.
  const factor = new Float64Array(n * n);
  const pivots: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = pivots.length;
    // Coordinates of row i on the basis vectors so far, then what is left of it.
    let residual = gram[i * n + i]!;
    for (let col = 0; col < c; col++) {
      const p = pivots[col]!;
      let value = gram[i * n + p]!;
      for (let k = 0; k < col; k++) value -= factor[i * n + k]! * factor[p * n + k]!;
      value /= factor[p * n + col]!;
      factor[i * n + col] = value;
      residual -= value * value;
    }
    if (residual > PIVOT_TOLERANCE * largest) {
      factor[i * n + c] = Math.sqrt(residual);
      pivots.push(i);
    }
  }
  const rank = pivots.length;
  const coordinates = new Float32Array(n * rank);
  for (let i = 0; i < n; i++) for (let c = 0; c < rank; c++) coordinates[i * rank + c] = factor[i * n + c]!;
  // L_kept: the factor's pivot rows, [rank, rank] lower triangular.
  const kept = new Float64Array(rank * rank);
  pivots.forEach((p, row) => {
    for (let c = 0; c <= row; c++) kept[row * rank + c] = factor[p * n + c]!;
  });
  const keptRows = new Float32Array(rank * d);
  pivots.forEach((p, row) => keptRows.set(x.subarray(p * d, (p + 1) * d), row * d));

  return {
    rank,
    coordinates,
    project(rows, count) {
      const out = new Float32Array(count * rank);
      const z = new Float64Array(rank);
      const dots = crossProducts(rows, count, keptRows, rank, d);
      for (let r = 0; r < count; r++) {
        // z = L_kept⁻¹ · (X_kept · row): forward substitution over the row's dot products with the kept rows.
        for (let c = 0; c < rank; c++) {
          let value = dots[r * rank + c]!;
          for (let k = 0; k < c; k++) value -= kept[c * rank + k]! * z[k]!;
          z[c] = value / kept[c * rank + c]!;
          out[r * rank + c] = z[c]!;
        }
      }
      return out;
    },
    lift(kernel, units) {
      // G[u] = L_kept⁻ᵀ · B[u] (back substitution, reading L_kept by columns as rows of its transpose), then
      // W = G · X_kept: two units × two kept rows per inner loop, so each load feeds two multiply-adds.
      const keptT = new Float64Array(rank * rank);
      for (let row = 0; row < rank; row++) for (let c = 0; c <= row; c++) keptT[c * rank + row] = kept[row * rank + c]!;
      const rowWeights = new Float64Array(units * rank);
      for (let u = 0; u < units; u++) {
        const g = u * rank;
        for (let p = rank - 1; p >= 0; p--) {
          const column = p * rank;
          let value = kernel[g + p]!;
          for (let k = p + 1; k < rank; k++) value -= keptT[column + k]! * rowWeights[g + k]!;
          rowWeights[g + p] = value / keptT[column + p]!;
        }
      }
      const out = new Float64Array(units * d);
      for (let u = 0; u < units; u += 2) {
        const u1 = Math.min(u + 1, units - 1);
        const w0 = u * d;
        const w1 = u1 * d;
        for (let p = 0; p < rank; p += 2) {
          const p1 = Math.min(p + 1, rank - 1);
          // An odd count pairs the last row with itself at weight 0.
          const same = p1 === p;
          const g00 = rowWeights[u * rank + p]!, g01 = same ? 0 : rowWeights[u * rank + p1]!;
          const g10 = u1 === u ? 0 : rowWeights[u1 * rank + p]!, g11 = u1 === u || same ? 0 : rowWeights[u1 * rank + p1]!;
          const b0 = p * d;
          const b1 = p1 * d;
          for (let k = 0; k < d; k++) {
            const x0 = keptRows[b0 + k]!, x1 = keptRows[b1 + k]!;
            out[w0 + k] += g00 * x0 + g01 * x1;
            out[w1 + k] += g10 * x0 + g11 * x1;
          }
        }
      }
      return out;
    },
  };
}

/** x·xᵀ for x [n, d], float64, symmetric. */
function gramMatrix(x: Float32Array, n: number, d: number): Float64Array {
  const gram = crossProducts(x, n, x, n, d, true);
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) gram[i * n + j] = gram[j * n + i]!;
  return gram;
}

/**
 * out[i, j] = a[i] · b[j] for a [rowsA, d] and b [rowsB, d], float64 sums; with `lowerOnly`, only j ≤ i. Two rows
 * of each per inner loop: every load feeds two multiply-adds (as dense-objective.ts's kernels).
 */
function crossProducts(a: Float32Array, rowsA: number, b: Float32Array, rowsB: number, d: number, lowerOnly = false): Float64Array {
  const out = new Float64Array(rowsA * rowsB);
  for (let i = 0; i < rowsA; i += 2) {
    const i1 = Math.min(i + 1, rowsA - 1);
    const a0 = i * d;
    const a1 = i1 * d;
    const last = lowerOnly ? i1 : rowsB - 1;
    for (let j = 0; j <= last; j += 2) {
      const j1 = Math.min(j + 1, rowsB - 1);
      const b0 = j * d;
      const b1 = j1 * d;
      let s00 = 0, s01 = 0, s10 = 0, s11 = 0;
      for (let k = 0; k < d; k++) {
        const x0 = a[a0 + k]!, x1 = a[a1 + k]!;
        const y0 = b[b0 + k]!, y1 = b[b1 + k]!;
        s00 += x0 * y0;
        s01 += x0 * y1;
        s10 += x1 * y0;
        s11 += x1 * y1;
      }
      // Odd counts repeat the last row; writing its (identical) sums twice is harmless.
      out[i * rowsB + j] = s00;
      out[i * rowsB + j1] = s01;
      out[i1 * rowsB + j] = s10;
      out[i1 * rowsB + j1] = s11;
    }
  }
  return out;
}
