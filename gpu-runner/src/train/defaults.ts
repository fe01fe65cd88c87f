/**
 * Training defaults, read from the shared job schema so there is one source of truth: a job that omits a field gets
 * exactly what `trainHead` would use here.
 *
 * Why these values (frozen embeddings, ~100 to 20,000 images, 2 to 100 classes):
 * - head "linear": on frozen backbone features a linear probe is the standard, robust baseline; it has no hidden
 *   width or dropout to tune, cannot overfit as badly as an MLP on a few hundred images, and trains fastest. An MLP
 *   (`DEFAULT_MLP_HEAD_SPEC`, one hidden layer of 256, dropout 0.2) helps mostly past a few thousand images.
 * - features standardised with train-set mean/std (always on, stored in the head): makes one learning rate suit
 *   every backbone, whatever the scale of its features.
 * - solver: full-batch L-BFGS (train/lbfgs-head.ts), which needs no learning rate or batch size; `optimizer`,
 *   `learning_rate` and `batch_size` apply to the tfjs mini-batch trainer only (Adam, learning rate 1e-3: converges
 *   on standardised features within 10-40 epochs at any of those sizes).
 * - label smoothing 0.1: keeps a separable problem (D ≥ n is common here) from driving weights to infinity and
 *   gives better-calibrated probabilities.
 * - up to 100 epochs, early stopping after 15 epochs without a better val loss, best epoch's weights kept: the
 *   epoch budget is rarely reached; the patience rides out the noise of a small validation set.
 * - class weighting "balanced": a no-op on balanced data, and on lopsided user datasets it stops the head from
 *   ignoring a rare class.
 * - weight decay 0.1: λ of the L2 penalty (λ/2)‖W‖² that L-BFGS minimises with the mean loss. L-BFGS runs to the
 *   optimum, where a light penalty no longer holds it back: flowers5 linear head, held-out accuracy 76% at 1e-4,
 *   76% at 1e-2, 80% at 0.1, 78% at 0.2 to 0.5, 76% at 1 (100 images, ±4 points); on 20,000 synthetic rows 86.6% to
 *   86.8% across 1e-4 to 0.1 (bench/train/head-speed.ts data). For the mini-batch trainer it is coupled L2
 *   (adam/sgd) or decoupled decay (adamw).
 */
import { headSpecSchema, hyperparametersSchema, type HeadSpec, type Hyperparameters } from "../../../shared/schemas";

export const DEFAULT_HYPERPARAMETERS: Readonly<Hyperparameters> = Object.freeze(hyperparametersSchema.parse({}));

export const DEFAULT_HEAD_SPEC: Readonly<HeadSpec> = Object.freeze(headSpecSchema.parse({ type: "linear" }));

export const DEFAULT_MLP_HEAD_SPEC: Readonly<HeadSpec> = Object.freeze(headSpecSchema.parse({ type: "mlp" }));
