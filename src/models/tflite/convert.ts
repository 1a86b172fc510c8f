/**
 * pixdex's own TFLite → tfjs graph-model converter: a TypeScript port of
 * models/_tools/tflite2tfjs.py, which made the shipped MobileNet models. For those two files its
 * weights and nodes equal the shipped model.json and group1-shard1of1.bin (test/tflite-convert).
 *
 * It takes MobileNet-style image models built from the ops in ops.ts; anything else, and any file
 * that is not a well-formed TFLite FlatBuffer, is refused with UNSUPPORTED_MODEL before a node is
 * built, naming what it met.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { PixdexError } from '../../errors.ts';
import { CUSTOM_CODE, builtinName } from './builtin-ops.ts';
import { malformed } from './flatbuffer.ts';
import { GraphBuilder, dims, F32 } from './graph.ts';
import { LOWERINGS, type LoweringContext, type OpCall } from './ops.ts';
import { Model, OPTIONS_TYPE, poolOptions, type Operator, type OperatorCode } from './schema.ts';
import { decode, tensorInfo, type TensorInfo } from './tensors.ts';

/** The shard name written beside model.json. */
export const WEIGHTS_FILE = 'group1-shard1of1.bin';
/** The name of the graph's input placeholder (as in the shipped models). */
const INPUT_NAME = 'input';

export interface ConvertedModel {
  /** The model.json object (format 'graph-model', modelTopology, weightsManifest with paths ['group1-shard1of1.bin']). */
  modelJson: Record<string, unknown>;
  /** The bytes of group1-shard1of1.bin. */
  weightData: Uint8Array;
  /** The graph's input node name and shape (e.g. 'input', [1,224,224,3]) and its TFLite input quantization if any. */
  input: { name: string; shape: number[]; quantization?: { scale: number; zeroPoint: number } };
  /** Output node names. */
  outputs: string[];
  /**
   * Where the features are, found from the graph: the last global spatial pooling (AVERAGE_POOL_2D over the whole map, or MEAN over axes 1,2):
   * its input is the feature map (node name and [h,w,c] from the tensor shape), its output the pooled vector (dims = c). Undefined if none.
   */
  features?: { featureMap: { name: string; shape: [number, number, number] }; pooled: string; dims: number };
  /** Every node name with its tensor shape, so a caller can validate a user-given --feature-node. */
  nodes: { name: string; op: string; shape?: number[] }[];
}

/** An operator with its builtin name (or custom code) resolved. */
interface ResolvedOp {
  op: Operator;
  kind: string;
}

/** Resolves every operator's kind: builtin name, or `CUSTOM:<code>` for custom ops. */
function resolveOps(operators: Operator[], codes: OperatorCode[]): ResolvedOp[] {
  return operators.map((op, i) => {
    const code = codes[op.opcodeIndex];
    if (!code) throw malformed(`operator ${i} refers to operator code ${op.opcodeIndex} of ${codes.length}`);
    const kind = code.code === CUSTOM_CODE ? `CUSTOM:${code.customCode ?? '?'}` : builtinName(code.code);
    return { op, kind };
  });
}

/** Refuses a model with any op outside LOWERINGS, naming each such op with its count. */
function refuseUnsupported(ops: ResolvedOp[]): void {
  const counts = new Map<string, number>();
  for (const { kind } of ops) if (!(kind in LOWERINGS)) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  if (counts.size === 0) return;
  const found = [...counts].map(([kind, n]) => `${kind.startsWith('CUSTOM:') ? `custom op "${kind.slice(7)}"` : kind} (${n} use${n === 1 ? '' : 's'})`).join(', ');
  throw new PixdexError(
    'UNSUPPORTED_MODEL',
    `The TFLite model uses ops the converter does not support: ${found}. Supported: ${Object.keys(LOWERINGS).join(', ')}. ` +
      'Use a model made of the supported ops (a MobileNet-style classifier or embedding extractor), or open an issue with the model attached.',
  );
}

/** The last global spatial pooling seen so far: an AVERAGE_POOL_2D over the whole map, or a MEAN over axes 1 and 2. */
function globalPooling(ctx: LoweringContext, call: OpCall, op: Operator): ConvertedModel['features'] {
  const source = ctx.tensors[call.inputs[0]];
  const shape = source?.shape;
  if (!source || shape.length !== 4) return undefined;
  let whole = false;
  if (call.kind === 'AVERAGE_POOL_2D') {
    const o = poolOptions(op.builtinOptions(OPTIONS_TYPE.Pool2DOptions, call.kind));
    whole = o.filterH === shape[1] && o.filterW === shape[2];
  } else if (call.kind === 'MEAN') {
    const axes = ctx.tensors[call.inputs[1]];
    const values = axes?.data ? [...decode(axes).data].map((a) => (a < 0 ? a + 4 : a)).sort((a, b) => a - b) : [];
    whole = values.length === 2 && values[0] === 1 && values[1] === 2; // with or without keep_dims: c values per image
  }
  const featureMap = ctx.names.get(source.index);
  const pooled = ctx.names.get(call.outputs[0]);
  if (!whole || featureMap === undefined || pooled === undefined) return undefined;
  return { featureMap: { name: featureMap, shape: [shape[1], shape[2], shape[3]] }, pooled, dims: shape[3] };
}

function checkIndices(indices: number[], count: number, what: string): void {
  for (const i of indices) if (!Number.isInteger(i) || i < 0 || i >= count) throw malformed(`${what} refers to tensor ${i} of ${count}`);
}

