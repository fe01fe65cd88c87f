import { it } from "vitest";
import { ensureTfjsWasm } from "../../workers/inference/tfjs-wasm";
it("probe", async () => {
  const t0 = performance.now();
  const tf = await ensureTfjsWasm();
  console.log("init", performance.now() - t0, tf.getBackend(), typeof (globalThis as any).process, WebAssembly.instantiate.name);
  const { MobileNetV2Model } = await import("nsfwjs/models/mobilenet_v2");
  const m = await MobileNetV2Model.modelJson();
  console.log("model keys", Object.keys(m), typeof (m as any).default, Object.keys((m as any).default ?? {}));
  const w = await MobileNetV2Model.weightBundles[0]();
  console.log("w keys", Object.keys(w), Object.keys((w as any).default ?? {}));
});
