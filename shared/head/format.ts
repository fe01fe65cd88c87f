/**
 * The head's storage format: the `Head` in memory, the JSON manifest + float32 binary on the wire, and the
 * (de)serialisation between them. See shared/head.ts for the overview.
 */
import * as z from "zod/mini";

export const HEAD_FORMAT = "edgetune-head/1";
/** A head preceded by fine-tuned backbone blocks (the manifest's `blocks`): readers of /1 refuse it rather than serve it wrong. */
export const HEAD_FORMAT_WITH_BLOCKS = "edgetune-head/2";

export type HeadActivation = "relu" | "softmax" | "linear";

/** One fully connected layer: `output = activation(input · weights + bias)`. */
export interface DenseLayer {
  type: "dense";
  inputDim: number;
  units: number;
  activation: HeadActivation;
  /** Shape [inputDim, units], row-major (the tfjs/Keras "kernel" layout): weight of input i for unit u at i·units + u. */
  weights: Float32Array;
  /** Shape [units]. */
  bias: Float32Array;
}

/** Per-feature standardisation applied to each embedding before the first layer: `(x - mean) / std`. */
export interface Standardization {
  /** Shape [inputDim]. */
  mean: Float32Array;
  /** Shape [inputDim]; every entry finite and > 0. */
  std: Float32Array;
}

/** A parsed, ready-to-apply head. The last layer is a softmax over `labels.length` units. */
export interface Head {
  inputDim: number;
  labels: string[];
  standardize: Standardization | null;
  layers: DenseLayer[];
  /**
   * Test-time augmentation the head was trained and evaluated with: "flip" means its input is the mean of the
   * image's embedding and its mirror's (shared/image/augment.ts `mirrorInputTensor`, `averageEmbeddings`), so
   * whoever embeds an image for it (the edge, an exported bundle) must do the same. Absent: "none".
   */
  tta?: "none" | "flip";
  /** Fine-tuned blocks the embedding comes from (their weights are the separate blocks.bin); absent for a head-only model. */
  blocks?: BlocksManifest;
}

/** Where a tensor sits in the weights binary. Both numbers count float32 values, not bytes. */
const weightRangeSchema = z.object({
  offset: z.int().check(z.minimum(0)),
  length: z.int().check(z.minimum(0)),
});
export type WeightRange = z.infer<typeof weightRangeSchema>;

/** Fine-tuned blocks (`fine_tune`) run between the backbone's cut and the head; weights in blocks.bin (blocks-format.ts). */
const positiveInt = () => z.int().check(z.minimum(1));
const shapeSchema = z.tuple([positiveInt(), positiveInt(), positiveInt()]);

export const blocksManifestSchema = z.object({
  /** The backbone layer the frozen trunk runs up to; its output is the first block's input. */
  cut_layer: z.string().check(z.minLength(1)),
  /** The layer whose (fine-tuned) output is pooled into the embedding. */
  output_layer: z.string().check(z.minLength(1)),
  pooling: z.literal("avg"),
  blocks: z
    .array(
      z.object({
        name: z.string(),
        type: z.literal("separable"),
        input_shape: shapeSchema,
        output_shape: shapeSchema,
        kernel_size: z.tuple([z.int().check(z.minimum(1), z.maximum(7)), z.int().check(z.minimum(1), z.maximum(7))]),
        stride: z.union([z.literal(1), z.literal(2)]),
        padding: z.literal("same"),
        activation: z.literal("relu6"),
        depthwise_kernel: weightRangeSchema,
        depthwise_bias: weightRangeSchema,
        pointwise_kernel: weightRangeSchema,
        pointwise_bias: weightRangeSchema,
      }),
    )
    .check(z.minLength(1), z.maxLength(2)),
  /** Exact size of blocks.bin. */
  weights_byte_length: z.int().check(z.minimum(0)),
});
export type BlocksManifest = z.infer<typeof blocksManifestSchema>;

