/** Settings are parsed once, with their defaults, and a bad value never reaches the code that uses it. */
import { describe, expect, it } from "vitest";
import { DEFAULT_MAX_IMAGE_PIXELS, DEFAULT_PREDICT_MAX_PIXELS, DEFAULT_TFJS_INIT_TIMEOUT_MS, getConfig, parseConfig } from "../../workers/config";

describe("config", () => {
  it("gives every setting its default when the environment is empty", () => {
    const config = parseConfig({});
    expect(config).toMatchObject({ maxImagePixels: DEFAULT_MAX_IMAGE_PIXELS, predictMaxPixels: DEFAULT_PREDICT_MAX_PIXELS, tfjsInitTimeoutMs: DEFAULT_TFJS_INIT_TIMEOUT_MS, adminKey: null, headCache: {} });
    expect(config.urlPolicy).toMatchObject({ allowHttp: false, allowPrivateHosts: false });
  });

  it("falls back to the default for values that are not positive integers, and treats empty secrets as unset", () => {
    const config = parseConfig({ MAX_IMAGE_PIXELS: "lots", TFJS_INIT_TIMEOUT_MS: "-5", HEAD_CACHE_MAX_ENTRIES: "2.5", EDGETUNE_ADMIN_KEY: "  " });
    expect(config.maxImagePixels).toBe(DEFAULT_MAX_IMAGE_PIXELS);
    expect(config.tfjsInitTimeoutMs).toBe(DEFAULT_TFJS_INIT_TIMEOUT_MS);
    expect(config.headCache.maxEntries).toBeUndefined();
    expect(config.adminKey).toBeNull();
  });

  it("never lets a prediction decode more pixels than an upload may declare", () => {
    expect(parseConfig({ MAX_IMAGE_PIXELS: "1000000", PREDICT_MAX_PIXELS: "12000000" }).predictMaxPixels).toBe(1_000_000);
  });

  it("parses an environment object once", () => {
    const env = { EDGETUNE_ADMIN_KEY: "t" };
    expect(getConfig(env)).toBe(getConfig(env));
    expect(getConfig({ ...env })).not.toBe(getConfig(env));
  });
});
