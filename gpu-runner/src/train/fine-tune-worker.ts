/**
 * The fine-tuning thread (fine-tune-thread.ts): tfjs on its own WASM backend, off the runner's main thread so lease
 * heartbeats keep flowing while blocks train for minutes. One task: `FineTuneInput` (activations on a
 * SharedArrayBuffer, not copied) → `FineTuneResult` plus every item's fine-tuned embedding.
 */
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { serveTasks } from "../threads/pool";
import { embedWithBlocks, fineTuneBlocks, type FineTuneInput } from "./fine-tune";

tf.env().set("PROD", true);

await serveTasks(
  async () => {
    if (!(await tf.setBackend("wasm"))) throw new Error("tfjs wasm backend failed to initialise");
    return null;
  },
  async (input: FineTuneInput & { itemCount: number }) => {
    const result = await fineTuneBlocks(tf, input);
    const embeddings = embedWithBlocks(tf, result.stack, input.activations, Array.from({ length: input.itemCount }, (_, i) => i));
    return { result: { ...result, embeddings }, transfer: [embeddings.buffer as ArrayBuffer] };
  },
);
