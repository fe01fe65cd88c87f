/**
 * What a backbone costs to run once (batch 1), told from its model.json alone, at import: floating-point operations,
 * the bytes its weights take as float32 (what an engine holds, whatever the files store), and the peak bytes of live
 * activations while the layers up to the feature layers run in order (a tensor lives from the step that makes it to
 * its last reader). The Worker stores these on the backbone row and refuses edge serving above its budget
 * (workers/services/inference.ts).
 *
 * It is an estimate, exact for what convolutional backbones are made of (convolutions, dense layers, pooling,
 * padding, merges, elementwise layers) and approximate where a graph model's shape depends on a constant's value,
 * which model.json does not carry (the weight files do): a Pad is taken to keep its input's size, a Mean/Max/Sum to
 * reduce the spatial axes, a ConcatV2 to join channels, a Reshape to keep its element count. Those are the shapes
 * backbones use them for; the error is a few padded pixels. Runs after the import audit (shared/backbone/audit.ts),
 * so the input shape is fixed and every op is one of the allowlisted ones.
 */
import { readModelJson, type KerasLayer, type ModelJsonLike } from "./model-json";
import type { GraphNodeRecord } from "./types";

export interface ModelCost {
  /** Floating-point operations of one image through the feature layers (a multiply-add counts 2). */
  flops: number;
  /** Every weight of the model as float32 (4 bytes per element). */
  weightBytes: number;
  /** The most activation bytes alive at once (float32) while the feature layers' ancestors run in order. */
  peakActivationBytes: number;
}

/** A step of the walk: its inputs by name and how to get its output shape (no batch axis) and FLOPs from theirs. */
interface Step {
  name: string;
  inputs: string[];
  /** Weights, not activations: Const nodes. */
  constant?: boolean;
  run(inputs: number[][]): { shape: number[]; flops: number };
}

const elements = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
const pair = (value: unknown, fallback: number): [number, number] => (typeof value === "number" ? [value, value] : Array.isArray(value) ? [Number(value[0] ?? fallback), Number(value[1] ?? value[0] ?? fallback)] : [fallback, fallback]);

/** Output length of a sliding window: SAME keeps ceil(n / stride), VALID fits the dilated window, `pad` adds to n. */
function windowOut(size: number, kernel: number, stride: number, padding: string, dilation = 1, pad = 0): number {
  if (padding === "same") return Math.ceil(size / stride);
  const effective = (kernel - 1) * dilation + 1;
  return Math.max(0, Math.floor((size + pad - effective) / stride) + 1);
}

/** Same shape as the first input, `perElement` FLOPs for each output element. */
const elementwise = (perElement: number) => (inputs: number[][]) => {
  const shape = inputs.reduce((big, s) => (elements(s) > elements(big) ? s : big), inputs[0] ?? [1]);
  return { shape, flops: perElement * elements(shape) };
};

// ---------------------------------------------------------------- layers models