/** Converts the bytes of a .tflite file; throws UNSUPPORTED_MODEL for a malformed file or an unsupported op. */
export function convertTflite(bytes: Uint8Array): ConvertedModel {
  try {
    return convert(bytes);
  } catch (err) {
    if (err instanceof PixdexError) throw err;
    // A bounds-checked reader should leave nothing else; anything that slips through is still the file's fault.
    throw new PixdexError('UNSUPPORTED_MODEL', `Not a readable TFLite model: ${(err as Error).message}`, { cause: err });
  }
}

function convert(bytes: Uint8Array): ConvertedModel {
  const model = Model.read(bytes);
  const subgraph = model.subgraphs()[0];
  if (!subgraph) throw malformed('the model has no subgraph');
  const ops = resolveOps(subgraph.operators(), model.operatorCodes());
  refuseUnsupported(ops);

  const buffers = model.buffers().map((b) => b.data());
  const tensors: TensorInfo[] = subgraph.tensors().map((t, i) => tensorInfo(t, i, buffers));
  const graphInputs = subgraph.inputs;
  const graphOutputs = subgraph.outputs;
  checkIndices(graphInputs, tensors.length, 'the subgraph inputs');
  checkIndices(graphOutputs, tensors.length, 'the subgraph outputs');
  if (graphInputs.length !== 1) {
    throw new PixdexError('UNSUPPORTED_MODEL', `The TFLite model has ${graphInputs.length} inputs; the converter takes models with one input image. Use a single-input image model.`);
  }

  const graph = new GraphBuilder(4 * bytes.length + (1 << 20)); // uint8 weights dequantized to float32 take 4x
  const ctx: LoweringContext = { tensors, graph, names: new Map() };
  const inTensor = tensors[graphInputs[0]];
  graph.add({
    name: INPUT_NAME, op: 'Placeholder',
    attr: { shape: { shape: dims([-1, ...inTensor.shape.slice(1)]) }, dtype: F32 },
  }, [...inTensor.shape]);
  graph.reserve(INPUT_NAME);
  ctx.names.set(inTensor.index, INPUT_NAME);

  let features: ConvertedModel['features'];
  for (const { op, kind } of ops) {
    const inputs = op.inputs;
    const outputs = op.outputs;
    if (outputs.length === 0) throw malformed(`a ${kind} operator has no output`);
    checkIndices(outputs, tensors.length, `a ${kind} operator's outputs`);
    const out = tensors[outputs[0]];
    const call: OpCall = {
      kind, inputs, outputs, outName: out.name || `op${out.index}`, outShape: [...out.shape],
      options: (type) => op.builtinOptions(type, kind),
    };
    LOWERINGS[kind](ctx, call);
    if (kind === 'AVERAGE_POOL_2D' || kind === 'MEAN') features = globalPooling(ctx, call, op) ?? features;
  }

  const outputNames = graphOutputs.map((i) => {
    const name = ctx.names.get(i);
    if (name === undefined) throw malformed(`output tensor "${tensors[i].name ?? i}" is computed by no operator`);
    return name;
  });
  const quant = inTensor.quant;
  return {
    modelJson: modelJson(graph, outputNames, inTensor.shape),
    weightData: graph.weightData(),
    input: { name: INPUT_NAME, shape: [...inTensor.shape], ...(quant ? { quantization: { scale: quant.scale[0], zeroPoint: quant.zeroPoint[0] } } : {}) },
    outputs: outputNames,
    features,
    nodes: graph.nodes.map((n, i) => {
      const shape = graph.shapes[i];
      return shape ? { name: n.name, op: n.op, shape } : { name: n.name, op: n.op };
    }),
  };
}

/** model.json as tfjs's graph-model loader reads it (same keys and order as the Python reference). */
function modelJson(graph: GraphBuilder, outputs: string[], inputShape: number[]): Record<string, unknown> {
  return {
    format: 'graph-model',
    generatedBy: 'pixdex convertTflite (src/models/tflite, a port of tflite2tfjs.py)',
    convertedBy: 'pixdex convertTflite',
    modelTopology: { node: graph.nodes, versions: { producer: 1 } },
    signature: {
      inputs: { [`${INPUT_NAME}:0`]: { name: `${INPUT_NAME}:0`, dtype: 'DT_FLOAT', tensorShape: dims([-1, ...inputShape.slice(1)]) } },
      outputs: Object.fromEntries(outputs.map((n) => [`${n}:0`, { name: `${n}:0`, dtype: 'DT_FLOAT' }])),
    },
    weightsManifest: [{ paths: [WEIGHTS_FILE], weights: graph.weights }],
  };
}

/**
 * Writes model.json and group1-shard1of1.bin into `dir` (created if missing). Each file is written
 * under a temporary name and renamed, weights first, so a reader never sees a model.json whose
 * weights are missing or half written.
 */
export async function writeConverted(model: ConvertedModel, dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  const files: [string, Uint8Array | string][] = [[WEIGHTS_FILE, model.weightData], ['model.json', JSON.stringify(model.modelJson)]];
  for (const [name, data] of files) {
    const target = path.join(dir, name);
    const temp = `${target}.${process.pid}.${Date.now()}.tmp`;
    try {
      await fs.writeFile(temp, data);
      await fs.rename(temp, target);
    } catch (err) {
      await fs.rm(temp, { force: true });
      throw err;
    }
  }
}
