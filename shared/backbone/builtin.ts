/**
 * Feature specs chosen by measured linear-probe accuracy on flowers5 (bench/embed/probe-layers.ts; 300 train /
 * 100 held-out images, standardised softmax probe). See the table in bench/embed/README.md.
 */
import { NSFWJS_MOBILENET_V2, featureSpecOf } from "../catalog";
import type { FeatureSpec } from "./types";

/** Id of the builtin backbone: nsfwjs' MobileNetV2 224 (input [0, 1]). */
export const BUILTIN_BACKBONE_NAME = "builtin:nsfwjs-mobilenet_v2";

/** nsfwjs MobileNetV2 feature spec: the catalog's (block_13_expand_relu, average-pooled; chosen by the probe). */
export const BUILTIN_FEATURE_SPEC: FeatureSpec = featureSpecOf(NSFWJS_MOBILENET_V2.spec);

/** Recommended spec for ImageNet MobileNet v1 (Keras names), e.g. ../shared/backbones/mobilenet_v1_025_224. */
export const MOBILENET_V1_FEATURE_SPEC: FeatureSpec = { feature_layers: ["conv_pw_11_relu", "conv_pw_12_relu"], pooling: "avg+max" };