function layerStep(layer: KerasLayer, previous: string | null, inputShape: number[]): Step {
  const c = layer.config;
  const cls = layer.className;
  const inputs = layer.inbound ?? (previous ? [previous] : []);
  const padding = String(c.padding ?? "valid").toLowerCase();
  const conv = (inputs: number[][], outChannels: (cin: number) => number, macsPerOutput: (cin: number, kh: number, kw: number) => number) => {
    const [h, w, cin] = inputs[0]!;
    const [kh, kw] = pair(c.kernel_size, 1);
    const [sh, sw] = pair(c.strides, 1);
    const [dh, dw] = pair(c.dilation_rate, 1);
    const shape = [windowOut(h!, kh, sh, padding, dh), windowOut(w!, kw, sw, padding, dw), outChannels(cin!)];
    return { shape, flops: 2 * shape[0]! * shape[1]! * macsPerOutput(cin!, kh, kw) };
  };
  let run: Step["run"];
  switch (cls) {
    case "InputLayer":
      run = () => ({ shape: inputShape, flops: 0 });
      break;
    case "Conv2D":
      run = (i) => conv(i, () => Number(c.filters), (cin, kh, kw) => kh * kw * cin * Number(c.filters));
      break;
    case "DepthwiseConv2D": {
      const m = Number(c.depth_multiplier ?? 1);
      run = (i) => conv(i, (cin) => cin * m, (cin, kh, kw) => kh * kw * cin * m);
      break;
    }
    case "SeparableConv2D": {
      const m = Number(c.depth_multiplier ?? 1);
      run = (i) => conv(i, () => Number(c.filters), (cin, kh, kw) => kh * kw * cin * m + cin * m * Number(c.filters));
      break;
    }
    case "Conv2DTranspose":
      run = (i) => {
        const [h, w, cin] = i[0]!;
        const [kh, kw] = pair(c.kernel_size, 1);
        const [sh, sw] = pair(c.strides, 1);
        const shape = padding === "same" ? [h! * sh, w! * sw, Number(c.filters)] : [(h! - 1) * sh + kh, (w! - 1) * sw + kw, Number(c.filters)];
        return { shape, flops: 2 * h! * w! * kh * kw * cin! * Number(c.filters) };
      };
      break;
    case "Dense":
      run = (i) => {
        const input = i[0]!;
        const shape = [...input.slice(0, -1), Number(c.units)];
        return { shape, flops: 2 * elements(input) * Number(c.units) };
      };
      break;
    case "MaxPooling2D":
    case "AveragePooling2D":
      run = (i) => {
        const [h, w, ch] = i[0]!;
        const [kh, kw] = pair(c.pool_size, 2);
        const [sh, sw] = pair(c.strides ?? c.pool_size, 2);
        const shape = [windowOut(h!, kh, sh, padding), windowOut(w!, kw, sw, padding), ch!];
        return { shape, flops: elements(shape) * kh * kw };
      };
      break;
    case "GlobalAveragePooling2D":
    case "GlobalMaxPooling2D":
      run = (i) => ({ shape: c.keepdims ? [1, 1, i[0]![2]!] : [i[0]![2]!], flops: elements(i[0]!) });
      break;
    case "ZeroPadding2D":
    case "Cropping2D": {
      const sign = cls === "ZeroPadding2D" ? 1 : -1;
      const p = c.padding ?? c.cropping ?? 1;
      const [[top, bottom], [left, right]] = typeof p === "number" ? [[p, p], [p, p]] : Array.isArray(p) && typeof p[0] === "number" ? [[p[0], p[0]], [p[1], p[1]]] : (p as number[][]);
      run = (i) => ({ shape: [i[0]![0]! + sign * (top! + bottom!), i[0]![1]! + sign * (left! + right!), i[0]![2]!], flops: 0 });
      break;
    }
    case "UpSampling2D": {
      const [sh, sw] = pair(c.size, 2);
      run = (i) => ({ shape: [i[0]![0]! * sh, i[0]![1]! * sw, i[0]![2]!], flops: 0 });
      break;
    }
    case "Concatenate":
      run = (i) => {
        const rank = i[0]!.length;
        const axis = Number(c.axis ?? -1);
        const at = axis < 0 ? rank + axis : axis - 1; // a positive Keras axis counts the batch
        const shape = [...i[0]!];
        shape[at] = i.reduce((sum, s) => sum + (s[at] ?? 0), 0);
        return { shape, flops: 0 };
      };
      break;
    case "Flatten":
      run = (i) => ({ shape: [elements(i[0]!)], flops: 0 });
      break;
    case "Reshape":
      run = (i) => {
        const target = (c.target_shape as number[]).map(Number);
        const known = target.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
        return { shape: target.map((d) => (d === -1 ? elements(i[0]!) / known : d)), flops: 0 };
      };
      break;
    case "Permute":
      run = (i) => ({ shape: (c.dims as number[]).map((d) => i[0]![d - 1]!), flops: 0 });
      break;
    case "BatchNormalization":
    case "LayerNormalization":
      run = elementwise(2);
      break;
    default:
      // Activations, dropout and noise (identities at inference), Rescaling, elementwise merges.
      run = elementwise(1);
  }
  return { name: layer.name, inputs, run };
}

