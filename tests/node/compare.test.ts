/**
 * The exact McNemar test behind GET /v1/models/compare (shared/compare.ts): p-values against hand-computed cases
 * (the binomial tail written out), and the pairing of two models' evaluations by image.
 *
 * Isolation: pure functions; no shared state.
 */
import { describe, expect, it } from "vitest";
import { compareEvaluations, mcnemarExactPValue, type EvaluatedImage } from "../../shared/compare";

describe("mcnemarExactPValue", () => {
  it("is 1 when the models never disagree, and when the disagreements split evenly", () => {
    expect(mcnemarExactPValue(0, 0)).toBe(1);
    expect(mcnemarExactPValue(7, 7)).toBe(1);
    expect(mcnemarExactPValue(1, 0)).toBe(1); // 2 · P(X ≤ 0 | n=1) = 2 · 1/2
  });

  it("matches hand-computed binomial tails", () => {
    expect(mcnemarExactPValue(5, 0)).toBeCloseTo(2 / 32, 15); // 2 · (1/2)^5
    expect(mcnemarExactPValue(0, 6)).toBeCloseTo(2 / 64, 15);
    // n = 13, k = 3: 2 · (C(13,0) + C(13,1) + C(13,2) + C(13,3)) / 2^13 = 2 · (1 + 13 + 78 + 286) / 8192
    expect(mcnemarExactPValue(3, 10)).toBeCloseTo((2 * 378) / 8192, 15);
    expect(mcnemarExactPValue(10, 3)).toBe(mcnemarExactPValue(3, 10));
    expect(mcnemarExactPValue(0, 12)).toBeCloseTo(2 / 4096, 15);
  });

  it("stays finite and accurate for thousands of disagreements (log-space sum)", () => {
    // Python: 2 * sum(comb(230, i) for i in range(101)) / 2**230 = 0.055613577781392386
    expect(mcnemarExactPValue(100, 130)).toBeCloseTo(0.055613577781392386, 12);
    const p = mcnemarExactPValue(5000, 5300);
    expect(p).toBeGreaterThan(0);
    expect(p).toBeLessThan(0.01);
    expect(mcnemarExactPValue(20000, 20000)).toBe(1);
  });

  it("refuses negative or fractional counts", () => {
    expect(() => mcnemarExactPValue(-1, 2)).toThrow(RangeError);
    expect(() => mcnemarExactPValue(1.5, 2)).toThrow(RangeError);
  });
});

describe("compareEvaluations", () => {
  const image = (sha256: string, label: string, predicted: string): EvaluatedImage => ({ sha256, label, predicted });

  it("counts the four cells over the images both models saw, and reports both accuracies", () => {
    const a = [image("1", "x", "x"), image("2", "x", "x"), image("3", "y", "x"), image("4", "y", "x"), image("5", "y", "y"), image("only-a", "x", "x")];
    const b = [image("1", "x", "x"), image("2", "x", "y"), image("3", "y", "y"), image("4", "y", "x"), image("5", "y", "y"), image("only-b", "y", "y")];
    expect(compareEvaluations(a, b)).toEqual({
      n: 5, accuracy_a: 3 / 5, accuracy_b: 3 / 5, only_a_right: 1, only_b_right: 1, both_right: 2, both_wrong: 1, p_value: 1,
    });
  });

  it("leaves out an image whose true label differs between the two evaluations (relabelled between versions)", () => {
    const result = compareEvaluations([image("1", "x", "x")], [image("1", "y", "y")]);
    expect(result.n).toBe(0);
    expect(result.p_value).toBe(1);
  });
});
