/**
 * The nsfwjs MobileNetV2 (see FACTS.md, "Backbones that can be had offline") as tfjs model artifacts, plus a
 * deterministic 224x224 test image. Shared by the workerd bench and the Node reference script.
 */
import type { Tensor4D } from "@tensorflow/tfjs-core";
import type { io } from "@tensorflow/tfjs-core";
import type { Tfjs } from "../../workers/inference/tfjs-wasm";

export interface NsfwjsModelJson {
  modelTopology: object;
  weightsManifest: { paths: string[]; weights: io.WeightsManifestEntry[] }[];
}

/** nsfwjs ships model.json and its one weight shard (uint8-quantised, base64) as JS modules. */
export function toModelArtifacts(modelJson: NsfwjsModelJson, weightsBase64: string): io.ModelArtifacts {
  const binary = atob(weightsBase64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return {
    modelTopology: modelJson.modelTopology,
    weightSpecs: modelJson.weightsManifest.flatMap((group) => group.weights),
    weightData: bytes.buffer,
  };
}

/** [1, 224, 224, 3] in [0, 1]: a fixed pattern with structure at several scales, the same in every runtime. */
export function syntheticImage(tf: Tfjs, batch = 1): Tensor4D {
  const size = 224;
  const values = new Float32Array(batch * size * size * 3);
  let k = 0;
  for (let b = 0; b < batch; b++)
    for (let y = 0; y < size; y++)
      for (let x = 0; x < size; x++)
        for (let c = 0; c < 3; c++) values[k++] = ((x * 7 + y * 13 + c * 29 + b * 31 + ((x * y) >> 5)) % 256) / 255;
  return tf.tensor4d(values, [batch, size, size, 3]);
}