// ---------------------------------------------------------------- graph models

const attrInts = (node: GraphNodeRecord, name: string): number[] | null => {
  const list = (node.attr?.[name] as { list?: { i?: unknown[] } } | undefined)?.list?.i;
  return Array.isArray(list) ? list.map(Number) : null;
};
const attrString = (node: GraphNodeRecord, name: string): string | null => {
  const s = (node.attr?.[name] as { s?: unknown } | undefined)?.s;
  if (typeof s !== "string") return null;
  try {
    return atob(s);
  } catch {
    return s;
  }
};

function nodeStep(node: GraphNodeRecord, weightShapes: Map<string, number[]>, inputShape: number[]): Step {
  const inputs = (node.input ?? []).filter((name) => !name.startsWith("^")).map((name) => name.replace(/:\d+$/, ""));
  const padding = (attrString(node, "padding") ?? "VALID").toLowerCase();
  const strides = attrInts(node, "strides") ?? [1, 1, 1, 1];
  const dilations = attrInts(node, "dilations") ?? [1, 1, 1, 1];
  const explicit = attrInts(node, "explicit_paddings") ?? [];
  const kernelOf = () => weightShapes.get(inputs[1] ?? "") ?? [1, 1, 1, 1];
  const window = (h: number, w: number, kh: number, kw: number) => [
    windowOut(h, kh, strides[1]!, padding === "explicit" ? "valid" : padding, dilations[1], (explicit[2] ?? 0) + (explicit[3] ?? 0)),
    windowOut(w, kw, strides[2]!, padding === "explicit" ? "valid" : padding, dilations[2], (explicit[4] ?? 0) + (explicit[5] ?? 0)),
  ];
  let run: Step["run"];
  switch (node.op) {
    case "Placeholder":
      run = () => ({ shape: inputShape, flops: 0 });
      break;
    case "Const":
      return { name: node.name, inputs: [], constant: true, run: () => ({ shape: weightShapes.get(node.name) ?? [1], flops: 0 }) };
    case "Conv2D":
    case "_FusedConv2D":
      run = (i) => {
        const [kh, kw, cin, cout] = kernelOf();
        const [oh, ow] = window(i[0]![0]!, i[0]![1]!, kh!, kw!);
        return { shape: [oh!, ow!, cout!], flops: 2 * oh! * ow! * kh! * kw! * cin! * cout! };
      };
      break;
    case "DepthwiseConv2dNative":
    case "FusedDepthwiseConv2dNative":
      run = (i) => {
        const [kh, kw, cin, m] = kernelOf();
        const [oh, ow] = window(i[0]![0]!, i[0]![1]!, kh!, kw!);
        return { shape: [oh!, ow!, cin! * m!], flops: 2 * oh! * ow! * kh! * kw! * cin! * m! };
      };
      break;
    case "MatMul":
    case "_FusedMatMul":
      run = (i) => {
        const kernel = kernelOf();
        const units = (node.attr?.transpose_b as { b?: boolean } | undefined)?.b ? kernel[0]! : kernel[kernel.length - 1]!;
        return { shape: [...i[0]!.slice(0, -1), units], flops: 2 * elements(i[0]!) * units };
      };
      break;
    case "MaxPool":
    case "AvgPool":
      run = (i) => {
        const k = attrInts(node, "ksize") ?? [1, 1, 1, 1];
        const [oh, ow] = window(i[0]![0]!, i[0]![1]!, k[1]!, k[2]!);
        return { shape: [oh!, ow!, i[0]![2]!], flops: oh! * ow! * i[0]![2]! * k[1]! * k[2]! };
      };
      break;
    case "Mean":
    case "Max":
    case "Min":
    case "Sum":
      run = (i) => {
        const keep = (node.attr?.keep_dims as { b?: boolean } | undefined)?.b === true;
        const input = i[0]!;
        return { shape: input.length === 3 ? (keep ? [1, 1, input[2]!] : [input[2]!]) : input, flops: elements(input) };
      };
      break;
    case "ConcatV2":
    case "Concat":
      run = (i) => {
        const tensors = i.filter((s) => s.length === i[0]!.length && elements(s) > 1);
        const shape = [...tensors[0]!];
        shape[shape.length - 1] = tensors.reduce((sum, s) => sum + s[s.length - 1]!, 0);
        return { shape, flops: 0 };
      };
      break;
    case "Squeeze":
      run = (i) => ({ shape: i[0]!.filter((d) => d !== 1).length > 0 ? i[0]!.filter((d) => d !== 1) : [1], flops: 0 });
      break;
    case "Shape":
    case "Pack":
      run = (i) => ({ shape: [Math.max(1, i.length, i[0]?.length ?? 1)], flops: 0 });
      break;
    case "ResizeBilinear":
    case "ResizeNearestNeighbor":
      run = (i) => ({ shape: i[0]!, flops: elements(i[0]!) * 4 });
      break;
    case "FusedBatchNorm":
    case "FusedBatchNormV2":
    case "FusedBatchNormV3":
      run = (i) => ({ shape: i[0]!, flops: 2 * elements(i[0]!) });
      break;
    default:
      // Elementwise arithmetic and activations, BiasAdd, Pad, Reshape, Transpose, Identity, slices: the input's size.
      run = elementwise(1);
  }
  return { name: node.name, inputs, run };
}

