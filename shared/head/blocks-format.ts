/**
 * The fine-tuned blocks of a model (`fine_tune`), as stored: their description in the head manifest (`blocks`, which
 * makes the manifest format "edgetune-head/2") and their float32 weights in a separate artifact, `blocks.bin`, so the
 * edge keeps the small head in its head cache and uploads the blocks straight into its byte-bounded block cache.
 *
 * `blocks.bin`: for each block in order, depthwise kernel [kh, kw, c, 1], depthwise bias [c], pointwise kernel
 * [1, 1, c, k], pointwise bias [k], little-endian float32, back to back (ranges below count floats, as in head.bin).
 */
import type { BlockStack, SeparableBlock } from "../backbone/separable-blocks";
import { HeadFormatError, readLittleEndianFloats, toLittleEndianBytes, type BlocksManifest } from "./format";



/** The blocks' manifest and the bytes of blocks.bin; `parseBlocks` gives back the same numbers bit for bit. */
export function serializeBlocks(stack: BlockStack): { manifest: BlocksManifest; weights: Uint8Array } {
  const total = stack.blocks.reduce((sum, b) => sum + b.depthwiseKernel.length + b.depthwiseBias.length + b.pointwiseKernel.length + b.pointwiseBias.length, 0);
  const packed = new Float32Array(total);
  let offset = 0;
  const place = (values: Float32Array) => {
    packed.set(values, offset);
    const range = { offset, length: values.length };
    offset += values.length;
    return range;
  };
  const blocks = stack.blocks.map((block) => ({
    name: block.name,
    type: "separable" as const,
    input_shape: block.inputShape,
    output_shape: block.outputShape,
    kernel_size: block.kernelSize,
    stride: block.stride as 1 | 2,
    padding: "same" as const,
    activation: "relu6" as const,
    depthwise_kernel: place(block.depthwiseKernel),
    depthwise_bias: place(block.depthwiseBias),
    pointwise_kernel: place(block.pointwiseKernel),
    pointwise_bias: place(block.pointwiseBias),
  }));
  return { manifest: { cut_layer: stack.cutLayer, output_layer: stack.outputLayer, pooling: "avg", blocks, weights_byte_length: packed.byteLength }, weights: toLittleEndianBytes(packed) };
}

/**
 * The stored blocks, checked: shapes chain (each block's output is the next one's input; a stride-2 block halves the
 * size, rounding up, as 'same' padding does), ranges have the lengths their shapes need, values are finite.
 * @param manifest an already parsed `blocks` field of a head manifest (`parseHead` validated it).
 */
export function parseBlocks(manifest: BlocksManifest, weights: ArrayBuffer | ArrayBufferView): BlockStack {
  const bytes = weights instanceof ArrayBuffer ? new Uint8Array(weights) : new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength);
  if (bytes.byteLength !== manifest.weights_byte_length) throw new HeadFormatError(`blocks.bin has ${bytes.byteLength} bytes but the manifest declares ${manifest.weights_byte_length}`, "blocks.weights_byte_length");
  if (bytes.byteLength % 4 !== 0) throw new HeadFormatError(`must be a multiple of 4, got ${bytes.byteLength}`, "blocks.weights_byte_length");
  const floats = readLittleEndianFloats(bytes);
  const bad = floats.findIndex((value) => !Number.isFinite(value));
  if (bad >= 0) throw new HeadFormatError(`float ${bad} of blocks.bin is ${floats[bad]}`, "blocks");
  checkBlockShapes(manifest);
  const blocks = manifest.blocks.map((spec, index): SeparableBlock => {
    const [, , c] = spec.input_shape;
    const k = spec.output_shape[2];
    const slice = (range: { offset: number; length: number }, expected: number, field: string) => {
      const path = `blocks.blocks.${index}.${field}`;
      if (range.length !== expected) throw new HeadFormatError(`length is ${range.length}, expected ${expected}`, path);
      if (range.offset + range.length > floats.length) throw new HeadFormatError(`lies past the end of blocks.bin (${floats.length} floats)`, path);
      return floats.subarray(range.offset, range.offset + range.length);
    };
    return {
      name: spec.name,
      inputShape: spec.input_shape,
      outputShape: spec.output_shape,
      kernelSize: spec.kernel_size,
      stride: spec.stride,
      depthwiseKernel: slice(spec.depthwise_kernel, spec.kernel_size[0] * spec.kernel_size[1] * c, "depthwise_kernel"),
      depthwiseBias: slice(spec.depthwise_bias, c, "depthwise_bias"),
      pointwiseKernel: slice(spec.pointwise_kernel, c * k, "pointwise_kernel"),
      pointwiseBias: slice(spec.pointwise_bias, k, "pointwise_bias"),
    };
  });
  return { cutLayer: manifest.cut_layer, outputLayer: manifest.output_layer, blocks };
}

/** Throws unless each block's output shape follows from its input and stride and feeds the next block. */
export function checkBlockShapes(manifest: BlocksManifest): void {
  manifest.blocks.forEach((block, index) => {
    const [h, w] = block.input_shape;
    const [oh, ow] = block.output_shape;
    if (oh !== Math.ceil(h / block.stride) || ow !== Math.ceil(w / block.stride)) throw new HeadFormatError(`output ${oh}x${ow} does not follow from input ${h}x${w} at stride ${block.stride}`, `blocks.blocks.${index}.output_shape`);
    const next = manifest.blocks[index + 1];
    if (next && next.input_shape.join() !== block.output_shape.join()) throw new HeadFormatError(`input ${next.input_shape.join("x")} is not the previous block's output ${block.output_shape.join("x")}`, `blocks.blocks.${index + 1}.input_shape`);
  });
}

