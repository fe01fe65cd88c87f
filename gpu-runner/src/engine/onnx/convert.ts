/**
 * tfjs layers model (Keras functional JSON + weights) → ONNX model computing the same embedding as
 * `buildFeatureExtractor` in shared/backbone: NHWC float32 input `[n, H, W, C]` → `[n, dim]` output.
 *
 * Supported layers are those MobileNet v1/v2 use up to their last feature map: InputLayer, ZeroPadding2D
 * (folded into the next conv's pads when that conv is "valid"), Conv2D, DepthwiseConv2D, BatchNormalization
 * (folded into the preceding conv when nothing else reads the conv), ReLU / Activation relu|relu6|linear, Add,
 * Concatenate, Dropout (identity), GlobalAveragePooling2D. Layers after the feature layers are cut before
 * conversion, so a model's Reshape/Dense head never needs support.
 *
 * The input is transposed to NCHW inside the graph (one Transpose node); onnxruntime then picks its own blocked
 * layout for the convolutions.
 */
import { decodeFloatWeights, getInputShape, getLayerRecords, inboundLayerNames, isGraphModel, pruneToFeatureLayers, validateFeatureSpec, type FloatWeight } from "../../../../shared/backbone/model-json";
import type { BackboneBundle, FeatureSpec, LayerRecord } from "../../../../shared/backbone/types";
import { encodeModel, float32Raw, int64Raw, TensorDataType, type NodeInit, type TensorInit } from "./protobuf";

export const ONNX_INPUT_NAME = "images";
export const ONNX_OUTPUT_NAME = "embedding";
const OPSET = 13;

export interface OnnxConversion {
  /** Serialised ModelProto. */
  bytes: Uint8Array;
  dim: number;
  inputShape: [number, number, number];
  /** Layers folded away (BN into conv, padding into conv, dropout) — for logs. */
  folded: string[];
}

/** Keras `[[top, bottom], [left, right]]` / `[h, w]` / `n` padding → `[top, bottom, left, right]`. */
function zeroPadding(config: Record<string, unknown>): [number, number, number, number] {
  const p = config.padding as number | number[] | number[][];
  if (typeof p === "number") return [p, p, p, p];
  if (Array.isArray(p) && typeof p[0] === "number") return [p[0] as number, p[0] as number, p[1] as number, p[1] as number];
  const [[top, bottom], [left, right]] = p as number[][];
  return [top!, bottom!, left!, right!];
}

function pair(value: unknown, fallback: number): [number, number] {
  if (value == null) return [fallback, fallback];
  if (typeof value === "number") return [value, value];
  const arr = value as number[];
  return [arr[0]!, arr[1] ?? arr[0]!];
}

function checkChannelsLast(layer: LayerRecord): void {
  const format = layer.config.data_format;
  if (format != null && format !== "channels_last") throw new Error(`layer ${layer.name}: data_format ${format} is not supported`);
}

/**
 * Converts `bundle` cut at `spec.feature_layers` into ONNX (opset 13). Throws on a layer type or configuration
 * the converter does not handle, naming the layer.
 */
