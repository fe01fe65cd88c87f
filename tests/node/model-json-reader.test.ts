/**
 * The one model.json reader (shared/backbone/model-json.ts): the Worker's upload checks, the edge's fused executor and
 * the runner's engines all read format, layers, graph nodes, input shape and weight sizes through it.
 */
import { describe, expect, it } from "vitest";
import {
  bytesPerElement, decodeFloatWeights, detectModelFormat, expectedWeightBytes, getInputShape, getLayerRecords, isGraphModel, pruneToFeatureLayers, readModelJson,
  readWeightsManifest,
  withSingleWeightsFile, type ModelJsonLike,
} from "../../shared/backbone/model-json";
import { buildTinyGraphModel, buildTinyModel } from "../fixtures/tiny-model";

const layers = (modelJson: Record<string, any>) => modelJson as ModelJsonLike;

describe("readModelJson on a layers model", () => {
  const tiny = buildTinyModel({ shards: 2 });
  const topology = readModelJson(layers(tiny.modelJson));

  it("lists the Keras layers in file order with their class and inbound layer names", () => {
    expect(topology.format).toBe("layers-model");
    expect(topology.layers.map((layer) => [layer.name, layer.className, layer.inbound])).toEqual([
      ["input_1", "InputLayer", []],
      ["conv1", "Conv2D", ["input_1"]],
      ["bn1", "BatchNormalization", ["conv1"]],
      ["relu1", "ReLU", ["bn1"]],
      ["gap", "GlobalAveragePooling2D", ["relu1"]],
      ["logits", "Dense", ["gap"]],
    ]);
    expect(topology.layers[1]!.config.filters).toBe(8);
    expect(topology.nodes).toEqual([]);
  });

  it("gives the declared input shape and the layer it comes from", () => {
    expect(topology.inputShape).toEqual([null, 32, 32, 3]);
    expect(topology.inputName).toBe("input_1");
    expect(getInputShape(layers(tiny.modelJson))).toEqual([32, 32, 3]);
  });

  it("gives every weight its stored dtype, bytes, offset and manifest group", () => {
    expect(topology.weights.map((w) => w.name)).toEqual(tiny.modelJson.weightsManifest.flatMap((g: any) => g.weights.map((w: any) => w.name)));
    const kernel = topology.weights[0]!;
    expect(kernel).toMatchObject({ name: "conv1/kernel", dtype: "float32", storedDtype: "float32", elements: 216, bytes: 864, offset: 0, group: 0 });
    expect(topology.weights[1]).toMatchObject({ name: "conv1/bias", bytes: 32, offset: 864 });
    const last = topology.weights.at(-1)!;
    expect(last.offset! + last.bytes!).toBe(tiny.weightBytes);
    expect(expectedWeightBytes(layers(tiny.modelJson))).toBe(tiny.weightBytes);
  });

  it("decodes float weights at the offsets it reads", () => {
    const weightData = tiny.weightData.slice().buffer as ArrayBuffer;
    const decoded = decodeFloatWeights(layers(tiny.modelJson), weightData);
    expect(decoded.get("conv1/bias")!.values).toEqual(new Float32Array(weightData, 864, 8));
  });

  it("reads a Keras 3 batch_shape and the InputLayer that input_layers names", () => {
    const json = structuredClone(tiny.modelJson);
    const config = json.modelTopology.model_config.config;
    const input = config.layers[0];
    input.config.batch_shape = input.config.batch_input_shape;
    delete input.config.batch_input_shape;
    input.config.batch_shape = [null, 48, 40, 3];
    config.layers.unshift({ class_name: "InputLayer", name: "unused", inbound_nodes: [], config: { batch_input_shape: [null, 8] } });
    config.input_layers = [["input_1", 0, 0]];
    const read = readModelJson(layers(json));
    expect(read.inputShape).toEqual([null, 48, 40, 3]);
    expect(getInputShape(layers(json))).toEqual([48, 40, 3]);
  });
});

