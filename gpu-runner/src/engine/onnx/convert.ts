/**
 * The runner's back end of the backbone lowering (shared/backbone/lowering.ts): a tfjs layers model (Keras
 * functional JSON + weights) → ONNX model computing the same embedding as `buildFeatureExtractor` in
 * shared/backbone: NHWC float32 input `[n, H, W, C]` → `[n, dim]` output. The lowering has folded batch norm into the
 * convs and absorbed zero padding; each lowered op becomes one or two ONNX nodes (opset 13): Conv (+ Relu / Clip for a
 * fused activation), Pad, Mul + Add for a batch norm left standing, Relu / Clip, Add, Concat, MaxPool / AveragePool.
 * Supported layers are those of `lowerBackbone`; layers after the feature layers are cut first, so a model's
 * Reshape/Dense head never needs support.
 *
 * The input is transposed to NCHW inside the graph (one Transpose node); onnxruntime then picks its own blocked
 * layout for the convolutions.
 */
import { batchNormAffine, INPUT_VALUE, lowerBackbone, samePadding, type Activation, type Paddings } from "../../../../shared/backbone/lowering";
import type { BackboneBundle, FeatureSpec } from "../../../../shared/backbone/types";
import { encodeModel, float32Raw, int64Raw, TensorDataType, type NodeInit, type TensorInit } from "./protobuf";

export const ONNX_INPUT_NAME = "images";
export const ONNX_OUTPUT_NAME = "embedding";
const OPSET = 13;

export interface OnnxConversion {
  /** Serialised ModelProto. */
  bytes: Uint8Array;
  dim: number;
  inputShape: [number, number, number];
  /** Layers folded away (BN into conv, padding into conv, activations, dropout) — for logs. */
  folded: string[];
}

/**
 * Converts `bundle` cut at `spec.feature_layers` into ONNX (opset 13).
 * @throws UnsupportedGraphError (shared/backbone/lowering.ts) naming a layer or configuration the lowering does not take.
 */
