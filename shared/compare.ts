/**
 * "Is model B better than model A?" on the validation images both were evaluated on: the paired counts and the
 * exact McNemar test (API.md `GET /v1/models/compare`). Pure TypeScript: the Worker runs it on the two models'
 * `evaluation.json` artifacts.
 */

/** One validation image as a model saw it (a row of the `evaluation.json` artifact). */
export interface EvaluatedImage {
  sha256: string;
  /** True label. */
  label: string;
  predicted: string;
}

export interface ModelComparison {
  /** Images both models were evaluated on, with the same true label. */
  n: number;
  accuracy_a: number;
  accuracy_b: number;
  only_a_right: number;
  only_b_right: number;
  both_right: number;
  both_wrong: number;
  /** Two-sided exact McNemar p-value (1 when the models never disagree). */
  p_value: number;
}

/**
 * Two-sided exact McNemar test: under H0 each discordant pair is equally likely to favour either model, so the
 * smaller discordant count follows Binomial(b + c, 1/2); p = min(1, 2 · P(X ≤ min(b, c))). Summed in log space so
 * that b + c in the tens of thousands neither overflows nor underflows.
 *
 * @param b pairs only model A got right.
 * @param c pairs only model B got right.
 */
export function mcnemarExactPValue(b: number, c: number): number {
  if (!Number.isInteger(b) || !Number.isInteger(c) || b < 0 || c < 0) throw new RangeError(`counts must be non-negative integers, got ${b} and ${c}`);
  const n = b + c;
  if (n === 0) return 1;
  const k = Math.min(b, c);
  const logHalfPowN = -n * Math.LN2;
  let logChoose = 0; // log C(n, 0)
  let tail = 0;
  for (let i = 0; i <= k; i++) {
    if (i > 0) logChoose += Math.log(n - i + 1) - Math.log(i);
    tail += Math.exp(logChoose + logHalfPowN);
  }
  return Math.min(1, 2 * tail);
}

/** Pairs the two models' evaluations by image (sha256) and counts agreements; images only one model saw are left out. */
export function compareEvaluations(a: readonly EvaluatedImage[], b: readonly EvaluatedImage[]): ModelComparison {
  const byShaB = new Map(b.map((image) => [image.sha256, image]));
  let onlyA = 0, onlyB = 0, both = 0, neither = 0;
  for (const imageA of a) {
    const imageB = byShaB.get(imageA.sha256);
    if (!imageB || imageB.label !== imageA.label) continue;
    const rightA = imageA.predicted === imageA.label;
    const rightB = imageB.predicted === imageB.label;
    if (rightA && rightB) both++;
    else if (rightA) onlyA++;
    else if (rightB) onlyB++;
    else neither++;
  }
  const n = onlyA + onlyB + both + neither;
  return {
    n,
    accuracy_a: n === 0 ? 0 : (both + onlyA) / n,
    accuracy_b: n === 0 ? 0 : (both + onlyB) / n,
    only_a_right: onlyA,
    only_b_right: onlyB,
    both_right: both,
    both_wrong: neither,
    p_value: mcnemarExactPValue(onlyA, onlyB),
  };
}
