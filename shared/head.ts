/**
 * The classification head: what training produces, what the Worker keeps resident and applies at the edge.
 *
 * On the wire a head is two objects:
 * - a JSON manifest (`HeadManifest`, format "edgetune-head/1") with the labels, the standardisation statistics and
 *   the layer list, each layer pointing into
 * - one little-endian float32 binary holding every layer's weights then bias, back to back, no padding.
 *
 * In memory (`Head`) the layers are `Float32Array`s, viewed straight onto the fetched binary when it is aligned, so a
 * resident head costs its weight bytes and little more: a linear head over D = 1280 features and 20 classes is
 * 1280·20·4 B ≈ 100 KiB, so 1,000 such heads fit in the Worker's 128 MB. Applying a head needs no tfjs: `applyHead`
 * is plain TypeScript, and the runner evaluates with the same function, which is why the probabilities a user sees
 * at the edge are bit-identical to the ones behind the reported metrics.
 *
 * For the browser, `headToTfjsModel` writes the same head as a tfjs layers model (`model.json` + `weights.bin`).
 */
import { z } from "zod";

export const HEAD_FORMAT = "edgetune-head/1";

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
}

/** Where a tensor sits in the weights binary. Both numbers count float32 values, not bytes. */
const weightRangeSchema = z.object({
  offset: z.number().int().min(0),
  length: z.number().int().min(0),
});
export type WeightRange = z.infer<typeof weightRangeSchema>;

const denseLayerManifestSchema = z.object({
  type: z.literal("dense"),
  units: z.number().int().min(1),
  activation: z.enum(["relu", "softmax", "linear"]),
  weights: weightRangeSchema,
  bias: weightRangeSchema,
});

/**
 * The JSON half of a stored head. Unknown top-level keys are kept by the schema and ignored by `parseHead`, so
 * newer writers can add fields (training metadata, say) without breaking older readers.
 */
export const headManifestSchema = z
  .object({
    format: z.literal(HEAD_FORMAT),
    input_dim: z.number().int().min(1),
    labels: z.array(z.string()).min(1),
    standardize: z.object({ mean: z.array(z.number()), std: z.array(z.number()) }).nullable(),
    layers: z.array(denseLayerManifestSchema).min(1),
    /** Exact size of the weights binary: 4 × the number of float32 values. */
    weights_byte_length: z.number().int().min(0),
  })
  .passthrough();
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
    format: HEAD_FORMAT,
    input_dim: head.inputDim,
    labels: [...head.labels],
    // Array.from on a Float32Array yields the exact float32 values as doubles; JSON round-trips them exactly.
    standardize: head.standardize
      ? { mean: Array.from(head.standardize.mean), std: Array.from(head.standardize.std) }
      : null,
    layers,
    weights_byte_length: packed.byteLength,
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

  return { inputDim: spec.input_dim, labels: [...spec.labels], standardize, layers };
}

/**
 * Class probabilities for a batch of embeddings: standardise, then each dense layer in turn, then softmax.
 *
 * Plain TypeScript with float64 accumulation in a fixed order, so the same inputs give the same bits in Node and in
 * workerd (both V8); the result is rounded to float32 once, at the end.
 *
 * @param embeddings shape [n, inputDim], row-major.
 * @param n number of embeddings.
 * @returns probabilities, shape [n, labels.length], row-major; each row sums to 1 (up to float32 rounding).
 */
