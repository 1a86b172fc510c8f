/**
 * Pretrained ImageNet backbones: a frozen registry of what pixdex knows how to run, and a loader
 * that reads a TensorFlow.js model from a local directory (no network).
 */
import fs from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { tf } from '../backend.ts';
import { ModelNotFoundError, invalidParameter } from '../errors.ts';
import { importedBackbones } from './installed.ts';
import type { BackboneSpec } from './spec.ts';
import { NativeGraph, type JsonNode } from './native-graph.ts';

export type { BackboneSpec } from './spec.ts';

/** Known backbones: see each model's PROVENANCE.md for input range and node names. */
const SPECS: Record<string, BackboneSpec> = {
  mobilenet_v2: {
    id: 'mobilenet_v2',
    dir: 'mobilenet_v2_1.0_224_quant',
    format: 'graph',
    inputSize: 224,
    inputRange: [-1, 1],
    featureMap: { name: 'MobilenetV2/Conv_1/Relu6', shape: [7, 7, 1280] },
    pooled: 'MobilenetV2/Logits/AvgPool',
    dims: 1280,
    graphRuntime: true,
  },
  'mobilenet_v1_0.75': {
    id: 'mobilenet_v1_0.75',
    dir: 'mobilenet_v1_0.75_224',
    format: 'layers',
    inputSize: 224,
    inputRange: [-1, 1],
    featureMap: { name: 'conv_pw_13_relu', shape: [7, 7, 768] },
    pooled: 'global_average_pooling2d_1',
    dims: 768,
  },
  mobilenet_v1_embedding: {
    id: 'mobilenet_v1_embedding',
    dir: 'mobilenet_v1_1.0_224_embedding',
    format: 'graph',
    inputSize: 224,
    inputRange: [-1, 1],
    featureMap: { name: 'MobilenetV1/MobilenetV1/Conv2d_13_pointwise/Relu6', shape: [7, 7, 1024] },
    pooled: 'MobilenetV1/Logits/AvgPool_1a/AvgPool',
    dims: 1024,
  },
};

/** Known backbones (frozen). */
export const BACKBONES: Readonly<Record<string, Readonly<BackboneSpec>>> = Object.freeze(SPECS);

/**
 * Looks a backbone up by id: a built-in one, or one imported into `modelsDir` (`pixdex models
 * import`). Unknown ids are refused with the list of known ones.
 */
export function backboneSpec(id: string, modelsDir?: string): BackboneSpec {
  const spec = BACKBONES[id];
  if (spec) return spec;
  const imported = modelsDir ? importedBackbones(modelsDir) : new Map<string, BackboneSpec>();
  const found = imported.get(id);
  if (!found) throw invalidParameter('backbone', `one of ${[...Object.keys(BACKBONES), ...imported.keys()].join(', ')}`, id);
  return found;
}

/** What one forward pass gives, per image of the batch. */
export interface BackboneOutput {
  /** Pooled vectors [n, dims] (not normalised). */
  pooled: tf.Tensor2D;
  /** Feature maps [n, h, w, c], when asked for. */
  featureMap?: tf.Tensor4D;
}

/** A loaded, frozen backbone. */
export class Backbone {
  private constructor(
    readonly spec: BackboneSpec,
    private readonly graph: tf.GraphModel | undefined,
    private readonly layers: tf.LayersModel | undefined,
    private readonly native: NativeGraph | undefined,
    /** How the network runs: TensorFlow's graph runtime, or tfjs op by op (and why). */
    readonly runtime: string,
  ) {}

  /** Throws ModelNotFoundError now (before any backend starts) if the model files are missing. */
  static check(modelsDir: string, id: string): void {
    const spec = backboneSpec(id, modelsDir);
    const file = path.join(modelsDir, spec.dir, 'model.json');
    if (!existsSync(file)) {
      throw new ModelNotFoundError(
        `Backbone ${id} not found: no readable model.json in ${path.dirname(file)}. Models are looked for in ${modelsDir} ` +
          '(set --models DIR or PIXDEX_MODELS to the folder that contains the model folders).',
      );
    }
  }