const denseLayerManifestSchema = z.object({
  type: z.literal("dense"),
  units: z.int().check(z.minimum(1)),
  activation: z.enum(["relu", "softmax", "linear"]),
  weights: weightRangeSchema,
  bias: weightRangeSchema,
});

/**
 * The JSON half of a stored head. Unknown top-level keys are kept by the schema and ignored by `parseHead`, so
 * newer writers can add fields (training metadata, say) without breaking older readers.
 *
 * Written with `zod/mini` (the same validator, tree-shakable): the model bundle's `edgetune.mjs` parses heads with
 * this very code, and classic zod would add about 450 KB (its locales included) to that module; mini adds about 20.
 */
export const headManifestSchema = z.looseObject({
  format: z.enum([HEAD_FORMAT, HEAD_FORMAT_WITH_BLOCKS]),
  input_dim: z.int().check(z.minimum(1)),
  labels: z.array(z.string()).check(z.minLength(1)),
  standardize: z.nullable(z.object({ mean: z.array(z.number()), std: z.array(z.number()) })),
  layers: z.array(denseLayerManifestSchema).check(z.minLength(1)),
  /** Exact size of the weights binary: 4 × the number of float32 values. */
  weights_byte_length: z.int().check(z.minimum(0)),
  /** See `Head.tta`; absent in heads written before it existed, which means "none". */
  tta: z.optional(z.enum(["none", "flip"])),
  /** Present exactly when `format` is "edgetune-head/2". */
  blocks: z.optional(blocksManifestSchema),
});
export type HeadManifest = z.infer<typeof headManifestSchema>;

/** A stored head that cannot be used; `path` names the offending manifest field where there is one. */
export class HeadFormatError extends Error {
  constructor(
    message: string,
    readonly path?: string,
  ) {
    super(path ? `invalid head: ${path}: ${message}` : `invalid head: ${message}`);
    this.name = "HeadFormatError";
  }
}

/**
 * Writes a head as manifest + weights binary: for each layer in order, its weights then its bias.
 * `parseHead(serializeHead(head).manifest, ...weights)` gives back the same numbers bit for bit.
 */
export function serializeHead(head: Head): { manifest: HeadManifest; weights: Uint8Array } {
  assertHeadShapes(head);
  const totalFloats = head.layers.reduce((sum, layer) => sum + layer.weights.length + layer.bias.length, 0);
  const packed = new Float32Array(totalFloats);
  let offset = 0;
  const place = (values: Float32Array): WeightRange => {
    packed.set(values, offset);
    const range = { offset, length: values.length };
    offset += values.length;
    return range;
  };
  const layers = head.layers.map((layer) => ({
    type: "dense" as const,
    units: layer.units,
    activation: layer.activation,
    weights: place(layer.weights),
    bias: place(layer.bias),
  }));
  const manifest: HeadManifest = {
    format: head.blocks ? HEAD_FORMAT_WITH_BLOCKS : HEAD_FORMAT,
    input_dim: head.inputDim,
    labels: [...head.labels],
    // Array.from on a Float32Array yields the exact float32 values as doubles; JSON round-trips them exactly.
    standardize: head.standardize
      ? { mean: Array.from(head.standardize.mean), std: Array.from(head.standardize.std) }
      : null,
    layers,
    weights_byte_length: packed.byteLength,
    ...(head.tta === "flip" ? { tta: "flip" as const } : {}),
    ...(head.blocks ? { blocks: head.blocks } : {}),
  };
  return { manifest, weights: toLittleEndianBytes(packed) };
}

/**
 * Reads and validates a stored head. Throws `HeadFormatError` saying what is wrong: a field that fails the schema,
 * layer shapes that do not chain, a weights binary of the wrong size, or non-finite numbers.
 *
 * The returned layers are views onto `weights` when it is 4-byte aligned (no copy), so do not reuse that buffer.
 *
 * @param manifest the parsed JSON manifest (any value; it is validated here).
 * @param weights the weights binary, exactly `manifest.weights_byte_length` bytes.
 */
