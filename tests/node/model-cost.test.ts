/**
 * shared/backbone/cost.ts: a backbone's FLOPs, float32 weight bytes and peak activation bytes at batch 1, from its
 * model.json alone. Checked against published figures of real MobileNets (../shared/backbones; skipped without it).
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { describe, it } from "vitest";
import { estimateModelCost } from "../../shared/backbone/cost";
import { buildTinyGraphModel, buildTinyModel } from "../fixtures/tiny-model";

const SHARED = new URL("../../../shared/backbones/", import.meta.url);

describe("estimateModelCost", () => {
  it("counts a layers model's convolution, batch norm and activation up to the feature layer, and what is alive at once", () => {
    const { modelJson } = buildTinyModel();
    // conv1 2 x 32x32x(3x3x3)x8 = 442,368; bn1 2 x 8,192; relu1 8,192. bn1 and relu1 (8 KB floats each) alive together.
    assert.deepEqual(estimateModelCost(modelJson as any, [32, 32], ["relu1"]), { flops: 466_944, weightBytes: 292 * 4, peakActivationBytes: 65_536 });
  });

  it("reads a graph model's kernel shapes from its weights manifest", () => {
    const { modelJson } = buildTinyGraphModel();
    const cost = estimateModelCost(modelJson as any, [32, 32], ["conv/Conv2D"]);
    assert.equal(cost.flops, 2 * 32 * 32 * 27 * 8);
    assert.equal(cost.peakActivationBytes, (32 * 32 * 3 + 32 * 32 * 8) * 4);
  });

  // Needs ../shared/backbones (the real MobileNets); skipped, saying so in its name, on a clone without it.
  it.skipIf(!existsSync(SHARED))("matches MobileNet v1's published multiply-adds (41 M at 0.25, 317 M at 0.75, 224x224; skipped without ../shared/backbones)", () => {
    for (const [name, macs] of [["mobilenet_v1_025_224", 41e6], ["mobilenet_v1_075_224", 317e6]] as const) {
      const modelJson = JSON.parse(readFileSync(new URL(`${name}/model.json`, SHARED), "utf8"));
      const cost = estimateModelCost(modelJson, [224, 224], ["conv_pw_13_relu"]);
      // Convolutions dominate; batch norms and activations add a few percent.
      assert.ok(cost.flops > 2 * macs && cost.flops < 2.2 * macs, `${name}: ${cost.flops} FLOPs against ${2 * macs}`);
      assert.ok(cost.peakActivationBytes > 0 && cost.peakActivationBytes < 8e6, `${name}: ${cost.peakActivationBytes}`);
    }
  });
});
