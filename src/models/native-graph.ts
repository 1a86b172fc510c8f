/**
 * A frozen graph backbone run whole by TensorFlow's own graph runtime (the tensorflow backend
 * only). tfjs executes a graph model op by op, each of its fused convolutions as three TensorFlow
 * ops (convolution, bias, ReLU6); handed the same graph as a SavedModel, TensorFlow fuses them
 * into one oneDNN kernel and runs the graph in one call (measured: mobilenet_v2, batches of 32,
 * 1.31x per image at 224 px, 1.38x at 160 px; README, issue 22). The caller (`Backbone.load`)
 * decides whether to try: only on the tensorflow backend, only for backbones whose spec asks.
 *
 * The SavedModel is written from the model's own topology and its loaded (dequantized) weights
 * into a temporary folder with the protobuf classes tfjs-node ships for reading SavedModels,
 * loaded, and the folder removed: nothing is kept on disk. tfjs's fused op names are split back
 * into TensorFlow's plain ops (Conv2D / DepthwiseConv2dNative / MatMul, BiasAdd, Relu / Relu6);
 * a graph with anything else fused is not converted and keeps running in tfjs.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { tf } from '../backend.ts';

const require = createRequire(import.meta.url);

/** A node of a tfjs graph model's `modelTopology` (TensorFlow's NodeDef as JSON). */
export interface JsonNode {
  name: string;
  op: string;
  input?: string[];
  attr?: Record<string, JsonAttr>;
}
type JsonAttr = { s?: string; i?: string | number; f?: number; b?: boolean; type?: string; shape?: JsonShape; tensor?: unknown; list?: { s?: string[]; i?: (string | number)[]; f?: number[]; b?: boolean[]; type?: string[]; shape?: JsonShape[] } };
type JsonShape = { dim?: { size?: string | number }[]; unknownRank?: boolean };

/** The outputs a caller can ask for in one run: each a set of node names, by key. */
export type Signatures = Record<string, Record<string, string>>;

const FUSED: Record<string, string> = { _FusedConv2D: 'Conv2D', FusedDepthwiseConv2dNative: 'DepthwiseConv2dNative', _FusedMatMul: 'MatMul' };
const ACTIVATIONS = new Set(['Relu', 'Relu6']);
/** Attributes the plain op takes from the fused one. */
const KEEP: Record<string, string[]> = {
  Conv2D: ['T', 'strides', 'padding', 'explicit_paddings', 'data_format', 'dilations'],
  DepthwiseConv2dNative: ['T', 'strides', 'padding', 'explicit_paddings', 'data_format', 'dilations'],
  MatMul: ['T', 'transpose_a', 'transpose_b'],
};
const DTYPES: Record<string, number> = { DT_FLOAT: 1, DT_INT32: 3, DT_STRING: 7, DT_INT64: 9, DT_BOOL: 10 };

/**
 * The plain-op TensorFlow graph of a tfjs topology, or the reason it cannot be converted.
 * Exported for tests.
 */
export function plainNodes(nodes: readonly JsonNode[]): JsonNode[] | string {
  const out: JsonNode[] = [];
  for (const n of nodes) {
    const plain = FUSED[n.op];
    if (!plain) {
      out.push(n);
      continue;
    }
    const ops = (n.attr?.fused_ops?.list?.s ?? []).map((s) => Buffer.from(s, 'base64').toString());
    const inputs = n.input ?? [];
    const numArgs = Number(n.attr?.num_args?.i ?? 0);
    if (ops.length > 0 && (ops[0] !== 'BiasAdd' || numArgs !== 1 || ops.length > 2 || (ops[1] !== undefined && !ACTIVATIONS.has(ops[1])))) return `${n.name}: fused ${ops.join('+')}`;
    if (inputs.length !== 2 + numArgs) return `${n.name}: ${inputs.length} inputs`;
    const attr: Record<string, JsonAttr> = {};
    for (const k of KEEP[plain]) if (n.attr?.[k]) attr[k] = n.attr[k];
    const chain: JsonNode[] = [{ name: `${n.name}/pixdex_${plain}`, op: plain, input: inputs.slice(0, 2), attr }];
    if (ops[0] === 'BiasAdd') chain.push({ name: `${n.name}/pixdex_BiasAdd`, op: 'BiasAdd', input: [chain[0].name, inputs[2]], attr: { T: attr.T ?? { type: 'DT_FLOAT' } } });
    if (ops[1]) chain.push({ name: `${n.name}/pixdex_${ops[1]}`, op: ops[1], input: [chain[chain.length - 1].name], attr: { T: attr.T ?? { type: 'DT_FLOAT' } } });
    chain[chain.length - 1].name = n.name; // the graph's other nodes (and callers) refer to it
    out.push(...chain);
  }
  return out;
}