export function convertToOnnx(bundle: BackboneBundle, spec: FeatureSpec): OnnxConversion {
  if (isGraphModel(bundle.modelJson)) throw new Error(`convertToOnnx: ${bundle.name} is a graph model; only layers models are converted`);
  validateFeatureSpec(bundle.modelJson, spec);
  const inputShape = getInputShape(bundle.modelJson, spec.input_size);
  const pruned = pruneToFeatureLayers(bundle.modelJson, spec.feature_layers);
  const layers = getLayerRecords(pruned);
  const weights = decodeFloatWeights(bundle.modelJson, bundle.weightData);
  const featureSet = new Set(spec.feature_layers);

  const consumers = new Map<string, string[]>();
  for (const layer of layers) {
    for (const from of inboundLayerNames(layer)) consumers.set(from, [...(consumers.get(from) ?? []), layer.name]);
  }
  const byName = new Map(layers.map((layer) => [layer.name, layer]));
  const soleConsumer = (name: string): LayerRecord | undefined => {
    const list = consumers.get(name) ?? [];
    return list.length === 1 && !featureSet.has(name) ? byName.get(list[0]!) : undefined;
  };

  const nodes: NodeInit[] = [];
  const initializers: TensorInit[] = [];
  const folded: string[] = [];
  /** Keras layer name → ONNX value name holding its output (NCHW for 4-D values). */
  const valueOf = new Map<string, string>();
  /** Channel count of each 4-D output. */
  const channelsOf = new Map<string, number>();
  /** ZeroPadding2D layers folded into their consumer: layer name → pads [t, b, l, r]. */
  const pendingPads = new Map<string, [number, number, number, number]>();
  /** BatchNormalization layers folded into their producer conv. */
  const foldedBn = new Set<string>();

  const addFloat = (name: string, dims: number[], values: Float32Array): string => {
    initializers.push({ name, dims, dataType: TensorDataType.FLOAT, raw: float32Raw(values) });
    return name;
  };
  const addInt64 = (name: string, values: number[]): string => {
    initializers.push({ name, dims: [values.length], dataType: TensorDataType.INT64, raw: int64Raw(values) });
    return name;
  };
  const weight = (layer: LayerRecord, param: string): FloatWeight => {
    const direct = weights.get(`${layer.name}/${param}`);
    if (direct) return direct;
    for (const [name, value] of weights) if (name.startsWith(`${layer.name}/`) && name.endsWith(`/${param}`)) return value;
    throw new Error(`layer ${layer.name}: weight ${param} not found in the manifest`);
  };
  const inputOf = (layer: LayerRecord, index = 0): string => {
    const from = inboundLayerNames(layer)[index];
    const value = from === undefined ? undefined : valueOf.get(from);
    if (!value) throw new Error(`layer ${layer.name}: input ${from} was not converted`);
    return value;
  };
  const emitActivation = (layerName: string, kind: string, input: string, output: string): void => {
    if (kind === "linear") nodes.push({ opType: "Identity", inputs: [input], outputs: [output], name: layerName });
    else if (kind === "relu") nodes.push({ opType: "Relu", inputs: [input], outputs: [output], name: layerName });
    else if (kind === "relu6") {
      nodes.push({ opType: "Clip", inputs: [input, clipMin(), clipMax6()], outputs: [output], name: layerName });
    } else throw new Error(`layer ${layerName}: activation ${kind} is not supported`);
  };
  let clipMinName: string | undefined;
  const clipMin = (): string => (clipMinName ??= addFloat("const_zero", [], Float32Array.of(0)));
  let clipMax6Name: string | undefined;
  const clipMax6 = (): string => (clipMax6Name ??= addFloat("const_six", [], Float32Array.of(6)));

  /** BN as per-channel (scale, shift) in float64 for folding precision. */
  const bnAffine = (bn: LayerRecord, channels: number): { scale: Float64Array; shift: Float64Array } => {
    const axis = (bn.config.axis as number | number[] | undefined) ?? -1;
    const axisValue = Array.isArray(axis) ? axis[0] : axis;
    if (axisValue !== -1 && axisValue !== 3) throw new Error(`layer ${bn.name}: BatchNormalization on axis ${axis} is not supported`);
    const epsilon = (bn.config.epsilon as number | undefined) ?? 1e-3;
    const gamma = bn.config.scale === false ? undefined : weight(bn, "gamma").values;
    const beta = bn.config.center === false ? undefined : weight(bn, "beta").values;
    const mean = weight(bn, "moving_mean").values;
    const variance = weight(bn, "moving_variance").values;
    const scale = new Float64Array(channels);
    const shift = new Float64Array(channels);
    for (let c = 0; c < channels; c++) {
      // tfjs computes (x - mean) * rsqrt(var + eps) * gamma + beta in float32.
      const inv = Math.fround(1 / Math.sqrt(Math.fround(variance[c]! + epsilon)));
      scale[c] = inv * (gamma ? gamma[c]! : 1);
      shift[c] = (beta ? beta[c]! : 0) - mean[c]! * scale[c]!;
    }
    return { scale, shift };
  };

  for (const layer of layers) {
    const name = layer.name;
    const out = `${name}:0`;
    switch (layer.class_name) {
      case "InputLayer": {
        nodes.push({ opType: "Transpose", inputs: [ONNX_INPUT_NAME], outputs: [out], name: "to_nchw", attributes: { perm: [0, 3, 1, 2] } });
        valueOf.set(name, out);
        channelsOf.set(name, inputShape[2]);
        break;
      }
      case "ZeroPadding2D": {
        checkChannelsLast(layer);
        const pads = zeroPadding(layer.config);
        const next = soleConsumer(name);
        const input = inputOf(layer);
        channelsOf.set(name, channelsOf.get(inboundLayerNames(layer)[0]!)!);
        if (next && (next.class_name === "Conv2D" || next.class_name === "DepthwiseConv2D") && next.config.padding === "valid") {
          pendingPads.set(name, pads);
          valueOf.set(name, input);
          folded.push(name);
        } else {
          const [t, b, l, r] = pads;
          const padsName = addInt64(`${name}/pads`, [0, 0, t, l, 0, 0, b, r]);
          nodes.push({ opType: "Pad", inputs: [input, padsName], outputs: [out], name });
          valueOf.set(name, out);
        }
        break;
      }
      case "Conv2D":
      case "DepthwiseConv2D": {
        checkChannelsLast(layer);
        const depthwise = layer.class_name === "DepthwiseConv2D";
        const from = inboundLayerNames(layer)[0]!;
        const inChannels = channelsOf.get(from)!;
        const kernel = weight(layer, depthwise ? "depthwise_kernel" : "kernel");
        const [kh, kw] = kernel.shape as [number, number, number, number];
        const multiplier = depthwise ? kernel.shape[3]! : 1;
        const outChannels = depthwise ? inChannels * multiplier : kernel.shape[3]!;
        const groupIn = depthwise ? 1 : inChannels;
        // tfjs kernels: conv [kh, kw, in, out]; depthwise [kh, kw, in, mult] with output channel c * mult + m.
        // ONNX: [out, in / group, kh, kw].
        const w = new Float64Array(outChannels * groupIn * kh * kw);
        for (let y = 0; y < kh; y++) {
          for (let x = 0; x < kw; x++) {
            for (let i = 0; i < kernel.shape[2]!; i++) {
              for (let o = 0; o < kernel.shape[3]!; o++) {
                const v = kernel.values[((y * kw + x) * kernel.shape[2]! + i) * kernel.shape[3]! + o]!;
                const oc = depthwise ? i * multiplier + o : o;
                const ic = depthwise ? 0 : i;
                w[((oc * groupIn + ic) * kh + y) * kw + x] = v;
              }
            }
          }
        }
        const bias = new Float64Array(outChannels);
        if (layer.config.use_bias !== false) {
          const b = weight(layer, "bias").values;
          for (let c = 0; c < outChannels; c++) bias[c] = b[c]!;
        }
        const activation = (layer.config.activation as string | undefined) ?? "linear";
        const next = soleConsumer(name);
        let producedName = name;
        if (activation === "linear" && next?.class_name === "BatchNormalization") {
          const { scale, shift } = bnAffine(next, outChannels);
          const perOut = groupIn * kh * kw;
          for (let c = 0; c < outChannels; c++) {
            for (let k = 0; k < perOut; k++) w[c * perOut + k]! *= scale[c]!;
            bias[c] = bias[c]! * scale[c]! + shift[c]!;
          }
          foldedBn.add(next.name);
          folded.push(next.name);
          producedName = next.name;
        }
        const strides = pair(layer.config.strides, 1);
        const dilations = pair(layer.config.dilation_rate, 1);
        const attributes: NodeInit["attributes"] = {
          kernel_shape: [kh, kw],
          strides,
          dilations,
          group: depthwise ? inChannels : 1,
        };
        const padded = pendingPads.get(from);
        if (layer.config.padding === "same") {
          if (padded) throw new Error(`layer ${name}: "same" padding after a folded ZeroPadding2D`);
          attributes.auto_pad = "SAME_UPPER"; // TF "same": the odd pixel of padding goes bottom/right.
        } else if (layer.config.padding === "valid") {
          const [t, b, l, r] = padded ?? [0, 0, 0, 0];
          attributes.pads = [t, l, b, r];
        } else throw new Error(`layer ${name}: padding ${layer.config.padding} is not supported`);
        const convOut = activation === "linear" ? `${producedName}:0` : `${name}:preact`;
        nodes.push({
          opType: "Conv",
          inputs: [inputOf(layer), addFloat(`${name}/W`, [outChannels, groupIn, kh, kw], Float32Array.from(w)), addFloat(`${name}/B`, [outChannels], Float32Array.from(bias))],
          outputs: [convOut],
          name,
          attributes,
        });
        if (activation !== "linear") emitActivation(`${name}/activation`, activation, convOut, out);
        valueOf.set(name, activation === "linear" ? convOut : out);
        channelsOf.set(name, outChannels);
        if (producedName !== name) {
          valueOf.set(producedName, convOut);
          channelsOf.set(producedName, outChannels);
        }
        break;
      }
      case "BatchNormalization": {
        if (foldedBn.has(name)) break;
        const channels = channelsOf.get(inboundLayerNames(layer)[0]!)!;
        const { scale, shift } = bnAffine(layer, channels);
        const s = addFloat(`${name}/scale`, [channels, 1, 1], Float32Array.from(scale));
        const b = addFloat(`${name}/shift`, [channels, 1, 1], Float32Array.from(shift));
        nodes.push({ opType: "Mul", inputs: [inputOf(layer), s], outputs: [`${name}:scaled`], name: `${name}/mul` });
        nodes.push({ opType: "Add", inputs: [`${name}:scaled`, b], outputs: [out], name: `${name}/add` });
        valueOf.set(name, out);
        channelsOf.set(name, channels);
        break;
      }
      case "ReLU": {
        const maxValue = layer.config.max_value as number | null | undefined;
        if ((layer.config.negative_slope ?? 0) !== 0 || (layer.config.threshold ?? 0) !== 0) {
          throw new Error(`layer ${name}: ReLU with negative_slope/threshold is not supported`);
        }
        if (maxValue == null) nodes.push({ opType: "Relu", inputs: [inputOf(layer)], outputs: [out], name });
        else {
          const max = addFloat(`${name}/max`, [], Float32Array.of(maxValue));
          nodes.push({ opType: "Clip", inputs: [inputOf(layer), clipMin(), max], outputs: [out], name });
        }
        valueOf.set(name, out);
        channelsOf.set(name, channelsOf.get(inboundLayerNames(layer)[0]!)!);
        break;
      }
      case "Activation": {
        emitActivation(name, layer.config.activation as string, inputOf(layer), out);
        valueOf.set(name, out);
        channelsOf.set(name, channelsOf.get(inboundLayerNames(layer)[0]!)!);
        break;
      }
      case "Dropout": {
        valueOf.set(name, inputOf(layer));
        channelsOf.set(name, channelsOf.get(inboundLayerNames(layer)[0]!)!);
        folded.push(name);
        break;
      }
      case "Add": {
        const inputs = inboundLayerNames(layer).map((_, i) => inputOf(layer, i));
        let acc = inputs[0]!;
        for (let i = 1; i < inputs.length; i++) {
          const target = i === inputs.length - 1 ? out : `${name}:partial${i}`;
          nodes.push({ opType: "Add", inputs: [acc, inputs[i]!], outputs: [target], name: `${name}/${i}` });
          acc = target;
        }
        valueOf.set(name, out);
        channelsOf.set(name, channelsOf.get(inboundLayerNames(layer)[0]!)!);
        break;
      }
      case "Concatenate": {
        const axis = (layer.config.axis as number | undefined) ?? -1;
        if (axis !== -1 && axis !== 3) throw new Error(`layer ${name}: Concatenate on axis ${axis} is not supported`);
        const froms = inboundLayerNames(layer);
        nodes.push({ opType: "Concat", inputs: froms.map((_, i) => inputOf(layer, i)), outputs: [out], name, attributes: { axis: 1 } });
        valueOf.set(name, out);
        channelsOf.set(name, froms.reduce((sum, f) => sum + channelsOf.get(f)!, 0));
        break;
      }
      case "GlobalAveragePooling2D": {
        checkChannelsLast(layer);
        nodes.push({ opType: "GlobalAveragePool", inputs: [inputOf(layer)], outputs: [`${name}:4d`], name });
        nodes.push({ opType: "Flatten", inputs: [`${name}:4d`], outputs: [out], name: `${name}/flatten`, attributes: { axis: 1 } });
        valueOf.set(name, out);
        break;
      }
      default:
        throw new Error(`layer ${name}: ${layer.class_name} is not supported by the ONNX converter`);
    }
  }

  // Feature head: global pooling of each feature map, concatenated in spec order.
  const pooled: string[] = [];
  let dim = 0;
  spec.feature_layers.forEach((layerName, index) => {
    const channels = channelsOf.get(layerName);
    const value = valueOf.get(layerName);
    if (channels === undefined || !value || byName.get(layerName)?.class_name === "GlobalAveragePooling2D") {
      throw new Error(`feature layer ${layerName} must output a 4-D feature map`);
    }
    nodes.push({ opType: "GlobalAveragePool", inputs: [value], outputs: [`feature_avg_${index}`], name: `feature_avg_${index}` });
    pooled.push(`feature_avg_${index}`);
    dim += channels;
    if (spec.pooling === "avg+max") {
      nodes.push({ opType: "GlobalMaxPool", inputs: [value], outputs: [`feature_max_${index}`], name: `feature_max_${index}` });
      pooled.push(`feature_max_${index}`);
      dim += channels;
    }
  });
  const concatenated = pooled.length === 1 ? pooled[0]! : "feature_concat";
  if (pooled.length > 1) nodes.push({ opType: "Concat", inputs: pooled, outputs: [concatenated], name: "feature_concat", attributes: { axis: 1 } });
  const flatOut = spec.flip_average ? "feature_both" : ONNX_OUTPUT_NAME;
  nodes.push({ opType: "Flatten", inputs: [concatenated], outputs: [flatOut], name: "feature_flatten", attributes: { axis: 1 } });

  if (spec.flip_average) {
    // Run [images; mirrored images] as one batch of 2n, then average the two halves.
    const transpose = nodes.find((node) => node.name === "to_nchw")!;
    const starts = addInt64("flip/starts", [-1]);
    const ends = addInt64("flip/ends", [Number.MIN_SAFE_INTEGER]);
    const axes = addInt64("flip/axes", [2]);
    const steps = addInt64("flip/steps", [-1]);
    nodes.unshift(
      { opType: "Slice", inputs: [ONNX_INPUT_NAME, starts, ends, axes, steps], outputs: ["images_mirrored"], name: "flip/slice" },
      { opType: "Concat", inputs: [ONNX_INPUT_NAME, "images_mirrored"], outputs: ["images_both"], name: "flip/concat", attributes: { axis: 0 } },
    );
    transpose.inputs = ["images_both"];
    const shape = addInt64("flip/shape", [2, -1, dim]);
    nodes.push({ opType: "Reshape", inputs: [flatOut, shape], outputs: ["feature_pairs"], name: "flip/reshape" });
    nodes.push({ opType: "ReduceMean", inputs: ["feature_pairs"], outputs: [ONNX_OUTPUT_NAME], name: "flip/mean", attributes: { axes: [0], keepdims: 0 } });
  }

  const bytes = encodeModel(
    {
      name: `${bundle.name} features`,
      nodes,
      initializers,
      inputs: [{ name: ONNX_INPUT_NAME, elemType: TensorDataType.FLOAT, dims: ["n", inputShape[0], inputShape[1], inputShape[2]] }],
      outputs: [{ name: ONNX_OUTPUT_NAME, elemType: TensorDataType.FLOAT, dims: ["n", dim] }],
    },
    OPSET,
  );
  return { bytes, dim, inputShape, folded };
}
