/**
 * One entry point for both backbone formats: layers models go to `buildFeatureExtractor`, graph models to
 * `buildGraphFeatureExtractor`. Both return the same embedding contract (`BaseFeatureExtractor`), so the runner's
 * engines and the Worker need not care which kind of model.json a user imported. No `node:*`: runs in workerd too.
 */
import { buildFeatureExtractor, type FeatureExtractor, type Tf } from "./feature-extractor";
import { buildGraphFeatureExtractor, type GraphFeatureExtractor } from "./graph-feature-extractor";
import { isGraphModel } from "./model-json";
import type { BackboneBundle, FeatureSpec } from "./types";

/** A layers or graph feature extractor; `format` tells which (and what `model` is). */
export type AnyFeatureExtractor = FeatureExtractor | GraphFeatureExtractor;

/**
 * Builds the feature extractor for `bundle`, whichever tfjs format it is in (`isGraphModel`: `format: "graph-model"`
 * or a topology with a `node` list).
 *
 * @returns an extractor mapping `[n, H, W, C]` images (in the bundle's `inputRange`) to `[n, dim]` embeddings.
 */
export function buildAnyFeatureExtractor(tf: Tf, bundle: BackboneBundle, spec: FeatureSpec): Promise<AnyFeatureExtractor> {
  return isGraphModel(bundle.modelJson) ? buildGraphFeatureExtractor(tf, bundle, spec) : buildFeatureExtractor(tf, bundle, spec);
}
