/**
 * The honest parts of a model card (shared/metrics.ts): reliability bins that add up to the ECE, and the list of
 * misclassified validation images, most confident mistakes first.
 *
 * Isolation: pure functions over hand-written probabilities.
 */
import { describe, expect, it } from "vitest";
import { CALIBRATION_BIN_COUNT, evaluate, listMisclassified } from "../../shared/metrics";

describe("evaluate: calibration", () => {
  // 4 examples, 2 classes. Top-1 confidences 0.95 (right), 0.9 (wrong), 0.58 (right), 0.55 (right).
  const probabilities = Float32Array.from([0.95, 0.05, 0.9, 0.1, 0.42, 0.58, 0.45, 0.55]);
  const labels = [0, 1, 1, 1];
  const metrics = evaluate(probabilities, 4, 2, labels, ["a", "b"]);

  it("lists the non-empty bins with their count, accuracy and mean confidence", () => {
    // 15 bins of width 1/15: 0.95 → bin 14, 0.9 → bin 13 (0.8667, 0.9333], 0.58 → bin 8 (0.5333, 0.6], 0.55 → bin 8.
    expect(metrics.calibration.map((bin) => Math.round(bin.lower * CALIBRATION_BIN_COUNT))).toEqual([8, 13, 14]);
    const [low, mid, high] = metrics.calibration;
    expect(low).toMatchObject({ count: 2, accuracy: 1 });
    expect(low!.confidence).toBeCloseTo(0.565, 6);
    expect(mid).toMatchObject({ count: 1, accuracy: 0 });
    expect(high).toMatchObject({ count: 1, accuracy: 1 });
  });

  it("reports the ECE as the count-weighted gap of the bins, under both names", () => {
    const expected = (2 / 4) * Math.abs(1 - 0.565) + (1 / 4) * Math.abs(0 - 0.9) + (1 / 4) * Math.abs(1 - 0.95);
    expect(metrics.ece).toBeCloseTo(expected, 6);
    expect(metrics.expected_calibration_error).toBe(metrics.ece);
    expect(metrics.calibration.reduce((sum, bin) => sum + bin.count, 0)).toBe(4);
  });
});

describe("listMisclassified", () => {
  it("lists every wrong top-1 prediction with path, true and predicted label and its probability, most confident first", () => {
    const probabilities = Float32Array.from([0.2, 0.8, 0.7, 0.3, 0.1, 0.9, 0.6, 0.4]);
    const items = [
      { sha256: "aa", path: "cats/a.jpg", label: 0 }, // predicted dog 0.8: wrong
      { sha256: "bb", path: "cats/b.jpg", label: 0 }, // right
      { sha256: "cc", path: "cats/c.jpg", label: 0 }, // predicted dog 0.9: wrong
      { sha256: "dd", path: "dogs/d.jpg", label: 1 }, // predicted cat 0.6: wrong
    ];
    const wrong = listMisclassified(probabilities, items, ["cat", "dog"]);
    expect(wrong.map((w) => w.sha256)).toEqual(["cc", "aa", "dd"]);
    expect(wrong[0]).toMatchObject({ sha256: "cc", path: "cats/c.jpg", label: "cat", predicted: "dog" });
    expect(wrong[0]!.probability).toBeCloseTo(0.9, 6);
  });

  it("is empty when every prediction is right", () => {
    expect(listMisclassified(Float32Array.from([0.9, 0.1]), [{ sha256: "x", path: "a/x.jpg", label: 0 }], ["a", "b"])).toEqual([]);
  });
});