export function convertToOnnx(bundle: BackboneBundle, spec: FeatureSpec): OnnxConversion {
  const lowered = lowerBackbone(bundle.modelJson, bundle.weightData, spec);
  const { inputShape, shapes } = lowered;
  const nodes: NodeInit[] = [];
  const initializers: TensorInit[] = [];
  /** ONNX value name of each lowered value (NCHW). */
  const valueName: string[] = [];
  valueName[INPUT_VALUE] = "images:nchw"; // layer values are "<layer>:0"
  nodes.push({ opType: "Transpose", inputs: [ONNX_INPUT_NAME], outputs: [valueName[INPUT_VALUE]], name: "to_nchw", attributes: { perm: [0, 3, 1, 2] } });

  const addFloat = (name: string, dims: number[], values: Float32Array): string => {
    initializers.push({ name, dims, dataType: TensorDataType.FLOAT, raw: float32Raw(values) });
    return name;
  };
  const addInt64 = (name: string, values: number[]): string => {
    initializers.push({ name, dims: [values.length], dataType: TensorDataType.INT64, raw: int64Raw(values) });
    return name;
  };
  let clipMinName: string | undefined;
  const clipMin = (): string => (clipMinName ??= addFloat("const_zero", [], Float32Array.of(0)));
  const clipMaxNames = new Map<number, string>();
  const clipMax = (max: number): string => {
    let name = clipMaxNames.get(max);
    if (!name) clipMaxNames.set(max, (name = addFloat(max === 6 ? "const_six" : `const_max_${max}`, [], Float32Array.of(max))));
    return name;
  };
  const emitActivation = (name: string, activation: Activation, input: string, output: string): void => {
    if (activation === "relu") nodes.push({ opType: "Relu", inputs: [input], outputs: [output], name });
    else nodes.push({ opType: "Clip", inputs: [input, clipMin(), clipMax(activation === "relu6" ? 6 : activation.clip)], outputs: [output], name });
  };

  for (const op of lowered.ops) {
    const out = `${op.layer}:0`;
    valueName[op.out] = out;
    switch (op.kind) {
      case "conv": {
        const [kh, kw, kernelIn, kernelOut] = op.kernelShape;
        const depthwise = op.depthwise;
        const outChannels = shapes[op.out]![2];
        const groupIn = depthwise ? 1 : kernelIn;
        // tfjs kernels: conv [kh, kw, in, out]; depthwise [kh, kw, in, mult] with output channel c * mult + m.
        // ONNX: [out, in / group, kh, kw].
        const w = new Float32Array(outChannels * groupIn * kh * kw);
        for (let y = 0; y < kh; y++) {
          for (let x = 0; x < kw; x++) {
            for (let i = 0; i < kernelIn; i++) {
              for (let o = 0; o < kernelOut; o++) {
                const oc = depthwise ? i * kernelOut + o : o;
                const ic = depthwise ? 0 : i;
                w[((oc * groupIn + ic) * kh + y) * kw + x] = op.kernel[((y * kw + x) * kernelIn + i) * kernelOut + o]!;
              }
            }
          }
        }
        const attributes: NodeInit["attributes"] = { kernel_shape: [kh, kw], strides: op.strides, dilations: op.dilations, group: depthwise ? kernelIn : 1 };
        // Explicit pads always: onnxruntime refuses auto_pad SAME_UPPER on a dilated conv.
        attributes.pads = onnxPads(op.padding === "same" ? samePadding(shapes[op.input]!, [kh, kw], op.strides, op.dilations) : op.padding);
        const convOut = op.activation === "linear" ? out : `${op.layer}:preact`;
        nodes.push({
          opType: "Conv",
          inputs: [valueName[op.input]!, addFloat(`${op.layer}/W`, [outChannels, groupIn, kh, kw], w), addFloat(`${op.layer}/B`, [outChannels], op.bias ?? new Float32Array(outChannels))],
          outputs: [convOut],
          name: op.layer,
          attributes,
        });
        if (op.activation !== "linear") emitActivation(`${op.layer}/activation`, op.activation, convOut, out);
        break;
      }
      case "pad": {
        const [[top, bottom], [left, right]] = op.paddings;
        nodes.push({ opType: "Pad", inputs: [valueName[op.input]!, addInt64(`${op.layer}/pads`, [0, 0, top, left, 0, 0, bottom, right])], outputs: [out], name: op.layer });
        break;
      }
      case "batchNorm": {
        const channels = op.mean.length;
        const { scale, shift } = batchNormAffine(op);
        const s = addFloat(`${op.layer}/scale`, [channels, 1, 1], Float32Array.from(scale));
        const b = addFloat(`${op.layer}/shift`, [channels, 1, 1], Float32Array.from(shift));
        nodes.push({ opType: "Mul", inputs: [valueName[op.input]!, s], outputs: [`${op.layer}:scaled`], name: `${op.layer}/mul` });
        nodes.push({ opType: "Add", inputs: [`${op.layer}:scaled`, b], outputs: [out], name: `${op.layer}/add` });
        break;
      }
      case "activation":
        emitActivation(op.layer, op.activation, valueName[op.input]!, out);
        break;
      case "add": {
        let acc = valueName[op.inputs[0]!]!;
        for (let i = 1; i < op.inputs.length; i++) {
          const target = i === op.inputs.length - 1 ? out : `${op.layer}:partial${i}`;
          nodes.push({ opType: "Add", inputs: [acc, valueName[op.inputs[i]!]!], outputs: [target], name: `${op.layer}/${i}` });
          acc = target;
        }
        break;
      }
      case "concat":
        nodes.push({ opType: "Concat", inputs: op.inputs.map((v) => valueName[v]!), outputs: [out], name: op.layer, attributes: { axis: 1 } });
        break;
      case "pool": {
        // TF's 'same' average pooling divides by the pixels inside the image: count_include_pad 0 (ONNX's default).
        const pads = op.padding === "same" ? samePadding(shapes[op.input]!, op.size, op.strides) : ([[0, 0], [0, 0]] as Paddings);
        const attributes: NodeInit["attributes"] = { kernel_shape: op.size, strides: op.strides, pads: onnxPads(pads) };
        nodes.push({ opType: op.max ? "MaxPool" : "AveragePool", inputs: [valueName[op.input]!], outputs: [out], name: op.layer, attributes });
        break;
      }
    }
  }

  // Feature head: global pooling of each feature map, concatenated in spec order.
  const pooled: string[] = [];
  const dim = lowered.dim;
  // pooling "none": the feature map itself, NHWC and flattened (the cut activation partial fine-tuning caches).
  if (spec.pooling === "none") nodes.push({ opType: "Transpose", inputs: [valueName[lowered.features[0]!.value]!], outputs: ["feature_nhwc"], name: "feature_nhwc", attributes: { perm: [0, 2, 3, 1] } });
  if (spec.pooling === "none") pooled.push("feature_nhwc");
  else lowered.features.forEach((feature, index) => {
    const value = valueName[feature.value]!;
    nodes.push({ opType: "GlobalAveragePool", inputs: [value], outputs: [`feature_avg_${index}`], name: `feature_avg_${index}` });
    pooled.push(`feature_avg_${index}`);
    if (spec.pooling === "avg+max") {
      nodes.push({ opType: "GlobalMaxPool", inputs: [value], outputs: [`feature_max_${index}`], name: `feature_max_${index}` });
      pooled.push(`feature_max_${index}`);
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
  return { bytes, dim, inputShape, folded: lowered.folded };
}

/** `[[top, bottom], [left, right]]` → ONNX's `[top, left, bottom, right]`. */
function onnxPads([[top, bottom], [left, right]]: Paddings): number[] {
  return [top, left, bottom, right];
}
