/**
 * The job and backbone request schemas (shared/schemas.ts): the defaults a job gets for what it leaves out, and the
 * field path of every rejection, which is what the API's 400 body names as the field to fix. The Worker validates
 * requests with these schemas and the runner re-validates every leased job with them, so a default or a bound that
 * moves here moves in both places.
 *
 * Isolation: pure zod parsing; no shared state.
 */
import assert from "node:assert/strict";
import { describe, it } from "vitest";
import type { z } from "zod";
import { augmentationSchema, backboneSpecSchema, createJobRequest, headSpecSchema, hyperparametersSchema, jobConfigSchema } from "../../shared/schemas";

/**
 * The hyperparameter defaults, written out so that changing one in the schema is a deliberate act here too
 * (gpu-runner/src/train/defaults.ts says why each value was chosen; the OpenAPI document shows them to users).
 */
const DOCUMENTED_HYPERPARAMETERS = {
  epochs: 100,
  batch_size: 32,
  learning_rate: 0.001,
  optimizer: "adam",
  weight_decay: 0.1,
  label_smoothing: 0.1,
  validation_fraction: 0.2,
  use_dataset_split: true,
  seed: 42,
  early_stopping_patience: 15,
  class_weighting: "balanced",
};

// ---- factories ----------------------------------------------------------------------------------------------

/** A valid backbone spec (ImageNet normalisation, 224 × 224), overridden by `overrides`. */
function makeBackboneSpec(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: "my backbone",
    feature_layer: "conv_pw_12_relu",
    input_size: [224, 224],
    normalization: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
    ...overrides,
  };
}

/** The issues of a value the schema must reject: asserts the rejection and returns each issue's path joined with ".". */
function rejectionPaths(schema: z.ZodType, value: unknown): string[] {
  const result = schema.safeParse(value);
  assert.equal(result.success, false, `expected ${JSON.stringify(value)} to be rejected`);
  return result.error!.issues.map((issue) => issue.path.join("."));
}

/** Asserts the schema rejects `value` with an issue at exactly `path`. */
function assertRejectedAt(schema: z.ZodType, value: unknown, path: string): void {
  const paths = rejectionPaths(schema, value);
  assert.ok(paths.includes(path), `expected an issue at "${path}", got ${JSON.stringify(paths)}`);
}

// ---- defaults -----------------------------------------------------------------------------------------------

describe("job schemas fill documented defaults", () => {
  it("hyperparameters: an empty object gets every default", () => {
    assert.deepEqual(hyperparametersSchema.parse({}), DOCUMENTED_HYPERPARAMETERS);
  });

  it("hyperparameters: given fields are kept and only the missing ones are filled", () => {
    const parsed = hyperparametersSchema.parse({ epochs: 7, optimizer: "sgd" });
    assert.deepEqual(parsed, { ...DOCUMENTED_HYPERPARAMETERS, epochs: 7, optimizer: "sgd" });
  });

  it("head: a linear head has no options, an MLP head defaults to one hidden layer of 256 and dropout 0.2", () => {
    assert.deepEqual(headSpecSchema.parse({ type: "linear" }), { type: "linear" });
    assert.deepEqual(headSpecSchema.parse({ type: "mlp" }), { type: "mlp", hidden: [256], dropout: 0.2 });
    assert.deepEqual(headSpecSchema.parse({ type: "mlp", hidden: [64, 32] }), { type: "mlp", hidden: [64, 32], dropout: 0.2 });
  });

  it("create job: fills the defaults inside a given head and hyperparameters object", () => {
    const parsed = createJobRequest.parse({ dataset_id: "ds_1", head: { type: "mlp", dropout: 0.5 }, hyperparameters: { seed: 3 } });
    assert.deepEqual(parsed.head, { type: "mlp", hidden: [256], dropout: 0.5 });
    assert.deepEqual(parsed.hyperparameters, { ...DOCUMENTED_HYPERPARAMETERS, seed: 3 });
  });

  it("create job: leaves an omitted backbone, head and hyperparameters out (the route then applies the job defaults)", () => {
    assert.deepEqual(createJobRequest.parse({ dataset_id: "ds_1" }), { dataset_id: "ds_1" });
  });

  it("augmentation: no views and no test-time averaging unless asked; at most 16 views", () => {
    assert.deepEqual(augmentationSchema.parse({}), { views: 0, tta: "none" });
    assert.deepEqual(augmentationSchema.parse({ views: 4, tta: "flip" }), { views: 4, tta: "flip" });
    assertRejectedAt(augmentationSchema, { views: 17 }, "views");
    assertRejectedAt(augmentationSchema, { tta: "five_crop" }, "tta");
  });

  it("job config: the config a runner leases is re-validated with the same defaults", () => {
    const parsed = jobConfigSchema.parse({ head: { type: "linear" }, hyperparameters: {} });
    assert.deepEqual(parsed, { kind: "train", head: { type: "linear" }, hyperparameters: DOCUMENTED_HYPERPARAMETERS, augmentation: { views: 0, tta: "none" } });
  });
});

// ---- rejections ---------------------------------------------------------------------------------------------