export function applyHead(head: Head, embeddings: Float32Array, n: number): Float32Array {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`n must be a non-negative integer, got ${n}`);
  if (embeddings.length !== n * head.inputDim) {
    throw new RangeError(`embeddings has ${embeddings.length} values, expected n × input_dim = ${n} × ${head.inputDim}`);
  }
  const classCount = head.labels.length;
  const probabilities = new Float32Array(n * classCount);
  const widest = Math.max(head.inputDim, ...head.layers.map((layer) => layer.units));
  let current = new Float64Array(widest);
  let next = new Float64Array(widest);

  for (let row = 0; row < n; row++) {
    const rowStart = row * head.inputDim;
    if (head.standardize) {
      const { mean, std } = head.standardize;
      for (let i = 0; i < head.inputDim; i++) current[i] = (embeddings[rowStart + i]! - mean[i]!) / std[i]!;
    } else {
      for (let i = 0; i < head.inputDim; i++) current[i] = embeddings[rowStart + i]!;
    }
    for (const layer of head.layers) {
      const { units, weights, bias } = layer;
      for (let u = 0; u < units; u++) next[u] = bias[u]!;
      // Input-major loop: walks `weights` sequentially, which is what its [inputDim, units] layout is for.
      for (let i = 0; i < layer.inputDim; i++) {
        const value = current[i]!;
        if (value === 0) continue; // common after relu; skipping adds exactly nothing
        const base = i * units;
        for (let u = 0; u < units; u++) next[u] += value * weights[base + u]!;
      }
      if (layer.activation === "relu") {
        for (let u = 0; u < units; u++) if (!(next[u]! > 0)) next[u] = 0;
      } else if (layer.activation === "softmax") {
        softmaxInPlace(next, units);
      }
      [current, next] = [next, current];
    }
    const outStart = row * classCount;
    for (let c = 0; c < classCount; c++) probabilities[outStart + c] = current[c]!;
  }
  return probabilities;
}

/** Softmax of `values[0..count)` in place, shifted by the maximum so exp() cannot overflow. */
function softmaxInPlace(values: Float64Array, count: number): void {
  let max = -Infinity;
  for (let i = 0; i < count; i++) if (values[i]! > max) max = values[i]!;
  let sum = 0;
  for (let i = 0; i < count; i++) {
    const e = Math.exp(values[i]! - max);
    values[i] = e;
    sum += e;
  }
  for (let i = 0; i < count; i++) values[i] = values[i]! / sum;
}

/** One prediction as the API returns it. */
export interface LabelProbability {
  label: string;
  probability: number;
}

/**
 * The `k` most probable labels of one embedding, most probable first; ties go to the lower class index.
 *
 * @param probabilities one row of `applyHead`'s output, shape [labels.length]
 *   (for row r of a batch: `probs.subarray(r * classCount, (r + 1) * classCount)`).
 */
