/**
 * The catalog pins the sha256 of each builtin backbone's files, and the API accepts nothing else (no runner can
 * replace a backbone every tenant is served from). This checks the pins against what a runner actually publishes.
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { BUILTIN_BACKBONES } from "../../shared/catalog";
import { bundleFiles } from "../../gpu-runner/src/backbones/job-backbone";
import { loadNsfwjsBundle } from "../../gpu-runner/src/backbones/builtin-nsfwjs";
import { loadVendoredBundle } from "../../gpu-runner/src/backbones/builtin-vendored";

/** How a runner loads each builtin (the same loaders as gpu-runner/src/backbones/job-backbone.ts). */
const LOADERS: Record<string, () => ReturnType<typeof loadNsfwjsBundle>> = {
  bb_builtin_mobilenet_v2: loadNsfwjsBundle,
  bb_builtin_mobilenet_v1_075: () => loadVendoredBundle(BUILTIN_BACKBONES.find((b) => b.id === "bb_builtin_mobilenet_v1_075")!),
};

describe("builtin backbone pins", () => {
  for (const builtin of BUILTIN_BACKBONES) {
    it(`${builtin.id}: the files a runner publishes match the catalog's sha256`, async () => {
      const loader = LOADERS[builtin.id];
      expect(loader, `add a loader for ${builtin.id} to this test`).toBeDefined();
      const files = bundleFiles(await loader!());
      const pins = builtin.files!;
      expect({ sha256: createHash("sha256").update(files.modelJson).digest("hex"), bytes: files.modelJson.length }).toEqual(pins["model.json"]);
      expect({ sha256: createHash("sha256").update(files.weights).digest("hex"), bytes: files.weights.length }).toEqual(pins["weights.bin"]);
    });
  }
});
