/**
 * The import audit of a user's model (issue 8): what a tenant's model.json may ask an engine to run. A backbone runs
 * in a shared Worker isolate (128 MB, one at a time per isolate) and on runners, so it must be a plain, static
 * feed-forward graph whose work and memory can be told from its topology before it is ever loaded:
 * - a layers model uses only the Keras layer classes below: no `Lambda` or `TFOpLambda` (code), no custom or unknown
 *   class, no recurrent or nested model;
 * - a graph model uses only the ops below: no control flow (`While`, `If`, `Switch`, `Merge`, loops, tensor lists and
 *   arrays: data-dependent work and anything tfjs can only run with `executeAsync`), no function library
 *   (`modelTopology.library.function`: bodies of control flow and `PartitionedCall`s that the node list does not show);
 * - its one image input declares every dimension but the batch: with `[batch, H, W, C]` fixed, every shape in the
 *   graph follows, and so do its FLOPs and activation memory (shared/backbone/cost.ts).
 * Refusals are `ModelAuditError`s with a catalogue code (422) that name the offending layer or node.
 *
 * Pure data in, nothing out but the throw: it runs in workerd (the upload) and Node (tests, the runner) alike.
 */
import { DomainError, type ErrorCode } from "../errors";
import { readModelJson, type ModelJsonLike } from "./model-json";

/** Keras layer classes a backbone may use: convolutions, normalisation, activations, pooling, merges, reshapes. */
export const ALLOWED_LAYER_CLASSES: ReadonlySet<string> = new Set([
  "InputLayer",
  "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose", "Dense",
  "BatchNormalization", "LayerNormalization", "Rescaling",
  "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "ThresholdedReLU", "Softmax",
  "Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
  "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
  "ZeroPadding2D", "Cropping2D", "UpSampling2D",
  "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
  "Flatten", "Reshape", "Permute",
]);

/**
 * Graph ops a backbone may use: what the tfjs converter writes for convolutional image models (fused or not), their
 * elementwise arithmetic and activations, pooling, padding, reshapes and the small shape arithmetic of a Flatten.
 * All of them run synchronously in tfjs (`execute`, never `executeAsync`).
 */
export const ALLOWED_GRAPH_OPS: ReadonlySet<string> = new Set([
  "Placeholder", "Const", "Identity", "IdentityN", "NoOp", "StopGradient",
  "Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative", "Conv2DBackpropInput",
  "MatMul", "_FusedMatMul", "BiasAdd",
  "FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3",
  "Add", "AddV2", "AddN", "Sub", "Mul", "RealDiv", "Div", "Maximum", "Minimum", "SquaredDifference",
  "Relu", "Relu6", "Elu", "Selu", "LeakyRelu", "Prelu", "Sigmoid", "Tanh", "Softmax", "Softplus",
  "Sqrt", "Rsqrt", "Square", "Neg", "Abs", "Exp", "Log", "Reciprocal", "Cast",
  "MaxPool", "AvgPool", "Mean", "Max", "Min", "Sum",
  "Pad", "PadV2", "MirrorPad", "ConcatV2", "Concat",
  "Reshape", "Squeeze", "ExpandDims", "Transpose", "Shape", "StridedSlice", "Slice", "Pack",
  "ResizeBilinear", "ResizeNearestNeighbor",
]);

/** Ops refused as control flow, named so the error says why rather than "not allowed". */
const CONTROL_FLOW_OPS = new Set(["While", "StatelessWhile", "If", "StatelessIf", "Switch", "Merge", "LoopCond", "Enter", "Exit", "NextIteration", "PartitionedCall", "StatefulPartitionedCall"]);
const isControlFlow = (op: string) => CONTROL_FLOW_OPS.has(op) || op.startsWith("TensorList") || op.startsWith("TensorArray");

export type AuditCode = Extract<ErrorCode, "model_layer_not_allowed" | "model_op_not_allowed" | "model_control_flow" | "model_function_library" | "model_dynamic_shape">;

/** A model the audit refuses: a catalogue code (422) and the layer or node to blame in `details`. */
export class ModelAuditError extends DomainError {
  declare readonly code: AuditCode;
  constructor(code: AuditCode, message: string, details: Record<string, unknown>) {
    super(code, message, details);
    this.name = "ModelAuditError";
  }
}

/**
 * Audits a model.json (see the module comment); throws `ModelAuditError` at the first refusal, returns quietly
 * otherwise. `file` names the model.json in messages.
 */
export function auditModel(modelJson: ModelJsonLike, file = "model.json"): void {
  const topology = readModelJson(modelJson);
  if (topology.format === "graph-model") {
    const functions = (modelJson.modelTopology.library as { function?: unknown[] } | undefined)?.function;
    if (Array.isArray(functions) && functions.length > 0) {
      const names = functions.map((f) => String((f as { signature?: { name?: unknown } })?.signature?.name ?? "?")).slice(0, 5);
      throw new ModelAuditError("model_function_library", `${file} carries a graph function library (${functions.length} function(s): ${names.join(", ")}): the bodies of control flow or partitioned calls, which backbones may not use. Export the model without control flow (a plain feed-forward SavedModel / frozen graph).`, { file, functions: names });
    }
    for (const node of topology.nodes) {
      const op = String(node?.op);
      if (isControlFlow(op)) {
        throw new ModelAuditError("model_control_flow", `Node '${node.name}' is a ${op}: control flow (loops, conditionals, tensor lists) makes a model's work depend on its data and needs tfjs' executeAsync; backbones must be plain feed-forward graphs.`, { file, node: node.name, op });
      }
      if (!ALLOWED_GRAPH_OPS.has(op)) {
        throw new ModelAuditError("model_op_not_allowed", `Node '${node.name}' uses op ${op}, which backbones may not use. Allowed ops are those of convolutional image models (convolutions, matmul, batch norm, activations, pooling, padding, concat, reshapes).`, { file, node: node.name, op });
      }
    }
  } else {
    for (const layer of topology.layers) {
      if (!ALLOWED_LAYER_CLASSES.has(layer.className)) {
        const why = layer.className === "Lambda" || layer.className === "TFOpLambda" ? "it runs arbitrary code" : "it is not one of the built-in Keras layers backbones may use";
        throw new ModelAuditError("model_layer_not_allowed", `Layer '${layer.name}' is a ${layer.className}: ${why}. Backbones use convolution, normalisation, activation, pooling, merge and reshape layers only.`, { file, layer: layer.name, class_name: layer.className });
      }
    }
  }
  const shape = topology.inputShape;
  if (!shape || shape.length !== 4 || shape.slice(1).some((d) => d === null)) {
    throw new ModelAuditError(
      "model_dynamic_shape",
      shape
        ? `The model's input '${topology.inputName}' has shape [${shape.map((d) => d ?? "?").join(", ")}]: every dimension but the batch must be fixed, e.g. [?, 224, 224, 3], so the model's work and memory are known before it runs. Export it with a fixed input size.`
        : `${file} does not declare its image input's shape (one InputLayer or Placeholder with [batch, height, width, 3]); export the model with a fixed input size.`,
      { file, input: topology.inputName, model_input_shape: shape },
    );
  }
}