/** The graph's nodes as a SavedModel (protobuf bytes) with one signature per entry of `signatures`. */
export function savedModelBytes(nodes: readonly JsonNode[], weights: tf.NamedTensorMap, inputName: string, signatures: Signatures, producer = 1): Uint8Array {
  const pb = require('@tensorflow/tfjs-node/dist/proto/api_pb.js');
  const inputShape = nodes.find((n) => n.name === inputName)?.attr?.shape?.shape ?? { unknownRank: true };
  const graph = new pb.GraphDef();
  for (const n of nodes) {
    const node = new pb.NodeDef();
    node.setName(n.name);
    node.setOp(n.op);
    node.setInputList(n.input ?? []);
    const attrs = node.getAttrMap();
    for (const [k, v] of Object.entries(n.attr ?? {})) if (k !== 'value') attrs.set(k, attrValue(pb, v));
    if (n.op === 'Const') {
      const w = weights[n.name];
      if (!w) throw new Error(`weight ${n.name} missing`);
      const value = new pb.AttrValue();
      value.setTensor(tensorProto(pb, w));
      attrs.set('value', value);
      const dtype = new pb.AttrValue();
      dtype.setType(dtypeOf(w.dtype));
      attrs.set('dtype', dtype);
    }
    graph.addNode(node);
  }
  const versions = new pb.VersionDef();
  versions.setProducer(producer);
  graph.setVersions(versions);
  const meta = new pb.MetaGraphDef();
  const info = new pb.MetaGraphDef.MetaInfoDef();
  info.setTagsList(['serve']);
  meta.setMetaInfoDef(info);
  meta.setGraphDef(graph);
  for (const [key, outputs] of Object.entries(signatures)) {
    const sig = new pb.SignatureDef();
    sig.setMethodName('tensorflow/serving/predict');
    sig.getInputsMap().set('input', tensorInfo(pb, inputName, inputShape));
    for (const [name, node] of Object.entries(outputs)) sig.getOutputsMap().set(name, tensorInfo(pb, node, { unknownRank: true }));
    meta.getSignatureDefMap().set(key, sig);
  }
  const model = new pb.SavedModel();
  model.setSavedModelSchemaVersion(1);
  model.addMetaGraphs(meta);
  return model.serializeBinary();
}

/** One loaded SavedModel session, one tfjs-node handle per signature. */
export class NativeGraph {
  private constructor(private readonly models: Record<string, { predict(x: tf.NamedTensorMap): tf.NamedTensorMap; dispose(): void }>) {}