describe("job schemas reject nonsense, naming the field", () => {
  it("rejects a zero or negative epoch count at epochs", () => {
    assertRejectedAt(hyperparametersSchema, { epochs: -1 }, "epochs");
    assertRejectedAt(hyperparametersSchema, { epochs: 0 }, "epochs");
    assertRejectedAt(hyperparametersSchema, { epochs: 2.5 }, "epochs");
  });

  it("rejects a learning rate of 0 at learning_rate", () => {
    assertRejectedAt(hyperparametersSchema, { learning_rate: 0 }, "learning_rate");
  });

  it("rejects a validation fraction above 0.5 (or of 0) at validation_fraction", () => {
    assertRejectedAt(hyperparametersSchema, { validation_fraction: 0.9 }, "validation_fraction");
    assertRejectedAt(hyperparametersSchema, { validation_fraction: 0 }, "validation_fraction");
  });

  it("rejects an unknown optimizer at optimizer", () => {
    assertRejectedAt(hyperparametersSchema, { optimizer: "rmsprop" }, "optimizer");
  });

  it("rejects an unknown field, naming it in the issue", () => {
    const result = hyperparametersSchema.safeParse({ epochs: 5, momentum: 0.9 });
    assert.equal(result.success, false);
    const issue = result.error!.issues[0]!;
    assert.equal(issue.code, "unrecognized_keys");
    assert.deepEqual((issue as { keys?: string[] }).keys, ["momentum"]);
    // The same typo inside a job request is reported at the object that holds it.
    const nested = createJobRequest.safeParse({ dataset_id: "ds_1", hyperparameters: { momentum: 0.9 } });
    assert.deepEqual(nested.error!.issues.map((i) => [i.path.join("."), i.code]), [["hyperparameters", "unrecognized_keys"]]);
    assertRejectedAt(createJobRequest, { dataset_id: "ds_1", priority: 1 }, "");
  });

  it("rejects an MLP hidden layer of size 0 at hidden.<index>", () => {
    assertRejectedAt(headSpecSchema, { type: "mlp", hidden: [0] }, "hidden.0");
    assertRejectedAt(headSpecSchema, { type: "mlp", hidden: [128, 0] }, "hidden.1");
    assertRejectedAt(headSpecSchema, { type: "mlp", hidden: [] }, "hidden");
  });

  it("rejects an unknown head type and options on a linear head", () => {
    assertRejectedAt(headSpecSchema, { type: "transformer" }, "type");
    assertRejectedAt(headSpecSchema, { type: "linear", hidden: [64] }, "");
  });

  it("reports nested rejections of a job request with the full path", () => {
    assertRejectedAt(createJobRequest, { dataset_id: "ds_1", hyperparameters: { epochs: -1 } }, "hyperparameters.epochs");
    assertRejectedAt(createJobRequest, { dataset_id: "ds_1", head: { type: "mlp", hidden: [0] } }, "head.hidden.0");
    assertRejectedAt(createJobRequest, { dataset_id: "" }, "dataset_id");
    assertRejectedAt(createJobRequest, {}, "dataset_id");
  });

  it("fine_tune: takes 1 or 2 blocks, rejects anything else at fine_tune.blocks, and travels in the leased config", () => {
    assert.deepEqual(createJobRequest.parse({ dataset_id: "ds_1", fine_tune: { blocks: 1 } }).fine_tune, { blocks: 1 });
    for (const blocks of [0, 3, 1.5, "1"]) assertRejectedAt(createJobRequest, { dataset_id: "ds_1", fine_tune: { blocks } }, "fine_tune.blocks");
    assertRejectedAt(createJobRequest, { dataset_id: "ds_1", fine_tune: {} }, "fine_tune.blocks");
    const config = jobConfigSchema.parse({ head: { type: "auto" }, hyperparameters: {}, fine_tune: { blocks: 2 } });
    assert.deepEqual(config.fine_tune, { blocks: 2 });
    assert.equal(jobConfigSchema.parse({ head: { type: "auto" }, hyperparameters: {} }).fine_tune, undefined);
  });
});

// ---- backbone spec ------------------------------------------------------------------------------------------

describe("backboneSpecSchema", () => {
  it("accepts a valid spec and fills pooling avg and resize squash", () => {
    assert.deepEqual(backboneSpecSchema.parse(makeBackboneSpec()), { ...makeBackboneSpec(), pooling: "avg", resize: "squash" });
  });

  it("accepts up to four feature layers, concatenated in order", () => {
    const layers = ["conv_pw_11_relu", "conv_pw_12_relu"];
    assert.deepEqual(backboneSpecSchema.parse(makeBackboneSpec({ feature_layer: layers, pooling: "avg+max" })).feature_layer, layers);
    assertRejectedAt(backboneSpecSchema, makeBackboneSpec({ feature_layer: ["a", "b", "c", "d", "e"] }), "feature_layer");
  });

  it("rejects a standard deviation of 0 at normalization.std.<channel>", () => {
    assertRejectedAt(backboneSpecSchema, makeBackboneSpec({ normalization: { mean: [0, 0, 0], std: [1, 0, 1] } }), "normalization.std.1");
  });

  it("rejects an input size below 32 at input_size.<axis>", () => {
    assertRejectedAt(backboneSpecSchema, makeBackboneSpec({ input_size: [8, 224] }), "input_size.0");
    assertRejectedAt(backboneSpecSchema, makeBackboneSpec({ input_size: [224, 8] }), "input_size.1");
  });

  it("rejects an unknown pooling mode at pooling", () => {
    assertRejectedAt(backboneSpecSchema, makeBackboneSpec({ pooling: "max" }), "pooling");
  });
});
