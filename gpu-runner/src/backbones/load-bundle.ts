/**
 * Node-side loading and saving of backbone bundles as a folder: `model.json` + the weight files its manifest
 * names. Saved bundles use one `weights.bin` and record their input range in `userDefinedMetadata.edgetune`, so
 * the Worker can fetch two objects from R2 and know how to normalise pixels.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { concatWeightBuffers, expectedWeightBytes, withSingleWeightsFile } from "../../../shared/backbone/model-json";
import type { BackboneBundle, LayersModelJson } from "../../../shared/backbone/types";

interface EdgetuneMetadata {
  name?: string;
  inputRange?: [number, number];
}

function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

/**
 * Reads `dir/model.json` and its weight files. `inputRange` comes from the call, else from the model's
 * `userDefinedMetadata.edgetune`, else defaults to Keras MobileNet's [-1, 1].
 */
export async function loadBundleFromDir(
  dir: string,
  options: { name?: string; inputRange?: [number, number] } = {},
): Promise<BackboneBundle> {
  const modelJson = JSON.parse(await readFile(path.join(dir, "model.json"), "utf8")) as LayersModelJson & {
    userDefinedMetadata?: { edgetune?: EdgetuneMetadata };
  };
  const buffers: ArrayBuffer[] = [];
  for (const group of modelJson.weightsManifest) {
    for (const file of group.paths) buffers.push(toArrayBuffer(await readFile(path.join(dir, file))));
  }
  const weightData = concatWeightBuffers(buffers);
  const expected = expectedWeightBytes(modelJson);
  if (weightData.byteLength !== expected) {
    throw new Error(`${dir}: weight files hold ${weightData.byteLength} bytes, manifest expects ${expected}`);
  }
  const metadata = modelJson.userDefinedMetadata?.edgetune ?? {};
  return {
    name: options.name ?? metadata.name ?? path.basename(dir),
    modelJson,
    weightData,
    inputRange: options.inputRange ?? metadata.inputRange ?? [-1, 1],
  };
}

/** Writes `bundle` as `dir/model.json` + `dir/weights.bin` (one manifest group). Returns the two paths. */
export async function saveBundleToDir(bundle: BackboneBundle, dir: string): Promise<{ modelPath: string; weightsPath: string }> {
  await mkdir(dir, { recursive: true });
  const modelJson = {
    ...withSingleWeightsFile(bundle.modelJson),
    userDefinedMetadata: {
      ...((bundle.modelJson as { userDefinedMetadata?: object }).userDefinedMetadata ?? {}),
      edgetune: { name: bundle.name, inputRange: bundle.inputRange },
    },
  };
  const modelPath = path.join(dir, "model.json");
  const weightsPath = path.join(dir, "weights.bin");
  await writeFile(modelPath, JSON.stringify(modelJson));
  await writeFile(weightsPath, new Uint8Array(bundle.weightData));
  return { modelPath, weightsPath };
}
