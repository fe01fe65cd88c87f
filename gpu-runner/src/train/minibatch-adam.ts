/**
 * Mini-batch Adam over onnxruntime's loss-and-gradient graph (onnx-objective.ts), for MLP heads on many rows. It is
 * a stepper with L-BFGS's shape (lbfgs.ts): `step()` is one epoch (a seeded shuffle, then one Adam update per batch),
 * `x` the iterate, and the objective's `lastDataLoss` / `lastCorrect` describe the epoch (means over its batches,
 * measured before each batch's update), so lbfgs-head.ts reports, early-stops and keeps the best epoch the same way.
 *
 * Why: an MLP's full-batch L-BFGS needs 30 to 50 passes over the data to stop (its objective has plateaus), and on
 * 16,000 × 1024 rows with 256 hidden units each pass is about 25 GFLOP. A constant rate (1e-3) with early stopping
 * needed 16 epochs (3.9 s, 86.5% val, against L-BFGS's 46 iterations, 8.6 s, 86.7%); a rate that falls linearly to
 * 0 over a fixed schedule ends in 4 (`npx tsx bench/train/head-speed.ts --sets synthetic20k --heads mlp,linear
 * --solvers lbfgs-onnx2,adam-onnx2`). Peak rates tried, 4 epochs there / 13 epochs (65 batches) on the 6,000-row
 * set of tests/node/head-solver.test.ts, where L-BFGS gives 86.7% / 77.8%: 3e-3 86.4% / 76.3%; 6e-3 86.3% / 77.2%;
 * 1e-2 86.1% / 78.1%. 6e-3 is within a point of L-BFGS on both; the smaller set needs the ADAM_MIN_UPDATES floor
 * (at 3e-3, 20 epochs gave 76.8% and 26 gave 77.3%). Batch sizes tried at a constant rate: 256 rows stopped early
 * at 84.2% (1e-3) or took 11 s (3e-4); 2,048 gave 86.1% (3e-3).
 * Deterministic for a seed: the shuffle is seeded, and onnxruntime's GEMMs give the same sums for the same inputs.
 */
import { createRandom } from "../../../shared/random";
import type { DenseObjectiveInput } from "./dense-objective";
import { OnnxObjective } from "./onnx-objective";

export const ADAM_BATCH_SIZE = 1024;
/** The peak rate; it falls linearly to 0 over the schedule. */
export const ADAM_LEARNING_RATE = 6e-3;
/** Epochs of the schedule, unless that is fewer than `ADAM_MIN_UPDATES` batches. */
export const ADAM_EPOCHS = 4;
/** Updates of the schedule at least: 4 epochs of 4,096 rows are only 16 batches. */
export const ADAM_MIN_UPDATES = 64;
const BETA1 = 0.9;
const BETA2 = 0.999;
const EPSILON = 1e-8;

export class MinibatchAdam {
  /** The current iterate. Read it between steps; do not write it. */
  readonly x: Float64Array;
  /** Mean loss (data term) and correct count over the last epoch's batches. */
  lastDataLoss = NaN;
  lastCorrect = 0;
  private readonly m: Float64Array;
  private readonly v: Float64Array;
  private readonly gradient: Float64Array;
  private t = 0;
  /** Updates in the whole schedule: the rate at update t (from 1) is the peak × (1 - (t - 1) / updates). */
  private readonly updates: number;
  private readonly order: number[];
  private readonly random;

  private constructor(
    private readonly input: DenseObjectiveInput,
    private readonly batch: { x: Float32Array; targets: Float32Array; labels: Int32Array; objective: OnnxObjective },
    private readonly last: { x: Float32Array; targets: Float32Array; labels: Int32Array; objective: OnnxObjective } | null,
    start: Float64Array,
    seed: number,
    private readonly learningRate: number,
    epochs: number | undefined,
  ) {
    const perEpoch = Math.ceil(input.rows / batch.labels.length);
    this.updates = perEpoch * (epochs ?? Math.max(ADAM_EPOCHS, Math.ceil(ADAM_MIN_UPDATES / perEpoch)));
    this.x = Float64Array.from(start);
    this.m = new Float64Array(start.length);
    this.v = new Float64Array(start.length);
    this.gradient = new Float64Array(start.length);
    this.order = Array.from({ length: input.rows }, (_, i) => i);
    this.random = createRandom(seed);
  }

  /**
   * Null when onnxruntime cannot load. `input` holds the standardised training rows; one objective per batch shape
   * (full batches, and the last partial one) reads batch buffers that each step refills.
   */
  static async start(input: DenseObjectiveInput, start: Float64Array, options: { seed: number; threads: number; batchSize?: number; learningRate?: number; epochs?: number }): Promise<MinibatchAdam | null> {
    const size = Math.min(options.batchSize ?? ADAM_BATCH_SIZE, input.rows);
    const buffers = async (rows: number) => {
      const x = new Float32Array(rows * input.dim);
      const targets = new Float32Array(rows * input.classCount);
      const labels = new Int32Array(rows);
      const objective = await OnnxObjective.create({ ...input, x, rows, targets, labels }, options.threads);
      return objective ? { x, targets, labels, objective } : null;
    };
    const batch = await buffers(size);
    if (!batch) return null;
    const remainder = input.rows % size;
    const last = remainder > 0 ? await buffers(remainder) : null;
    return new MinibatchAdam(input, batch, last, start, options.seed, options.learningRate ?? ADAM_LEARNING_RATE, options.epochs);
  }

  /** One epoch. Returns false, doing nothing, once the schedule is done (the rate has reached 0). */
  async step(): Promise<boolean> {
    if (this.t >= this.updates) return false;
    const { dim, classCount, rows } = this.input;
    const order = this.order;
    for (let i = rows - 1; i > 0; i--) {
      const j = this.random.nextInt(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    let lossSum = 0;
    let correct = 0;
    for (let start = 0; start < rows; start += this.batch.labels.length) {
      const slot = start + this.batch.labels.length <= rows ? this.batch : this.last!;
      const count = slot.labels.length;
      for (let k = 0; k < count; k++) {
        const row = order[start + k]!;
        slot.x.set(this.input.x.subarray(row * dim, (row + 1) * dim), k * dim);
        slot.targets.set(this.input.targets.subarray(row * classCount, (row + 1) * classCount), k * classCount);
        slot.labels[k] = this.input.labels[row]!;
      }
      slot.objective.refreshTargets();
      await slot.objective.evaluate(this.x, this.gradient);
      lossSum += slot.objective.lastDataLoss * count;
      correct += slot.objective.lastCorrect;
      this.update();
    }
    this.lastDataLoss = lossSum / rows;
    this.lastCorrect = correct;
    return true;
  }

  private update(): void {
    const rate = this.learningRate * (1 - this.t / this.updates);
    this.t++;
    const correction1 = 1 - BETA1 ** this.t;
    const correction2 = 1 - BETA2 ** this.t;
    const { x, m, v, gradient } = this;
    for (let i = 0; i < x.length; i++) {
      const g = gradient[i]!;
      m[i] = BETA1 * m[i]! + (1 - BETA1) * g;
      v[i] = BETA2 * v[i]! + (1 - BETA2) * g * g;
      x[i]! -= (rate * (m[i]! / correction1)) / (Math.sqrt(v[i]! / correction2) + EPSILON);
    }
  }
}
