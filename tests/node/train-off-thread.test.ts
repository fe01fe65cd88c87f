/**
 * Head training in a worker thread (gpu-runner/src/train/off-thread.ts): the runner's event loop, which carries
 * the lease heartbeats, keeps running while training blocks its thread; the result equals training in-thread.
 */
import assert from "node:assert/strict";
import { describe, it } from "vitest";
import { createRandom } from "../../shared/random";
import { splitStratified } from "../../shared/split";
import { DEFAULT_HYPERPARAMETERS } from "../../gpu-runner/src/train/defaults";
import { trainHeadOffThread, TrainingThread } from "../../gpu-runner/src/train/off-thread";
import { trainHead, type HeadTrainingInput } from "../../gpu-runner/src/train/train-head";

/** Gaussian clusters, 3 classes × 60 rows, 16-d, embeddings on a SharedArrayBuffer as run-job allocates them. */
function makeClusters(): HeadTrainingInput {
  const random = createRandom(1);
  const dim = 16;
  const centres = Array.from({ length: 3 }, () => Float64Array.from({ length: dim }, () => 1.5 * random.nextNormal()));
  const labels = Int32Array.from({ length: 180 }, (_, row) => row % 3);
  const embeddings = new Float32Array(new SharedArrayBuffer(labels.length * dim * 4));
  labels.forEach((label, row) => {
    for (let i = 0; i < dim; i++) embeddings[row * dim + i] = centres[label]![i]! + random.nextNormal();
  });
  const split = splitStratified(labels, 0.25, 1);
  return { embeddings, dim, labels, classCount: 3, trainIndex: split.train, valIndex: split.val };
}

const config = { head: { type: "linear" as const }, hyperparameters: { ...DEFAULT_HYPERPARAMETERS, epochs: 30 } };

describe("trainHeadOffThread", () => {
  it("returns the same head and epochs as training in this thread", async () => {
    const reported: number[] = [];
    const offThread = await trainHeadOffThread(makeClusters(), config, { onEpoch: (metrics) => void reported.push(metrics.epoch) });
    const inThread = await trainHead(makeClusters(), config);
    assert.deepEqual(offThread.epochs, inThread.epochs);
    assert.deepEqual(offThread.head, inThread.head);
    assert.deepEqual(reported, inThread.epochs.map((epoch) => epoch.epoch));
  });

  it("keeps this thread's timers on time while training blocks its own thread for 2 s", async () => {
    // What a heartbeat needs: a timer firing every 100 ms. Training on this thread, the same stall delays it by 2 s.
    let last = performance.now();
    let worstGap = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      worstGap = Math.max(worstGap, now - last);
      last = now;
    }, 100);
    const started = performance.now();
    try {
      await trainHeadOffThread(makeClusters(), config, {}, { stallMs: 2000 });
    } finally {
      clearInterval(timer);
    }
    assert.ok(performance.now() - started >= 2000, "the stall happened");
    // Generous for a loaded 2-core box: the point is "not 2,000 ms".
    assert.ok(worstGap < 1000, `the longest gap between 100 ms timer ticks was ${worstGap.toFixed(0)} ms`);
  });

  it("stops after the current epoch when the signal aborts, returning the best head so far", async () => {
    const controller = new AbortController();
    // An MLP, whose solver runs to a 1e-10 relative decrease: a linear head converges (1e-5, lbfgs-head.ts) within a
    // dozen iterations here, which could finish before the abort reaches the worker.
    const head = { type: "mlp" as const, hidden: [32], dropout: 0 };
    const result = await trainHeadOffThread(makeClusters(), { head, hyperparameters: { ...config.hyperparameters, epochs: 1000, early_stopping_patience: 0 } }, {
      onEpoch: (metrics) => void (metrics.epoch === 2 && controller.abort()),
    }, { signal: controller.signal });
    assert.equal(result.stopReason, "stopped_by_caller");
    assert.ok(result.epochs.length < 1000);
  });

  it("a long-lived TrainingThread serves several trainings with identical results", async () => {
    const thread = new TrainingThread();
    try {
      await thread.warmUp();
      const [first, second] = await Promise.all([thread.train(makeClusters(), config), thread.train(makeClusters(), config)]);
      assert.deepEqual(second.head, first.head);
      await assert.rejects(thread.train({ ...makeClusters(), valIndex: [] }, config), RangeError);
      assert.deepEqual((await thread.train(makeClusters(), config)).epochs, first.epochs, "still serving after a rejected input");
    } finally {
      await thread.close();
    }
  });

  it("rejects bad input with the trainer's RangeError", async () => {
    await assert.rejects(trainHeadOffThread({ ...makeClusters(), valIndex: [] }, config), (error: Error) => error instanceof RangeError && /valIndex is empty/.test(error.message));
  });
});
