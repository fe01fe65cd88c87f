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
 * - Adam, learning rate 1e-3: converges on standardised features within 10-40 epochs at any of those sizes.
 * - label smoothing 0.1: keeps a separable problem (D ≥ n is common here) from driving weights to infinity and
 *   gives better-calibrated probabilities.
 * - up to 100 epochs, early stopping after 15 epochs without a better val loss, best epoch's weights kept: the
 *   epoch budget is rarely reached; the patience rides out the noise of a small validation set.
 * - class weighting "balanced": a no-op on balanced data, and on lopsided user datasets it stops the head from
 *   ignoring a rare class.
 * - weight decay 1e-4 (L2 for adam/sgd, decoupled for adamw): a light brake that matters only when the schedule
 *   runs long.
 */
import { headSpecSchema, hyperparametersSchema, type HeadSpec, type Hyperparameters } from "../../../shared/schemas";

export const DEFAULT_HYPERPARAMETERS: Readonly<Hyperparameters> = Object.freeze(hyperparametersSchema.parse({}));

export const DEFAULT_HEAD_SPEC: Readonly<HeadSpec> = Object.freeze(headSpecSchema.parse({ type: "linear" }));

export const DEFAULT_MLP_HEAD_SPEC: Readonly<HeadSpec> = Object.freeze(headSpecSchema.parse({ type: "mlp" }));