describe("readModelJson on other topologies", () => {
  it("a graph model: its nodes with op and its one Placeholder's shape, free dims as null", () => {
    const graph = buildTinyGraphModel({ inputSize: [null, null] });
    const topology = readModelJson(layers(graph.modelJson));
    expect(topology.format).toBe("graph-model");
    expect(topology.layers).toEqual([]);
    expect(topology.nodes.find((node) => node.op === "Placeholder")?.name).toBe(topology.inputName);
    expect(topology.inputShape).toEqual([null, null, null, 3]);
    expect(isGraphModel(layers(graph.modelJson))).toBe(true);
    expect(getInputShape(layers(graph.modelJson), [64, 48])).toEqual([64, 48, 3]);
  });

  it("a Sequential model: each layer reads the one before it, the first layer carries the input shape", () => {
    const json = {
      format: "layers-model",
      modelTopology: { model_config: { class_name: "Sequential", config: { name: "s", layers: [
        { class_name: "Conv2D", config: { name: "c", batch_input_shape: [null, 16, 16, 3] } },
        { class_name: "Flatten", config: { name: "f" } },
      ] } } },
      weightsManifest: [],
    };
    const topology = readModelJson(json);
    expect(topology.sequential).toBe(true);
    expect(topology.layers.map((layer) => [layer.name, layer.inbound])).toEqual([["c", []], ["f", ["c"]]]);
    expect(topology.inputShape).toEqual([null, 16, 16, 3]);
    // As a functional model (what the pruning, the lowering and tfjs' loader read): an InputLayer, then the chain.
    expect(getLayerRecords(json).map((layer) => [layer.class_name, layer.name, layer.inbound_nodes])).toEqual([
      ["InputLayer", "c_input", []],
      ["Conv2D", "c", [[["c_input", 0, 0, {}]]]],
      ["Flatten", "f", [[["c", 0, 0, {}]]]],
    ]);
    const pruned = pruneToFeatureLayers(layers(json), ["c"]).modelTopology.model_config;
    expect(pruned.class_name).toBe("Model");
    expect(pruned.config).toMatchObject({ input_layers: [["c_input", 0, 0]], output_layers: [["c", 0, 0]] });
    expect(pruned.config.layers.map((layer: { name: string }) => layer.name)).toEqual(["c_input", "c"]);
    expect(pruned.config.layers[0].config.batch_input_shape).toEqual([null, 16, 16, 3]);
  });

  it("tells the format only for tfjs layers and graph models", () => {
    const base = { modelTopology: {}, weightsManifest: [] };
    expect(detectModelFormat({ ...base, modelTopology: { node: [] } })).toBe("graph-model");
    expect(detectModelFormat({ ...base, modelTopology: { config: { layers: [] } } })).toBe("layers-model");
    expect(detectModelFormat({ ...base, format: "graph-model", modelTopology: { config: { layers: [] } } })).toBeNull();
    expect(detectModelFormat({ ...base, format: "tfjs-saved-model", modelTopology: { node: [] } })).toBeNull();
    expect(() => readModelJson({ ...base, format: "tfjs-saved-model" })).toThrow(/neither a tfjs layers model nor a tfjs graph model/);
  });
});

describe("weight sizes", () => {
  it("quantized weights take their stored dtype's size; unknown dtypes (own keys only) have none", () => {
    const weights = readWeightsManifest({ weightsManifest: [{ paths: ["w.bin"], weights: [
      { name: "a", shape: [3, 2], dtype: "float32", quantization: { dtype: "uint8", min: 0, scale: 1 } },
      { name: "b", shape: [5], dtype: "float32", quantization: { dtype: "float16" } },
      { name: "c", shape: [2], dtype: "string" },
      { name: "d", shape: [1], dtype: "float32" },
    ] }] });
    expect(weights.map((w) => [w.storedDtype, w.bytes, w.offset])).toEqual([["uint8", 6, 0], ["float16", 10, 6], ["string", null, 16], ["float32", 4, null]]);
    expect(bytesPerElement("constructor")).toBeUndefined();
    expect(() => expectedWeightBytes({ weightsManifest: [{ paths: [], weights: [{ name: "x", shape: [1], dtype: "constructor" as "float32" }] }] })).toThrow(/weight x: unsupported dtype constructor/);
  });

  it("withSingleWeightsFile names one weights.bin holding the weights in manifest order", () => {
    const tiny = buildTinyModel({ shards: 3 });
    const single = withSingleWeightsFile(layers(tiny.modelJson));
    expect(single.weightsManifest).toEqual([{ paths: ["weights.bin"], weights: tiny.modelJson.weightsManifest.flatMap((g: any) => g.weights) }]);
    expect(single.modelTopology).toBe(tiny.modelJson.modelTopology);
  });
});
