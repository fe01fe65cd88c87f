/**
 * Classification metrics over predicted probabilities, shaped like `modelMetricsSchema` in ./schemas.
 * Pure TypeScript and zero-division safe: a class nobody predicted has precision 0, a class with no examples has
 * recall 0, and an empty evaluation set gives zeros rather than NaN (NaN does not survive JSON).
 */

export interface PerClassMetrics {
  label: string;
  precision: number;
  recall: number;
  f1: number;
  /** Number of examples whose true class is this one. */
  support: number;
}

export interface ClassificationMetrics {
  /** Share of examples whose most probable class (ties → lower index) is the true one. */
  accuracy: number;
  /** Unweighted mean of the per-class F1 scores over classes with support > 0 (0 when there are none). */
  macro_f1: number;
  per_class: PerClassMetrics[];
  /** confusion_matrix[trueClass][predictedClass] = count. */
  confusion_matrix: number[][];
  /** Expected calibration error over `CALIBRATION_BIN_COUNT` equal-width bins of top-1 confidence. */
  expected_calibration_error: number;
  /** The same number under the name API.md gives it. */
  ece: number;
  /** Reliability diagram: the non-empty bins of top-1 confidence, lowest first. */
  calibration: CalibrationBin[];
  /** Mean cross-entropy −log p(true class), with p clamped to ≥ `PROBABILITY_FLOOR`. */
  loss: number;
  /** Number of examples evaluated. */
  count: number;
}

/** One reliability bin: examples whose top-1 confidence lies in (lower, upper]. */
export interface CalibrationBin {
  lower: number;
  upper: number;
  count: number;
  /** Share of the bin's examples predicted correctly. */
  accuracy: number;
  /** Mean top-1 confidence in the bin. */
  confidence: number;
}

/** 15 bins, as in Guo et al., "On Calibration of Modern Neural Networks" (2017), so numbers compare with papers. */
export const CALIBRATION_BIN_COUNT = 15;
/** Keras's epsilon: a confident mistake costs at most −log(1e-7) ≈ 16.1 instead of Infinity. */
export const PROBABILITY_FLOOR = 1e-7;

/**
 * Scores predicted probabilities against true labels.
 *
 * ECE: each example falls in the bin (b/15, (b+1)/15] holding its top-1 confidence (confidence 0 goes to bin 0);
 * ECE = Σ_bins (bin size / n) · |accuracy in bin − mean confidence in bin|.
 *
 * @param probabilities shape [n, classCount], row-major (e.g. `applyHead` output).
 * @param n number of examples.
 * @param classCount number of classes.
 * @param trueLabels true class index per example, shape [n], each in [0, classCount).
 * @param labelNames class names, shape [classCount].
 */