  /** Reads `<modelsDir>/<spec.dir>/model.json` and its weight files; no network. */
  /** `nativeGraph` overrides the spec's `graphRuntime` (benchmarks and tests compare the two). */
  static async load(modelsDir: string, id: string, options: { nativeGraph?: boolean } = {}): Promise<Backbone> {
    const spec = backboneSpec(id, modelsDir);
    const dir = path.join(modelsDir, spec.dir);
    const { handler, topology } = await localHandler(dir, spec.id, modelsDir);
    if (spec.format === 'graph') {
      const graph = await tf.loadGraphModel(handler);
      const wanted = options.nativeGraph ?? spec.graphRuntime ?? false;
      if (!wanted || tf.getBackend() !== 'tensorflow') return new Backbone(spec, graph, undefined, undefined, 'tfjs ops');
      const weights = Object.fromEntries(Object.entries(graph.weights).map(([name, [t]]) => [name, t]));
      const signatures: Record<string, Record<string, string>> = { map: { fmap: spec.featureMap.name } };
      if (spec.pooled) Object.assign(signatures, { pooled: { pooled: spec.pooled }, both: { fmap: spec.featureMap.name, pooled: spec.pooled } });
      const native = await NativeGraph.open(topology as { node?: JsonNode[] }, weights, signatures);
      return typeof native === 'string'
        ? new Backbone(spec, graph, undefined, undefined, `tfjs ops (${native})`)
        : new Backbone(spec, graph, undefined, native, 'TensorFlow graph');
    }
    const full = await tf.loadLayersModel(handler);
    const outputs = [full.getLayer(spec.featureMap.name).output, full.getLayer(spec.pooled!).output] as tf.SymbolicTensor[]; // layers models are built-in ones, which all name their pooled layer
    return new Backbone(spec, undefined, tf.model({ inputs: full.inputs, outputs }), undefined, 'tfjs layers');
  }

  /**
   * Runs a batch of `inputSize`² RGB byte images. Returns tensors the caller owns (dispose them).
   */
  infer(images: readonly Uint8Array[], withFeatureMap = false): BackboneOutput {
    const { featureMap, pooled, dims } = this.spec;
    return tf.tidy(() => {
      const x = this.input(images, this.spec.inputSize);
      let fmap: tf.Tensor4D;
      let pool: tf.Tensor;
      if (this.native && pooled) {
        const out = this.native.run(withFeatureMap ? 'both' : 'pooled', x);
        pool = out.pooled;
        fmap = out.fmap as tf.Tensor4D;
      } else if (this.native) {
        fmap = this.native.run('map', x).fmap as tf.Tensor4D;
        pool = fmap.mean([1, 2]);
      } else if (this.graph && !pooled) {
        fmap = this.graph.execute(x, featureMap.name) as tf.Tensor4D;
        pool = fmap.mean([1, 2]);
      } else if (this.graph && pooled) {
        const names = withFeatureMap ? [featureMap.name, pooled] : [pooled];
        const executed = this.graph.execute(x, names);
        const out = Array.isArray(executed) ? executed : [executed];
        pool = out[out.length - 1];
        fmap = out[0] as tf.Tensor4D;
      } else {
        const out = this.layers!.predict(x) as tf.Tensor[];
        fmap = out[0] as tf.Tensor4D;
        pool = out[1];
      }
      const result: BackboneOutput = { pooled: pool.reshape([images.length, dims]) as tf.Tensor2D };
      if (withFeatureMap) result.featureMap = fmap;
      return result as unknown as tf.TensorContainerObject;
    }) as unknown as BackboneOutput;
  }

  /**
   * Feature maps [n, s', s', C] of `size`² RGB byte images at any input side (s' = ⌈size/32⌉:
   * 7 at 224, 5 at 160, 10 at 320): every layer up to the feature map is convolutional, and the
   * loader relaxes the stored 224×224 input shape. The caller disposes the result.
   */
  featureMaps(images: readonly Uint8Array[], size: number): tf.Tensor4D {
    return tf.tidy(() => {
      const x = this.input(images, size);
      if (this.native) return this.native.run('map', x).fmap as tf.Tensor4D;
      if (this.graph) return this.graph.execute(x, this.spec.featureMap.name) as tf.Tensor4D;
      return (this.layers!.predict(x) as tf.Tensor[])[0] as tf.Tensor4D;
    });
  }

  /**
   * An inner node [n, h, w, c] of a graph backbone for `inputSize`² RGB byte images (fine-tuning
   * runs the frozen graph up to it), and the graph's weight tensors by name. The caller disposes.
   */
  innerNode(images: readonly Uint8Array[], node: string): tf.Tensor4D {
    if (!this.graph) throw invalidParameter('backbone', 'a graph model (mobilenet_v2 or mobilenet_v1_embedding) for fine-tuning', this.spec.id);
    return tf.tidy(() => this.graph!.execute(this.input(images, this.spec.inputSize), node) as tf.Tensor4D);
  }

  /** A weight of the graph model by node name (owned by the model: do not dispose). */
  graphWeight(name: string): tf.Tensor {
    const w = this.graph?.weights[name]?.[0];
    if (!w) throw invalidParameter('weight', `a weight of ${this.spec.id}`, name);
    return w;
  }

