/** How a backbone is stored and where its features are: what pixdex needs to run it (built-in: src/models/backbone.ts; imported: its pixdex-model.json). */
export interface BackboneSpec {
  id: string;
  /** Folder name under the models directory. */
  dir: string;
  /** `graph` = tf.loadGraphModel (node names); `layers` = tf.loadLayersModel (layer names). */
  format: 'graph' | 'layers';
  /** Square input side in pixels. */
  inputSize: number;
  /** Input range the model was trained with; pixels are mapped from [0,255] to it. */
  inputRange: readonly [number, number];
  /** Last spatial feature map (node or layer name) and its shape [h, w, c]. */
  featureMap: { name: string; shape: readonly [number, number, number] };
  /**
   * Globally pooled vector (node or layer name); its length is `dims`. Undefined (an imported
   * model cut at a feature map): the mean of the feature map.
   */
  pooled?: string;
  dims: number;
  /**
   * On the tensorflow backend, run the whole graph in TensorFlow's graph runtime
   * (src/models/native-graph.ts) instead of tfjs op by op. Set where measured faster: mobilenet_v2
   * 1.3x; mobilenet_v1_embedding was 1.5x slower that way, so it and imported models keep tfjs ops.
   */
  graphRuntime?: boolean;
}
