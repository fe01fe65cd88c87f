/** The head as a tfjs layers model (model.json + weights.bin), for the browser. */
import { HEAD_FORMAT, assertHeadShapes, toLittleEndianBytes, type DenseLayer, type Head, type Standardization } from "./format";

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