  /** `size`² RGB byte images → the model's input tensor [n, size, size, 3] in its input range. */
  private input(images: readonly Uint8Array[], size: number): tf.Tensor4D {
    const [lo, hi] = this.spec.inputRange;
    const flat = new Uint8Array(images.length * size * size * 3);
    images.forEach((img, i) => {
      if (img.length !== size * size * 3) throw invalidParameter('image', `${size}x${size}x3 bytes`, `${img.length} bytes`);
      flat.set(img, i * size * size * 3);
    });
    return tf.tidy(() => tf.tensor4d(flat, [images.length, size, size, 3], 'int32').toFloat().mul((hi - lo) / 255).add(lo) as tf.Tensor4D);
  }

  /** Convenience: pooled vectors as Float32Arrays (one per image). */
  async pooledVectors(images: readonly Uint8Array[]): Promise<Float32Array[]> {
    const { pooled } = this.infer(images);
    const data = await pooled.data() as Float32Array;
    pooled.dispose();
    const d = this.spec.dims;
    return images.map((_, i) => data.slice(i * d, (i + 1) * d));
  }

  /** Runs one dummy batch so the first real query does not pay for kernel setup. */
  async warmUp(): Promise<void> {
    const s = this.spec.inputSize;
    await this.pooledVectors([new Uint8Array(s * s * 3)]);
  }

  dispose(): void {
    this.native?.dispose();
    this.graph?.dispose();
    this.layers?.dispose();
  }
}

/** An IOHandler over a local model directory: model.json plus weight files in manifest order. */
async function localHandler(dir: string, id: string, modelsDir: string): Promise<{ handler: tf.io.IOHandler; topology: unknown }> {
  let json: {
    modelTopology: unknown;
    weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
    format?: string;
    signature?: unknown;
    userDefinedMetadata?: Record<string, unknown>;
  };
  try {
    json = JSON.parse(await fs.readFile(path.join(dir, 'model.json'), 'utf8'));
  } catch (err) {
    throw new ModelNotFoundError(
      `Backbone ${id} not found: no readable model.json in ${dir}. Models are looked for in ${modelsDir} ` +
        '(set --models DIR or PIXDEX_MODELS to the folder that contains the model folders).',
      { cause: err },
    );
  }
  relaxInputShape(json.modelTopology);
  const handler: tf.io.IOHandler = {
    async load() {
      const weightSpecs: tf.io.WeightsManifestEntry[] = [];
      const buffers: Buffer[] = [];
      for (const group of json.weightsManifest) {
        weightSpecs.push(...group.weights);
        for (const p of group.paths) {
          try {
            buffers.push(await fs.readFile(path.join(dir, p)));
          } catch (err) {
            throw new ModelNotFoundError(`Backbone ${id} is incomplete: weight file ${path.join(dir, p)} is missing.`, { cause: err });
          }
        }
      }
      const all = Buffer.concat(buffers);
      return {
        modelTopology: json.modelTopology as tf.io.ModelArtifacts['modelTopology'],
        weightSpecs,
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
        format: json.format,
        signature: json.signature as tf.io.ModelArtifacts['signature'],
        userDefinedMetadata: json.userDefinedMetadata as tf.io.ModelArtifacts['userDefinedMetadata'],
      };
    },
  };
  return { handler, topology: json.modelTopology };
}

/**
 * Relaxes a stored model's input shape to [-1, -1, -1, 3] (graph: the 4-d Placeholder; layers:
 * the InputLayer): the files declare 224×224 and tfjs would refuse other sides, although every
 * layer up to the feature map is convolutional. The pooled node is only asked for at 224.
 */
function relaxInputShape(topology: unknown): void {
  const t = topology as { node?: Array<{ op?: string; attr?: { shape?: { shape?: { dim?: unknown[] } } } }>; model_config?: { config?: { layers?: LayerJson[] } }; config?: { layers?: LayerJson[] } };
  for (const node of t?.node ?? []) {
    const shape = node.attr?.shape?.shape;
    if (node.op === 'Placeholder' && shape?.dim?.length === 4) shape.dim = [{ size: '-1' }, { size: '-1' }, { size: '-1' }, { size: '3' }];
  }
  for (const layer of t?.model_config?.config?.layers ?? t?.config?.layers ?? []) {
    if (layer.class_name === 'InputLayer') layer.config.batch_input_shape = [null, null, null, 3];
  }
}

interface LayerJson {
  class_name: string;
  config: { batch_input_shape?: unknown[] };
}
