/**
 * Mini-batch Adam over onnxruntime's loss-and-gradient graph (onnx-objective.ts), for MLP heads on many rows. It is
 * a stepper with L-BFGS's shape (lbfgs.ts): `step()` is one epoch (a seeded shuffle, then one Adam update per batch),
 * `x` the iterate, and the objective's `lastDataLoss` / `lastCorrect` describe the epoch (means over its batches,
 * measured before each batch's update), so lbfgs-head.ts reports, early-stops and keeps the best epoch the same way.
 *
 * Why: an MLP's full-batch L-BFGS needs 30 to 50 passes over the data to stop (its objective has plateaus), and on
 * 16,000 × 1024 rows with 256 hidden units each pass is about 25 GFLOP. Measured side by side
 * (`npx tsx bench/train/head-speed.ts --sets synthetic20k --heads mlp,linear --solvers lbfgs-onnx2,adam-onnx2`, load 2
 * to 3): L-BFGS 46 iterations, 15.0 s, 86.7% val; Adam 16 epochs, 6.0 s, 86.5% val. Batch size and rate, tried on the
 * same set: 256 rows at 1e-3 stopped after 6 epochs at 84.2%; 256 at 3e-4 took 18 epochs (11 s) for 86.3%; 1,024 at
 * 3e-3 gave 85.0%, 2,048 at 3e-3 86.1%; 1,024 at 1e-3 is the one that matches L-BFGS.
 * Deterministic for a seed: the shuffle is seeded, and onnxruntime's GEMMs give the same sums for the same inputs.
 */
import { createRandom } from "../../../shared/random";
import type { DenseObjectiveInput } from "./dense-objective";
import { OnnxObjective } from "./onnx-objective";

export const ADAM_BATCH_SIZE = 1024;
export const ADAM_LEARNING_RATE = 1e-3;
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
  private readonly order: number[];
  private readonly random;

  private constructor(
    private readonly input: DenseObjectiveInput,
    private readonly batch: { x: Float32Array; targets: Float32Array; labels: Int32Array; objective: OnnxObjective },
    private readonly last: { x: Float32Array; targets: Float32Array; labels: Int32Array; objective: OnnxObjective } | null,
    start: Float64Array,
    seed: number,
    private readonly learningRate: number,
  ) {
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
  static async start(input: DenseObjectiveInput, start: Float64Array, options: { seed: number; threads: number; batchSize?: number; learningRate?: number }): Promise<MinibatchAdam | null> {
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
    return new MinibatchAdam(input, batch, last, start, options.seed, options.learningRate ?? ADAM_LEARNING_RATE);
  }

  /** One epoch. Returns true (an epoch always moves; early stopping decides when to end). */
  async step(): Promise<boolean> {
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
    this.t++;
    const correction1 = 1 - BETA1 ** this.t;
    const correction2 = 1 - BETA2 ** this.t;
    const { x, m, v, gradient } = this;
    for (let i = 0; i < x.length; i++) {
      const g = gradient[i]!;
      m[i] = BETA1 * m[i]! + (1 - BETA1) * g;
      v[i] = BETA2 * v[i]! + (1 - BETA2) * g * g;
      x[i]! -= (this.learningRate * (m[i]! / correction1)) / (Math.sqrt(v[i]! / correction2) + EPSILON);
    }
  }
}
