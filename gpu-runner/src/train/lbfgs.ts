/**
 * Limited-memory BFGS (Nocedal & Wright, "Numerical Optimization", algorithm 7.4 / 7.5) over a Float64Array of
 * parameters, with a backtracking Armijo line search. No randomness and a fixed order of floating-point operations:
 * the same objective and start point give the same iterates, bit for bit, on every run.
 *
 * It is a stepper rather than a loop, so the caller (head training) can look at every iterate, report it, keep
 * the best one on a validation set and stop early:
 *
 *   const solver = await Lbfgs.start(objective, x0);
 *   while (iterations < max && (await solver.step())) { ... solver.x ... }
 */

/**
 * A smooth function to minimise: writes the gradient at `x` into `gradient` and returns the value. It may answer
 * asynchronously (an objective computed by onnxruntime does).
 */
export interface Objective {
  readonly dimension: number;
  evaluate(x: Float64Array, gradient: Float64Array): number | Promise<number>;
}

export interface LbfgsOptions {
  /** Correction pairs kept (the "m" of L-BFGS). 10 is the usual default; more costs 4·m·n flops per step. */
  memory?: number;
  /** Converged when the gradient's max-norm falls below this. */
  gradientTolerance?: number;
  /** Converged when a step lowers the value by less than this, relative to max(|f|, 1). */
  relativeDecreaseTolerance?: number;
  /** Armijo sufficient-decrease constant c1. */
  armijo?: number;
  /** Step halvings before the line search gives up (then the solver reports convergence). */
  maxBacktracks?: number;
}

export type LbfgsStatus = "running" | "converged" | "line_search_failed";

export class Lbfgs {
  /** The current iterate. Read it between steps; do not write it. */
  readonly x: Float64Array;
  /** Gradient at `x`. */
  readonly gradient: Float64Array;
  /** Objective value at `x`. */
  value = NaN;
  /** Objective evaluations so far (the first one happens in `start`). */
  evaluations = 1;
  status: LbfgsStatus = "running";

  private readonly memory: number;
  private readonly gradientTolerance: number;
  private readonly relativeDecreaseTolerance: number;
  private readonly armijo: number;
  private readonly maxBacktracks: number;
  private readonly s: Float64Array[] = [];
  private readonly y: Float64Array[] = [];
  private readonly rho: number[] = [];
  private readonly direction: Float64Array;
  private readonly trialX: Float64Array;
  private readonly trialGradient: Float64Array;
  private readonly alpha: Float64Array;

  /** Evaluates the objective at `start` and returns a solver ready to `step`. */
  static async start(objective: Objective, start: Float64Array, options: LbfgsOptions = {}): Promise<Lbfgs> {
    const solver = new Lbfgs(objective, start, options);
    solver.value = await objective.evaluate(solver.x, solver.gradient);
    if (!Number.isFinite(solver.value)) throw new RangeError(`the objective is ${solver.value} at the start point`);
    if (maxAbs(solver.gradient) <= solver.gradientTolerance) solver.status = "converged";
    return solver;
  }

  private constructor(
    private readonly objective: Objective,
    start: Float64Array,
    options: LbfgsOptions = {},
  ) {
    const n = objective.dimension;
    if (start.length !== n) throw new RangeError(`start has ${start.length} values, the objective takes ${n}`);
    this.memory = options.memory ?? 10;
    this.gradientTolerance = options.gradientTolerance ?? 1e-6;
    this.relativeDecreaseTolerance = options.relativeDecreaseTolerance ?? 1e-10;
    this.armijo = options.armijo ?? 1e-4;
    this.maxBacktracks = options.maxBacktracks ?? 30;
    this.x = Float64Array.from(start);
    this.gradient = new Float64Array(n);
    this.direction = new Float64Array(n);
    this.trialX = new Float64Array(n);
    this.trialGradient = new Float64Array(n);
    this.alpha = new Float64Array(this.memory);
  }

