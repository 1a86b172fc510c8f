/**
 * Builds the tfjs graph-model side: the node list of model.json's modelTopology, the weights
 * manifest and the weight bytes, in the order the nodes are added. Node and attr shapes follow
 * what tfjs's GraphDef JSON reader takes (the `tensorflowjs_converter` output format); every
 * key is written in the order the Python reference wrote it, so the JSON reads the same.
 */
import { PixdexError } from '../../errors.ts';
import type { NdArray } from './tensors.ts';

/** One node of modelTopology.node. */
export interface GraphNode {
  name: string;
  op: string;
  input?: string[];
  attr: Record<string, unknown>;
}

/** One entry of weightsManifest[0].weights. */
export interface WeightEntry {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32';
  /** tfjs weight quantization: stored uint8 q, read back as min + scale * q. */
  quantization?: { dtype: 'uint8'; scale: number; min: number };
}

/** attr value of a float32 op. */
export const F32 = Object.freeze({ type: 'DT_FLOAT' });

/** A string attr: tfjs reads attr strings base64-encoded, as GraphDef JSON stores bytes. */
export function b64(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64');
}

/** A list-of-ints attr (int64s are strings in GraphDef JSON). */
export function ilist(values: readonly number[]): { list: { i: string[] } } {
  return { list: { i: values.map((v) => String(Math.trunc(v))) } };
}

/** A tensorShape: dims as decimal strings. */
export function dims(shape: readonly number[]): { dim: { size: string }[] } {
  return { dim: shape.map((s) => ({ size: String(s) })) };
}

/** Bytes of a typed array in platform order (little-endian on every platform tfjs runs on). */
function bytesOf(a: Float32Array | Int32Array | Uint8Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export class GraphBuilder {
  readonly nodes: GraphNode[] = [];
  /** The tensor shape of each node (same index as `nodes`), when known. */
  readonly shapes: (number[] | undefined)[] = [];
  readonly weights: WeightEntry[] = [];
  private readonly blobs: Uint8Array[] = [];
  private blobBytes = 0;
  private readonly used = new Set<string>();

  /**
   * @param maxWeightBytes a cap on the weight file. Each use of a weight tensor makes its own
   * constant (as the reference did), so a crafted file whose ops share one large tensor could
   * otherwise ask for far more memory than it is big.
   */
  constructor(private readonly maxWeightBytes = Infinity) {}

  /** `name`, or `name_1`, `name_2`... the first that no node has yet; reserves it. */
  unique(name: string): string {
    let n = name;
    for (let k = 1; this.used.has(n); k++) n = `${name}_${k}`;
    this.used.add(n);
    return n;
  }

  /** Marks a name as taken without a uniqueness check (the graph input is named before any tensor). */
  reserve(name: string): void {
    this.used.add(name);
  }

  add(node: GraphNode, shape?: number[]): string {
    this.nodes.push(node);
    this.shapes.push(shape);
    return node.name;
  }

  /** A float32 or int32 constant, stored as is. */
  constant(name: string, a: NdArray<Float32Array | Int32Array>): string {
    const dtype = a.data instanceof Int32Array ? 'int32' : 'float32';
    return this.addConstant(name, a.shape, dtype, bytesOf(a.data));
  }

  /**
   * A float32 constant stored as uint8 with tfjs weight quantization. tfjs computes
   * min + scale * q = scale * (q - zeroPoint) with min = -scale * zeroPoint: TFLite's real value.
   */
  quantizedConstant(name: string, q: NdArray<Uint8Array>, scale: number, zeroPoint: number): string {
    return this.addConstant(name, q.shape, 'float32', bytesOf(q.data), { dtype: 'uint8', scale, min: -scale * zeroPoint });
  }

  private addConstant(name: string, shape: number[], dtype: 'float32' | 'int32', bytes: Uint8Array, quantization?: WeightEntry['quantization']): string {
    this.blobBytes += bytes.length;
    if (this.blobBytes > this.maxWeightBytes) {
      throw new PixdexError('UNSUPPORTED_MODEL', `The converted weights would exceed ${this.maxWeightBytes} bytes, far more than the TFLite file holds (its ops reuse the same constants many times). Use a model whose ops have their own weights, or open an issue with the model attached.`);
    }
    const unique = this.unique(name);
    const dt = dtype === 'int32' ? 'DT_INT32' : 'DT_FLOAT';
    this.add({ name: unique, op: 'Const', attr: { value: { tensor: { dtype: dt, tensorShape: dims(shape) } }, dtype: { type: dt } } }, [...shape]);
    const entry: WeightEntry = { name: unique, shape: [...shape], dtype };
    if (quantization) entry.quantization = quantization;
    this.weights.push(entry);
    this.blobs.push(bytes);
    return unique;
  }

  /** A float32 activation node (Relu, Relu6, Sigmoid) on `x`. */
  activation(name: string, x: string, op: string, shape?: number[]): string {
    return this.add({ name, op, input: [x], attr: { T: F32 } }, shape);
  }

  /** The weight file: every constant's bytes in manifest order. */
  weightData(): Uint8Array {
    const out = new Uint8Array(this.blobs.reduce((n, b) => n + b.length, 0));
    let at = 0;
    for (const b of this.blobs) {
      out.set(b, at);
      at += b.length;
    }
    return out;
  }
}
