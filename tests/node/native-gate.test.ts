/**
 * Terminating a worker thread never lands inside an onnxruntime call (gpu-runner/src/threads/native-gate.ts): such
 * a termination aborts the whole process with "terminate called after throwing an instance of 'Napi::Error'"
 * (onnxruntime-node 1.30), which killed a vitest fork in CI through trainHeadOffThread.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, it } from "vitest";
import { startWorker } from "../../gpu-runner/src/threads/start-worker";

const FIXTURE = fileURLToPath(new URL("./fixtures/close-during-onnx.ts", import.meta.url));

describe("native gate", () => {
  it("lets a process close training threads during their warm-up and abort cross-validation mid-fit, and live", () => {
    // In a process of its own: what fails here is the process itself (exit 134 before the gate).
    const result = spawnSync(process.execPath, ["--import", "tsx", FIXTURE], { encoding: "utf8", timeout: 120_000 });
    assert.doesNotMatch(result.stderr, /Napi::Error/);
    assert.equal(result.signal, null, `killed by ${result.signal}: ${result.stderr}`);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /training thread closed during its warm-up: 7 times/);
    assert.match(result.stdout, /cross-validation aborted mid-fit: [1-9] of 8 times/);
    assert.match(result.stdout, /survived\n$/);
  });

  it("terminate() waits for the call in flight, and a call after it does not start", async () => {
    const worker = startWorker(new URL("./fixtures/gate-worker.ts", import.meta.url));
    const messages: string[] = [];
    worker.on("message", (message: string) => void messages.push(message));
    const next = (wanted: string) => new Promise<void>((resolve) => worker.on("message", (message) => message === wanted && resolve()));
    await next("ready");
    worker.postMessage("try");
    await next("entered");
    worker.postMessage("hold");
    await next("holding");
    const started = performance.now();
    const terminated = worker.terminate();
    worker.postMessage("try"); // served while the held call waits: the gate is closed to new calls
    await terminated;
    assert.ok(performance.now() - started >= 200, "terminate() waited for the held call");
    assert.deepEqual(messages, ["ready", "entered", "holding", "WorkerClosingError", "released"]);
  });
});