export function topK(probabilities: ArrayLike<number>, k: number, labels: readonly string[]): LabelProbability[] {
  if (probabilities.length !== labels.length) {
    throw new RangeError(`probabilities has ${probabilities.length} values but there are ${labels.length} labels`);
  }
  const order = Array.from({ length: labels.length }, (_, index) => index);
  order.sort((a, b) => probabilities[b]! - probabilities[a]! || a - b);
  return order.slice(0, Math.max(0, Math.min(k, labels.length))).map((index) => ({ label: labels[index]!, probability: probabilities[index]! }));
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

// ---------------------------------------------------------------- tfjs export

/** One weight of a tfjs weights manifest. */
export interface TfjsWeightSpec {
  name: string;
  shape: number[];
  dtype: "float32";
}

/** A tfjs layers-model `model.json`: a Sequential of Dense layers. */
export interface TfjsHeadModelJson {
  format: "layers-model";
  generatedBy: string;
  convertedBy: null;
  modelTopology: {
    class_name: "Sequential";
    config: { name: string; layers: Array<{ class_name: "Dense"; config: Record<string, unknown> }> };
    keras_version: string;
    backend: string;
  };
  weightsManifest: Array<{ paths: string[]; weights: TfjsWeightSpec[] }>;
  /** The head's labels, in output order, so a browser can name the predictions without another file. */
  userDefinedMetadata: { format: typeof HEAD_FORMAT; labels: string[] };
}

/** File name of the weights binary that the exported `model.json` refers to. */
export const TFJS_WEIGHTS_FILE_NAME = "weights.bin";

/**
 * The head as a tfjs layers model for download: a Sequential of Dense layers taking raw embeddings [n, inputDim]
 * and returning probabilities [n, labels.length].
 *
 * Standardisation is folded into the first Dense layer, which is exact algebra:
 * `((x - mean) / std) · W + b = x · (W / std) + (b - (mean / std) · W)`, computed in float64 and rounded once to
 * float32. No tfjs import: the Worker can build this file on request.
 *
 * Load it with
 * `tf.loadLayersModel(tf.io.fromMemory({modelTopology, weightSpecs: weightsManifest[0].weights, weightData}))`,
 * or serve `model.json` next to `weights.bin` and call `tf.loadLayersModel(url)`.
 */
export function headToTfjsModel(head: Head): { modelJson: TfjsHeadModelJson; weightData: ArrayBuffer } {
  assertHeadShapes(head);
  const tensors: Float32Array[] = [];
  const weightSpecs: TfjsWeightSpec[] = [];
  const layers = head.layers.map((layer, index) => {
    const name = `edgetune_dense_${index + 1}`;
    let { weights, bias } = layer;
    if (index === 0 && head.standardize) ({ weights, bias } = foldStandardization(layer, head.standardize));
    tensors.push(weights, bias);
    weightSpecs.push({ name: `${name}/kernel`, shape: [layer.inputDim, layer.units], dtype: "float32" });
    weightSpecs.push({ name: `${name}/bias`, shape: [layer.units], dtype: "float32" });
    return {
      class_name: "Dense" as const,
      config: {
        units: layer.units,
        activation: layer.activation,
        use_bias: true,
        kernel_initializer: { class_name: "Zeros", config: {} },
        bias_initializer: { class_name: "Zeros", config: {} },
        kernel_regularizer: null,
        bias_regularizer: null,
        activity_regularizer: null,
        kernel_constraint: null,
        bias_constraint: null,
        name,
        trainable: false,
        dtype: "float32",
        ...(index === 0 ? { batch_input_shape: [null, head.inputDim] } : {}),
      },
    };
  });

  const packed = new Float32Array(tensors.reduce((sum, tensor) => sum + tensor.length, 0));
  let offset = 0;
  for (const tensor of tensors) {
    packed.set(tensor, offset);
    offset += tensor.length;
  }
  const bytes = toLittleEndianBytes(packed);
  const weightData = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  return {
    modelJson: {
      format: "layers-model",
      generatedBy: "edgetune",
      convertedBy: null,
      modelTopology: {
        class_name: "Sequential",
        config: { name: "edgetune_head", layers },
        keras_version: "tfjs-layers 4.22.0",
        backend: "tensor_flow.js",
      },
      weightsManifest: [{ paths: [TFJS_WEIGHTS_FILE_NAME], weights: weightSpecs }],
      userDefinedMetadata: { format: HEAD_FORMAT, labels: [...head.labels] },
    },
    weightData,
  };
}

/** First-layer weights and bias with `(x - mean) / std` folded in; see `headToTfjsModel`. */
function foldStandardization(layer: DenseLayer, { mean, std }: Standardization): { weights: Float32Array; bias: Float32Array } {
  const weights = new Float32Array(layer.weights.length);
  const bias = Float64Array.from(layer.bias);
  for (let i = 0; i < layer.inputDim; i++) {
    const scale = 1 / std[i]!;
    const shift = mean[i]! / std[i]!;
    const base = i * layer.units;
    for (let u = 0; u < layer.units; u++) {
      const w = layer.weights[base + u]!;
      weights[base + u] = w * scale;
      bias[u] -= shift * w;
    }
  }
  return { weights, bias: Float32Array.from(bias) };
}

// ---------------------------------------------------------------- helpers

/** Throws unless the in-memory head is internally consistent (used before writing it anywhere). */
function assertHeadShapes(head: Head): void {
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
function readLittleEndianFloats(bytes: Uint8Array): Float32Array {
  const count = bytes.byteLength >>> 2;
  if (HOST_IS_LITTLE_ENDIAN) {
    if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, count);
    return new Float32Array(bytes.slice().buffer, 0, count);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Float32Array.from({ length: count }, (_, i) => view.getFloat32(4 * i, true));
}

function toLittleEndianBytes(values: Float32Array): Uint8Array {
  if (HOST_IS_LITTLE_ENDIAN) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const bytes = new Uint8Array(values.byteLength);
  const view = new DataView(bytes.buffer);
  values.forEach((value, i) => view.setFloat32(4 * i, value, true));
  return bytes;
}
