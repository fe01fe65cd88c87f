/** The dashboard's data shaping (dashboard/src/shaping.ts): what its charts and tables draw from API answers. */
import { describe, expect, it } from "vitest";
import {
  calibrationError, curvesFromEpochs, describeProgress, formatBytes, heatmapFromMatrix, imagesForCell, labelBars, rate, reliabilityBins,
} from "../../dashboard/src/shaping";

const epoch = (n: number, v = n / 10) => ({ epoch: n, train_loss: 1 - v, val_loss: 1.1 - v, train_accuracy: v, val_accuracy: v - 0.05 });

describe("curves from epoch events", () => {
  it("aligns the four series on the epochs, in order", () => {
    const c = curvesFromEpochs([epoch(1), epoch(2), epoch(3)]);
    expect(c.epoch).toEqual([1, 2, 3]);
    expect(c.trainLoss).toEqual([0.9, 0.8, 1 - 0.3]);
    expect(c.valAccuracy.map((v) => Number(v!.toFixed(2)))).toEqual([0.05, 0.15, 0.25]);
  });

  it("sorts epochs that arrive out of order and keeps the last report of a repeated epoch (a resumed stream, a retried attempt)", () => {
    const c = curvesFromEpochs([epoch(2), epoch(1), epoch(3), { ...epoch(2), train_loss: 0.123 }]);
    expect(c.epoch).toEqual([1, 2, 3]);
    expect(c.trainLoss[1]).toBe(0.123);
  });

  it("turns missing or non-finite values into gaps (null), never zeros, and drops events without an epoch", () => {
    const c = curvesFromEpochs([{ epoch: 1, train_loss: 0.5 }, { epoch: 2, train_loss: NaN, val_loss: Infinity }, null, { train_loss: 1 } as any]);
    expect(c.epoch).toEqual([1, 2]);
    expect(c.trainLoss).toEqual([0.5, null]);
    expect(c.valLoss).toEqual([null, null]);
  });

  it("is empty for no events", () => {
    expect(curvesFromEpochs([])).toEqual({ epoch: [], trainLoss: [], valLoss: [], trainAccuracy: [], valAccuracy: [] });
  });
});

describe("heat map from a confusion matrix", () => {
  it("colours by the share of the true label's row, with totals and the diagonal marked", () => {
    const h = heatmapFromMatrix([[8, 2], [0, 5]], ["cat", "dog"]);
    expect(h.rowTotals).toEqual([10, 5]);
    expect(h.colTotals).toEqual([8, 7]);
    expect(h.total).toBe(15);
    expect(h.correct).toBe(13);
    expect(h.rows[0][0]).toMatchObject({ count: 8, share: 0.8, correct: true, level: 5 });
    expect(h.rows[0][1]).toMatchObject({ count: 2, share: 0.2, correct: false, level: 2 });
    expect(h.rows[1][0]).toMatchObject({ count: 0, share: 0, level: 0 });
    expect(h.rows[1][1]).toMatchObject({ count: 5, share: 1, level: 5 });
  });

  it("keeps text readable: light text only on the two darkest levels", () => {
    const h = heatmapFromMatrix([[1, 1, 1, 1, 1, 5], [0, 0, 0, 0, 3, 7], [1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]], ["a", "b", "c", "d", "e", "f"]);
    for (const row of h.rows) for (const cell of row) expect(cell.darkText).toBe(cell.level < 4);
    expect(h.rows[0][5]).toMatchObject({ level: 3, darkText: true }); // 5 of 10
    expect(h.rows[1][5]).toMatchObject({ level: 4, darkText: false }); // 7 of 10
    expect(h.rows[2][0].level).toBe(5); // 1 of 1
  });

  it("gives an empty row (a label without validation images) zero shares instead of dividing by zero", () => {
    const h = heatmapFromMatrix([[0, 0], [1, 3]], ["a", "b"]);
    expect(h.rows[0].map((c) => c.share)).toEqual([0, 0]);
  });

  it("refuses a matrix that does not match the labels, or with negative or fractional counts", () => {
    expect(() => heatmapFromMatrix([[1, 2]], ["a", "b"])).toThrow(/1x2, expected 2x2/);
    expect(() => heatmapFromMatrix([[1, 2], [3]], ["a", "b"])).toThrow(/expected 2x2/);
    expect(() => heatmapFromMatrix([[1, -1], [0, 1]], ["a", "b"])).toThrow(/non-negative integers/);
    expect(() => heatmapFromMatrix([[1, 0.5], [0, 1]], ["a", "b"])).toThrow(/non-negative integers/);
  });

  it("finds the misclassified images behind a cell", () => {
    const mis = [
      { sha256: "1", path: "cat/1.png", label: "cat", predicted: "dog", probability: 0.7 },
      { sha256: "2", path: "dog/2.png", label: "dog", predicted: "cat", probability: 0.6 },
    ];
    expect(imagesForCell(mis, ["cat", "dog"], 0, 1).map((m) => m.sha256)).toEqual(["1"]);
    expect(imagesForCell(mis, ["cat", "dog"], 1, 0).map((m) => m.sha256)).toEqual(["2"]);
    expect(imagesForCell(undefined, ["cat", "dog"], 0, 1)).toEqual([]);
  });
});

describe("calibration", () => {
  it("reads bins in either shape, drops empty ones, sorts by confidence", () => {
    const bins = [{ confidence: 0.9, accuracy: 0.8, count: 10 }, { mean_confidence: 0.6, accuracy: 0.7, n: 5 }, { confidence: 0.3, accuracy: 0, count: 0 }];
    expect(reliabilityBins(bins).map((b) => b.confidence)).toEqual([0.6, 0.9]);
    expect(reliabilityBins({ bins }).length).toBe(2);
    expect(reliabilityBins(undefined)).toEqual([]);
  });

  it("takes ece from the card, else computes it from the bins as the count-weighted gap", () => {
    expect(calibrationError({ ece: 0.04 })).toBe(0.04);
    expect(calibrationError({ expected_calibration_error: 0.05 })).toBe(0.05);
    const computed = calibrationError({ calibration: [{ confidence: 0.9, accuracy: 0.8, count: 10 }, { confidence: 0.6, accuracy: 0.7, count: 10 }] });
    expect(computed).toBeCloseTo(0.1, 10);
    expect(calibrationError({})).toBeNull();
  });
});

describe("small formatting helpers", () => {
  it("label bars keep the dataset's label order", () => {
    expect(labelBars([{ name: "b", count: 3, train: 2, val: 1 }, { name: "a", count: 5, train: 5, val: 0 }])).toEqual({ x: [0, 1], names: ["b", "a"], train: [2, 5], val: [1, 0], max: 5 });
  });

  it("bytes, progress and rates in words", () => {
    expect(formatBytes(999)).toBe("999 B");
    expect(formatBytes(1500)).toBe("1.5 KB");
    expect(formatBytes(104_000)).toBe("104 KB");
    expect(formatBytes(2_500_000_000)).toBe("2.5 GB");
    expect(describeProgress({ phase: "embedding", done: 30, total: 120 })).toBe("embedding: 30 of 120 (25%)");
    expect(describeProgress({ phase: null, done: 0, total: 0 })).toBe("waiting for a runner");
    expect(rate({ phase: "embedding", done: 10, at: 1000 }, { phase: "embedding", done: 50, at: 3000 })).toBe(20);
    expect(rate({ phase: "embedding", done: 10, at: 1000 }, { phase: "training", done: 50, at: 3000 })).toBeNull();
  });
});