export function parseHead(manifest: unknown, weights: ArrayBuffer | ArrayBufferView): Head {
  const parsed = headManifestSchema.safeParse(manifest);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new HeadFormatError(issue.message, issue.path.length ? issue.path.join(".") : "manifest");
  }
  const spec = parsed.data;
  if ((spec.format === HEAD_FORMAT_WITH_BLOCKS) !== (spec.blocks !== undefined)) {
    throw new HeadFormatError(spec.blocks ? `a head with blocks has format "${HEAD_FORMAT_WITH_BLOCKS}"` : `format "${HEAD_FORMAT_WITH_BLOCKS}" needs blocks`, "format");
  }
  if (spec.blocks) {
    const lastBlock = spec.blocks.blocks[spec.blocks.blocks.length - 1]!;
    if (lastBlock.output_shape[2] !== spec.input_dim) throw new HeadFormatError(`the last block outputs ${lastBlock.output_shape[2]} channels but input_dim is ${spec.input_dim}`, "input_dim");
  }
  const bytes =
    weights instanceof ArrayBuffer ? new Uint8Array(weights) : new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength);
  if (bytes.byteLength !== spec.weights_byte_length) {
    throw new HeadFormatError(
      `the weights binary has ${bytes.byteLength} bytes but the manifest declares ${spec.weights_byte_length}` +
        (bytes.byteLength < spec.weights_byte_length ? " (truncated upload or wrong file?)" : ""),
      "weights_byte_length",
    );
  }
  if (spec.weights_byte_length % 4 !== 0) {
    throw new HeadFormatError(`must be a multiple of 4 (float32 values), got ${spec.weights_byte_length}`, "weights_byte_length");
  }
  const floats = readLittleEndianFloats(bytes);

  const labelIndex = new Map<string, number>();
  spec.labels.forEach((label, index) => {
    const previous = labelIndex.get(label);
    if (previous !== undefined) throw new HeadFormatError(`duplicate label "${label}" (also labels.${previous})`, `labels.${index}`);
    labelIndex.set(label, index);
  });

  let standardize: Standardization | null = null;
  if (spec.standardize) {
    const { mean, std } = spec.standardize;
    if (mean.length !== spec.input_dim) throw new HeadFormatError(`has ${mean.length} values, expected input_dim = ${spec.input_dim}`, "standardize.mean");
    if (std.length !== spec.input_dim) throw new HeadFormatError(`has ${std.length} values, expected input_dim = ${spec.input_dim}`, "standardize.std");
    const badStd = std.findIndex((value) => !(Number.isFinite(value) && value > 0));
    if (badStd >= 0) throw new HeadFormatError(`must be finite and > 0, got ${std[badStd]}`, `standardize.std.${badStd}`);
    standardize = { mean: Float32Array.from(mean), std: Float32Array.from(std) };
  }

  let inputDim = spec.input_dim;
  const layers = spec.layers.map((layerSpec, index): DenseLayer => {
    const path = `layers.${index}`;
    const isLast = index === spec.layers.length - 1;
    if (isLast && layerSpec.activation !== "softmax") {
      throw new HeadFormatError(`the last layer must use "softmax" (heads output probabilities), got "${layerSpec.activation}"`, `${path}.activation`);
    }
    if (!isLast && layerSpec.activation === "softmax") {
      throw new HeadFormatError(`only the last layer may use "softmax"`, `${path}.activation`);
    }
    if (isLast && layerSpec.units !== spec.labels.length) {
      throw new HeadFormatError(`the last layer has ${layerSpec.units} units but there are ${spec.labels.length} labels`, `${path}.units`);
    }
    const layer: DenseLayer = {
      type: "dense",
      inputDim,
      units: layerSpec.units,
      activation: layerSpec.activation,
      weights: sliceRange(floats, layerSpec.weights, inputDim * layerSpec.units, `${path}.weights`, `[${inputDim}, ${layerSpec.units}]`),
      bias: sliceRange(floats, layerSpec.bias, layerSpec.units, `${path}.bias`, `[${layerSpec.units}]`),
    };
    inputDim = layerSpec.units;
    return layer;
  });
  const badValue = floats.findIndex((value) => !Number.isFinite(value));
  if (badValue >= 0) throw new HeadFormatError(`float ${badValue} of the weights binary is ${floats[badValue]}`, "weights");

  return { inputDim: spec.input_dim, labels: [...spec.labels], standardize, layers, ...(spec.tta === "flip" ? { tta: "flip" as const } : {}), ...(spec.blocks ? { blocks: spec.blocks } : {}) };
}

