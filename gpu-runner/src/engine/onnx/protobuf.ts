/**
 * The few ONNX protobuf messages we write, encoded by hand (wire format: varint tags, length-delimited
 * sub-messages). Field numbers are those of onnx/onnx.proto (IR version 8).
 */
import { concatBytes } from "../../../../shared/bytes";

class Writer {
  private chunks: Uint8Array[] = [];
  private length = 0;

  private push(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.length += bytes.length;
  }

  varint(value: number | bigint): this {
    let v = BigInt.asUintN(64, BigInt(value));
    const out: number[] = [];
    while (v >= 0x80n) {
      out.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    out.push(Number(v));
    this.push(Uint8Array.from(out));
    return this;
  }

  tag(field: number, wireType: 0 | 1 | 2 | 5): this {
    return this.varint((field << 3) | wireType);
  }

  /** int32/int64/enum/bool field. */
  int(field: number, value: number | bigint): this {
    return this.tag(field, 0).varint(value);
  }

  float(field: number, value: number): this {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setFloat32(0, value, true);
    this.tag(field, 5);
    this.push(bytes);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.tag(field, 2).varint(value.length);
    this.push(value);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  /** Packed repeated int64 (proto3 default for repeated scalars). */
  packedInts(field: number, values: Array<number | bigint>): this {
    const inner = new Writer();
    for (const v of values) inner.varint(v);
    return this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    return concatBytes(this.chunks);
  }
}

export const TensorDataType = { FLOAT: 1, INT64: 7 } as const;

export interface TensorInit {
  name: string;
  dims: number[];
  dataType: (typeof TensorDataType)[keyof typeof TensorDataType];
  /** Little-endian raw bytes (float32 or int64). */
  raw: Uint8Array;
}

export type AttributeValue = number | string | number[] | { float: number } | { floats: number[] };

export interface NodeInit {
  opType: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  attributes?: Record<string, AttributeValue>;
}

/** A value's type: float tensor with fixed or named (symbolic) dims. */
export interface ValueInfoInit {
  name: string;
  elemType: number;
  dims: Array<number | string>;
}

// AttributeProto.AttributeType
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_STRING = 3;
const ATTR_FLOATS = 6;
const ATTR_INTS = 7;

function encodeAttribute(name: string, value: AttributeValue): Uint8Array {
  const w = new Writer().string(1, name);
  if (typeof value === "number") {
    if (!Number.isInteger(value)) throw new Error(`attribute ${name}: use { float } for non-integers`);
    w.int(3, value).int(20, ATTR_INT);
  } else if (typeof value === "string") {
    w.string(4, value).int(20, ATTR_STRING);
  } else if (Array.isArray(value)) {
    w.packedInts(8, value).int(20, ATTR_INTS);
  } else if ("float" in value) {
    w.float(2, value.float).int(20, ATTR_FLOAT);
  } else {
    const packed = new Uint8Array(value.floats.length * 4);
    const view = new DataView(packed.buffer);
    value.floats.forEach((f, i) => view.setFloat32(i * 4, f, true));
    w.bytes(7, packed).int(20, ATTR_FLOATS);
  }
  return w.finish();
}

function encodeNode(node: NodeInit): Uint8Array {
  const w = new Writer();
  for (const input of node.inputs) w.string(1, input);
  for (const output of node.outputs) w.string(2, output);
  if (node.name) w.string(3, node.name);
  w.string(4, node.opType);
  for (const [name, value] of Object.entries(node.attributes ?? {})) w.bytes(5, encodeAttribute(name, value));
  return w.finish();
}

function encodeTensor(tensor: TensorInit): Uint8Array {
  return new Writer().packedInts(1, tensor.dims).int(2, tensor.dataType).string(8, tensor.name).bytes(9, tensor.raw).finish();
}

function encodeValueInfo(info: ValueInfoInit): Uint8Array {
  const shape = new Writer();
  for (const dim of info.dims) {
    const d = typeof dim === "number" ? new Writer().int(1, dim) : new Writer().string(2, dim);
    shape.bytes(1, d.finish());
  }
  const tensorType = new Writer().int(1, info.elemType).bytes(2, shape.finish()).finish();
  const type = new Writer().bytes(1, tensorType).finish();
  return new Writer().string(1, info.name).bytes(2, type).finish();
}

export interface GraphInit {
  name: string;
  nodes: NodeInit[];
  initializers: TensorInit[];
  inputs: ValueInfoInit[];
  outputs: ValueInfoInit[];
}

/** Serialises a ModelProto with one graph and the default-domain opset `opsetVersion`. */
export function encodeModel(graph: GraphInit, opsetVersion: number, producer = "edgetune"): Uint8Array {
  const g = new Writer();
  for (const node of graph.nodes) g.bytes(1, encodeNode(node));
  g.string(2, graph.name);
  for (const init of graph.initializers) g.bytes(5, encodeTensor(init));
  for (const input of graph.inputs) g.bytes(11, encodeValueInfo(input));
  for (const output of graph.outputs) g.bytes(12, encodeValueInfo(output));
  const opset = new Writer().string(1, "").int(2, opsetVersion).finish();
  return new Writer()
    .int(1, 8) // ir_version
    .string(2, producer)
    .bytes(7, g.finish())
    .bytes(8, opset)
    .finish();
}

export function float32Raw(values: Float32Array): Uint8Array {
  // Node and every engine we target are little-endian; copy so the bytes do not alias a larger buffer.
  return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
}

export function int64Raw(values: Array<number | bigint>): Uint8Array {
  const out = new Uint8Array(values.length * 8);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setBigInt64(i * 8, BigInt(v), true));
  return out;
}
