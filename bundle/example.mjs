// Predicts images with this exported edgetune model, in plain Node with plain @tensorflow/tfjs:
//
//   npm install                      (installs @tensorflow/tfjs, pinned in package.json)
//   node example.mjs photo.jpg [more.png ...]
//
// Prints what the API's POST /v1/models/:id/predict answers for the same files: {"model_id", "predictions": [[{label,
// probability}, ...], ...]}, one list per image, the most probable label first. The decoding, EXIF rotation, resize
// and normalisation are the API's own code (edgetune.mjs), so the probabilities match the API's.
import { readFile } from "node:fs/promises";
import * as tf from "@tensorflow/tfjs";
import { loadBundle } from "./edgetune.mjs";

const images = process.argv.slice(2);
if (images.length === 0) {
  console.error("usage: node example.mjs IMAGE [IMAGE ...]   (JPEG or PNG)");
  process.exit(2);
}
await tf.setBackend("cpu");
const folder = new URL("./", import.meta.url);
const model = await loadBundle(tf, (path) => readFile(new URL(path, folder)));
const result = await model.predict(await Promise.all(images.map((file) => readFile(file))));
console.log(JSON.stringify(result, null, 2));
model.dispose();
