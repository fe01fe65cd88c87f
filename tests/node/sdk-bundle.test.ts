/**
 * The SDK is one module for Node, browsers and Workers: bundled for the browser it must build without Node's
 * built-ins and carry no zod (types are inferred at compile time only).
 */
import path from "node:path";
import { build } from "esbuild";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "../..");

describe("SDK browser bundle", () => {
  it("builds for platform=browser with no node: imports, no zod, and exports the client", async () => {
    const result = await build({
      entryPoints: [path.join(ROOT, "sdk/index.ts")],
      bundle: true, platform: "browser", format: "esm", write: false, metafile: true, minify: true, logLevel: "silent",
    });
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs.filter((i) => i.startsWith("node:") || /(^|\/)node_modules\/zod\//.test(i))).toEqual([]);
    const imports = Object.values(result.metafile.outputs).flatMap((o) => o.imports.map((i) => i.path));
    expect(imports).toEqual([]); // fully self-contained: nothing left to resolve in the browser
    const code = result.outputFiles[0].text;
    expect(code).not.toMatch(/from\s*"node:|require\(/);
    const exported = Object.values(result.metafile.outputs)[0].exports;
    for (const name of ["Edgetune", "EdgetuneError", "verifyWebhook", "zipSource", "blobSource"]) expect(exported).toContain(name);
    // Small enough to ship in a page: fflate's zip writer is the bulk.
    expect(code.length).toBeLessThan(60_000);
  });
});