  /**
   * Converts and loads a graph (the tensorflow backend only: `Backbone.load` checks); when it
   * cannot, the reason as a string (an op this converter does not split, or TensorFlow refusing
   * the graph), and the caller keeps running the graph in tfjs.
   */
  static async open(topology: { node?: JsonNode[]; versions?: { producer?: number } }, weights: tf.NamedTensorMap, signatures: Signatures): Promise<NativeGraph | string> {
    const nodes = plainNodes(topology.node ?? []);
    if (typeof nodes === 'string') return `unsupported fused op (${nodes})`;
    const input = nodes.find((n) => n.op === 'Placeholder');
    if (!input) return 'no input placeholder';
    const node = require('@tensorflow/tfjs-node').node as { loadSavedModel(dir: string, tags: string[], sig: string): Promise<{ predict(x: tf.NamedTensorMap): tf.NamedTensorMap; dispose(): void }> };
    let dir: string | undefined;
    try {
      sweepStale(os.tmpdir());
      dir = fs.mkdtempSync(path.join(os.tmpdir(), PREFIX));
      fs.mkdirSync(path.join(dir, 'variables'));
      fs.writeFileSync(path.join(dir, 'saved_model.pb'), savedModelBytes(nodes, weights, input.name, signatures, topology.versions?.producer ?? 1));
      const models: Record<string, { predict(x: tf.NamedTensorMap): tf.NamedTensorMap; dispose(): void }> = {};
      for (const key of Object.keys(signatures)) models[key] = await node.loadSavedModel(dir, ['serve'], key);
      return new NativeGraph(models);
    } catch (err) {
      return `${dir ? 'TensorFlow refused the graph' : 'no temporary folder for the graph'}: ${(err as Error).message.split('\n')[0]}`;
    } finally {
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  /** Runs one signature on `x`; the caller owns the outputs. */
  run(signature: string, x: tf.Tensor): tf.NamedTensorMap {
    return this.models[signature].predict({ input: x });
  }

  dispose(): void {
    // the signatures share one session: tfjs-node deletes it with the last handle
    for (const m of Object.values(this.models)) m.dispose();
  }
}

const PREFIX = 'pixdex-graph-';
/** A folder this old is no load in progress (a load takes ~1 s): its process was killed mid-load. */
export const STALE_MS = 10 * 60_000;

/**
 * Removes graph folders left by processes or worker threads killed while loading (a terminated
 * worker runs no `finally`); each is ~14 MB. Best effort: a folder that cannot be removed stays.
 */
export function sweepStale(tmp: string, now = Date.now()): void {
  let names: string[];
  try {
    names = fs.readdirSync(tmp).filter((n) => n.startsWith(PREFIX));
  } catch {
    return;
  }
  for (const name of names) {
    try {
      const p = path.join(tmp, name);
      if (now - fs.statSync(p).mtimeMs > STALE_MS) fs.rmSync(p, { recursive: true, force: true });
    } catch {
      // another process removed it first, or it is not ours to remove
    }
  }
}

function attrValue(pb: any, v: JsonAttr): unknown {
  const a = new pb.AttrValue();
  if (v.list) {
    const l = new pb.AttrValue.ListValue();
    if (v.list.s) l.setSList(v.list.s.map((s) => Buffer.from(s, 'base64')));
    if (v.list.i) l.setIList(v.list.i.map(Number));
    if (v.list.f) l.setFList(v.list.f);
    if (v.list.b) l.setBList(v.list.b);
    if (v.list.type) l.setTypeList(v.list.type.map(dtypeEnum));
    if (v.list.shape) l.setShapeList(v.list.shape.map((s) => shapeProto(pb, s)));
    a.setList(l);
  } else if (v.s !== undefined) a.setS(Buffer.from(v.s, 'base64'));
  else if (v.i !== undefined) a.setI(Number(v.i));
  else if (v.f !== undefined) a.setF(v.f);
  else if (v.b !== undefined) a.setB(v.b);
  else if (v.type !== undefined) a.setType(dtypeEnum(v.type));
  else if (v.shape !== undefined) a.setShape(shapeProto(pb, v.shape));
  else if (v.tensor !== undefined) throw new Error('tensor attributes other than a Const value are not converted');
  else a.setList(new pb.AttrValue.ListValue()); // an empty list (e.g. explicit_paddings: {list: {}})
  return a;
}

function dtypeEnum(name: string): number {
  const d = DTYPES[name];
  if (d === undefined) throw new Error(`dtype ${name} is not converted`);
  return d;
}

function dtypeOf(dtype: tf.DataType): number {
  return dtypeEnum(dtype === 'float32' ? 'DT_FLOAT' : dtype === 'int32' ? 'DT_INT32' : dtype === 'bool' ? 'DT_BOOL' : `dtype ${dtype}`);
}

function shapeProto(pb: any, s: JsonShape): unknown {
  const shape = new pb.TensorShape();
  if (s.unknownRank) shape.setUnknownRank(true);
  for (const d of s.dim ?? []) {
    const dim = new pb.TensorShape.Dim();
    dim.setSize(Number(d.size ?? -1));
    shape.addDim(dim);
  }
  return shape;
}

function tensorProto(pb: any, w: tf.Tensor): unknown {
  const t = new pb.Tensor();
  t.setDtype(dtypeOf(w.dtype));
  t.setTensorShape(shapeProto(pb, { dim: w.shape.map((size) => ({ size })) }));
  const data = w.dataSync() as Float32Array | Int32Array | Uint8Array;
  const typed = w.dtype === 'bool' ? Uint8Array.from(data) : data;
  t.setTensorContent(new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength));
  return t;
}

function tensorInfo(pb: any, node: string, shape: JsonShape): unknown {
  const info = new pb.TensorInfo();
  info.setTensorShape(shapeProto(pb, shape));
  info.setName(node.includes(':') ? node : `${node}:0`);
  info.setDtype(1);
  return info;
}