/**
 * Approximate resident memory of a parsed head, for a Worker-side cache budget: its float32 arrays plus
 * 2 bytes per label character (V8 two-byte strings, the worst case) plus 64 bytes per array/string object.
 */
export function headBytes(head: Head): number {
  const OBJECT_OVERHEAD_BYTES = 64;
  let bytes = OBJECT_OVERHEAD_BYTES;
  if (head.standardize) bytes += head.standardize.mean.byteLength + head.standardize.std.byteLength + 2 * OBJECT_OVERHEAD_BYTES;
  for (const layer of head.layers) bytes += layer.weights.byteLength + layer.bias.byteLength + 3 * OBJECT_OVERHEAD_BYTES;
  for (const label of head.labels) bytes += 2 * label.length + OBJECT_OVERHEAD_BYTES;
  return bytes;
}

// ---------------------------------------------------------------- helpers

/** Throws unless the in-memory head is internally consistent (used before writing it anywhere). */
export function assertHeadShapes(head: Head): void {
  if (head.layers.length === 0) throw new HeadFormatError("a head needs at least one layer", "layers");
  let inputDim = head.inputDim;
  head.layers.forEach((layer, index) => {
    const path = `layers.${index}`;
    if (layer.inputDim !== inputDim) throw new HeadFormatError(`inputDim ${layer.inputDim} does not match the previous width ${inputDim}`, path);
    if (layer.weights.length !== layer.inputDim * layer.units) throw new HeadFormatError(`weights has ${layer.weights.length} values, expected ${layer.inputDim} × ${layer.units}`, `${path}.weights`);
    if (layer.bias.length !== layer.units) throw new HeadFormatError(`bias has ${layer.bias.length} values, expected ${layer.units}`, `${path}.bias`);
    inputDim = layer.units;
  });
  if (inputDim !== head.labels.length) throw new HeadFormatError(`the last layer has ${inputDim} units but there are ${head.labels.length} labels`, "labels");
  if (head.standardize && (head.standardize.mean.length !== head.inputDim || head.standardize.std.length !== head.inputDim)) {
    throw new HeadFormatError(`mean and std need ${head.inputDim} values each`, "standardize");
  }
}

function sliceRange(floats: Float32Array, range: WeightRange, expectedLength: number, path: string, shape: string): Float32Array {
  if (range.length !== expectedLength) throw new HeadFormatError(`length is ${range.length}, expected ${expectedLength} for shape ${shape}`, `${path}.length`);
  if (range.offset + range.length > floats.length) {
    throw new HeadFormatError(`floats [${range.offset}, ${range.offset + range.length}) lie past the end of the weights binary (${floats.length} floats)`, path);
  }
  return floats.subarray(range.offset, range.offset + range.length);
}

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** float32 view of little-endian bytes; no copy when the bytes are 4-byte aligned on a little-endian host. */
export function readLittleEndianFloats(bytes: Uint8Array): Float32Array {
  const count = bytes.byteLength >>> 2;
  if (HOST_IS_LITTLE_ENDIAN) {
    if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, count);
    return new Float32Array(bytes.slice().buffer, 0, count);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Float32Array.from({ length: count }, (_, i) => view.getFloat32(4 * i, true));
}

export function toLittleEndianBytes(values: Float32Array): Uint8Array {
  if (HOST_IS_LITTLE_ENDIAN) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const bytes = new Uint8Array(values.byteLength);
  const view = new DataView(bytes.buffer);
  values.forEach((value, i) => view.setFloat32(4 * i, value, true));
  return bytes;
}