export function evaluate(
  probabilities: Float32Array | Float64Array,
  n: number,
  classCount: number,
  trueLabels: Int32Array | readonly number[],
  labelNames: readonly string[],
): ClassificationMetrics {
  if (!Number.isInteger(classCount) || classCount < 1) throw new RangeError(`classCount must be a positive integer, got ${classCount}`);
  if (probabilities.length !== n * classCount) {
    throw new RangeError(`probabilities has ${probabilities.length} values, expected n × classCount = ${n} × ${classCount}`);
  }
  if (trueLabels.length !== n) throw new RangeError(`trueLabels has ${trueLabels.length} values, expected n = ${n}`);
  if (labelNames.length !== classCount) throw new RangeError(`labelNames has ${labelNames.length} names, expected classCount = ${classCount}`);

  const confusion = Array.from({ length: classCount }, () => new Array<number>(classCount).fill(0));
  const binCount = new Array<number>(CALIBRATION_BIN_COUNT).fill(0);
  const binCorrect = new Array<number>(CALIBRATION_BIN_COUNT).fill(0);
  const binConfidence = new Array<number>(CALIBRATION_BIN_COUNT).fill(0);
  let correct = 0;
  let lossSum = 0;

  for (let row = 0; row < n; row++) {
    const truth = trueLabels[row]!;
    if (!Number.isInteger(truth) || truth < 0 || truth >= classCount) {
      throw new RangeError(`trueLabels[${row}] must be an integer in [0, ${classCount}), got ${truth}`);
    }
    const start = row * classCount;
    let predicted = 0;
    for (let c = 1; c < classCount; c++) if (probabilities[start + c]! > probabilities[start + predicted]!) predicted = c;
    const confidence = probabilities[start + predicted]!;
    const isCorrect = predicted === truth;

    confusion[truth]![predicted] += 1;
    if (isCorrect) correct += 1;
    lossSum -= Math.log(Math.max(probabilities[start + truth]!, PROBABILITY_FLOOR));

    const bin = Math.min(CALIBRATION_BIN_COUNT - 1, Math.max(0, Math.ceil(confidence * CALIBRATION_BIN_COUNT) - 1));
    binCount[bin] += 1;
    binConfidence[bin] += confidence;
    if (isCorrect) binCorrect[bin] += 1;
  }

  let expectedCalibrationError = 0;
  const calibration: CalibrationBin[] = [];
  for (let bin = 0; bin < CALIBRATION_BIN_COUNT; bin++) {
    if (binCount[bin] === 0) continue;
    const accuracy = binCorrect[bin]! / binCount[bin]!;
    const confidence = binConfidence[bin]! / binCount[bin]!;
    expectedCalibrationError += (binCount[bin]! / n) * Math.abs(accuracy - confidence);
    calibration.push({ lower: bin / CALIBRATION_BIN_COUNT, upper: (bin + 1) / CALIBRATION_BIN_COUNT, count: binCount[bin]!, accuracy, confidence });
  }

  const perClass = labelNames.map((label, c): PerClassMetrics => {
    const truePositives = confusion[c]![c]!;
    const support = confusion[c]!.reduce((sum, count) => sum + count, 0);
    const predictedCount = confusion.reduce((sum, row) => sum + row[c]!, 0);
    const precision = safeDivide(truePositives, predictedCount);
    const recall = safeDivide(truePositives, support);
    const f1 = safeDivide(2 * precision * recall, precision + recall);
    return { label, precision, recall, f1, support };
  });
  const supported = perClass.filter((metrics) => metrics.support > 0);

  return {
    accuracy: safeDivide(correct, n),
    macro_f1: safeDivide(supported.reduce((sum, metrics) => sum + metrics.f1, 0), supported.length),
    per_class: perClass,
    confusion_matrix: confusion,
    expected_calibration_error: expectedCalibrationError,
    ece: expectedCalibrationError,
    calibration,
    loss: safeDivide(lossSum, n),
    count: n,
  };
}

function safeDivide(numerator: number, denominator: number): number {
  return denominator === 0 ? 0 : numerator / denominator;
}

/** A validation image the model got wrong (API.md: `metrics.misclassified`). */
export interface Misclassified {
  sha256: string;
  path: string;
  /** The true label. */
  label: string;
  predicted: string;
  /** The model's probability of `predicted`. */
  probability: number;
}

/**
 * Every example whose top-1 prediction (ties → lower index, as `evaluate`) is not its label, most confident mistakes
 * first (ties by sha256, so the order is stable).
 *
 * @param probabilities shape [items.length, labelNames.length].
 */
export function listMisclassified(
  probabilities: Float32Array | Float64Array,
  items: ReadonlyArray<{ sha256: string; path: string; label: number }>,
  labelNames: readonly string[],
): Misclassified[] {
  const classCount = labelNames.length;
  const out: Misclassified[] = [];
  items.forEach((item, row) => {
    let predicted = 0;
    for (let c = 1; c < classCount; c++) if (probabilities[row * classCount + c]! > probabilities[row * classCount + predicted]!) predicted = c;
    if (predicted !== item.label) {
      out.push({ sha256: item.sha256, path: item.path, label: labelNames[item.label]!, predicted: labelNames[predicted]!, probability: probabilities[row * classCount + predicted]! });
    }
  });
  return out.sort((a, b) => b.probability - a.probability || (a.sha256 < b.sha256 ? -1 : a.sha256 > b.sha256 ? 1 : 0));
}