  /**
   * One iteration: direction from the two-loop recursion, then a backtracking line search. Returns `true` when it
   * moved `x` and the solver can go on, `false` when it has converged or cannot make progress (`status` says which;
   * `x` is then the last accepted iterate).
   */
  async step(): Promise<boolean> {
    if (this.status !== "running") return false;
    const n = this.x.length;
    const d = this.direction;
    this.computeDirection();
    let slope = dot(this.gradient, d);
    if (!(slope < 0)) {
      // Not a descent direction (curvature pairs gone stale): restart from steepest descent.
      this.s.length = this.y.length = this.rho.length = 0;
      for (let i = 0; i < n; i++) d[i] = -this.gradient[i]!;
      slope = -dot(this.gradient, this.gradient);
    }
    // First iteration: a unit step along -g can be wildly off scale, so start at 1/|g| (Nocedal & Wright §7.2).
    let t = this.s.length === 0 ? Math.min(1, 1 / Math.sqrt(-slope)) : 1;
    let trialValue = NaN;
    let accepted = false;
    for (let backtrack = 0; backtrack <= this.maxBacktracks; backtrack++) {
      for (let i = 0; i < n; i++) this.trialX[i] = this.x[i]! + t * d[i]!;
      trialValue = await this.objective.evaluate(this.trialX, this.trialGradient);
      this.evaluations++;
      if (Number.isFinite(trialValue) && trialValue <= this.value + this.armijo * t * slope) {
        accepted = true;
        break;
      }
      t *= 0.5;
    }
    if (!accepted) {
      this.status = "line_search_failed";
      return false;
    }
    // Curvature pair s = x' - x, y = g' - g; kept only when s·y > 0 so the implicit Hessian stays positive definite.
    const s = this.s.length === this.memory ? this.s.shift()! : new Float64Array(n);
    const y = this.y.length === this.memory ? this.y.shift()! : new Float64Array(n);
    if (this.rho.length === this.memory) this.rho.shift();
    for (let i = 0; i < n; i++) {
      s[i] = this.trialX[i]! - this.x[i]!;
      y[i] = this.trialGradient[i]! - this.gradient[i]!;
    }
    const sy = dot(s, y);
    if (sy > 1e-10 * Math.sqrt(dot(y, y) * dot(s, s))) {
      this.s.push(s);
      this.y.push(y);
      this.rho.push(1 / sy);
    }
    const previous = this.value;
    this.x.set(this.trialX);
    this.gradient.set(this.trialGradient);
    this.value = trialValue;
    if (maxAbs(this.gradient) <= this.gradientTolerance || previous - trialValue <= this.relativeDecreaseTolerance * Math.max(Math.abs(trialValue), 1)) {
      this.status = "converged";
    }
    return true;
  }

  /** direction = -H·g by the two-loop recursion, H₀ = (s·y / y·y)·I from the newest pair. */
  private computeDirection(): void {
    const d = this.direction;
    const n = d.length;
    for (let i = 0; i < n; i++) d[i] = -this.gradient[i]!;
    const pairs = this.s.length;
    for (let k = pairs - 1; k >= 0; k--) {
      const a = this.rho[k]! * dot(this.s[k]!, d);
      this.alpha[k] = a;
      axpy(-a, this.y[k]!, d);
    }
    if (pairs > 0) {
      const newest = pairs - 1;
      const gamma = 1 / (this.rho[newest]! * dot(this.y[newest]!, this.y[newest]!));
      for (let i = 0; i < n; i++) d[i] *= gamma;
    }
    for (let k = 0; k < pairs; k++) {
      const b = this.rho[k]! * dot(this.y[k]!, d);
      axpy(this.alpha[k]! - b, this.s[k]!, d);
    }
  }
}

/** Four running sums, so that the adds do not wait on each other (an MLP head's θ has 10⁵ values, ~25 dots a step). */
function dot(a: Float64Array, b: Float64Array): number {
  const n = a.length;
  const end = n - (n % 4);
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (let i = 0; i < end; i += 4) {
    s0 += a[i]! * b[i]!;
    s1 += a[i + 1]! * b[i + 1]!;
    s2 += a[i + 2]! * b[i + 2]!;
    s3 += a[i + 3]! * b[i + 3]!;
  }
  for (let i = end; i < n; i++) s0 += a[i]! * b[i]!;
  return s0 + s1 + (s2 + s3);
}

function axpy(a: number, x: Float64Array, y: Float64Array): void {
  for (let i = 0; i < x.length; i++) y[i] += a * x[i]!;
}

function maxAbs(values: Float64Array): number {
  let max = 0;
  for (let i = 0; i < values.length; i++) max = Math.max(max, Math.abs(values[i]!));
  return max;
}