// ---------------------------------------------------------------- the walk

/**
 * The cost of running `modelJson` on one `inputSize` image up to `featureLayers` (layer or node names).
 * @throws Error when a feature layer is not in the model (the upload check reports that first).
 */
export function estimateModelCost(modelJson: ModelJsonLike, inputSize: [number, number], featureLayers: string[]): ModelCost {
  const topology = readModelJson(modelJson);
  const channels = topology.inputShape?.[3] ?? 3;
  const inputShape = [inputSize[0], inputSize[1], channels ?? 3];
  const weightShapes = new Map(topology.weights.map((w) => [w.name, w.shape]));
  const steps = new Map<string, Step>();
  if (topology.format === "graph-model") for (const node of topology.nodes) steps.set(node.name, nodeStep(node, weightShapes, inputShape));
  else topology.layers.forEach((layer, i) => steps.set(layer.name, layerStep(layer, i > 0 ? topology.layers[i - 1]!.name : null, inputShape)));

  // The feature layers' ancestors in an order where every step follows its inputs (iterative post-order DFS).
  const order: Step[] = [];
  const state = new Map<string, "open" | "done">();
  for (const root of featureLayers) {
    if (!steps.has(root)) throw new Error(`estimateModelCost: no layer or node '${root}'`);
    const stack: { name: string; next: number }[] = [{ name: root, next: 0 }];
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const step = steps.get(top.name);
      if (!step || state.get(top.name) === "done") {
        stack.pop();
        continue;
      }
      state.set(top.name, "open");
      const next = step.inputs[top.next++];
      if (next !== undefined) {
        if (!state.has(next)) stack.push({ name: next, next: 0 });
        continue;
      }
      state.set(top.name, "done");
      order.push(step);
      stack.pop();
    }
  }

  const shapes = new Map<string, number[]>();
  const lastUse = new Map<string, number>();
  order.forEach((step, index) => step.inputs.forEach((name) => lastUse.set(name, index)));
  for (const name of featureLayers) lastUse.set(name, order.length);
  let flops = 0;
  let live = 0;
  let peak = 0;
  const dying: string[][] = order.map(() => []);
  order.forEach((step, index) => {
    const out = step.run(step.inputs.map((name) => shapes.get(name) ?? inputShape));
    shapes.set(step.name, out.shape);
    flops += out.flops;
    if (!step.constant) {
      live += 4 * elements(out.shape);
      peak = Math.max(peak, live);
      const end = lastUse.get(step.name) ?? index;
      if (end < order.length) dying[Math.max(end, index)]!.push(step.name);
    }
    for (const name of dying[index]!) live -= 4 * elements(shapes.get(name)!);
  });
  const weightBytes = topology.weights.reduce((sum, w) => sum + 4 * w.elements, 0);
  return { flops: Math.round(flops), weightBytes, peakActivationBytes: peak };
}
