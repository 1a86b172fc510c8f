/**
 * The defaults and limits of the verbs' parameters, each once, with its reason. The zod schemas
 * (./verbs.ts) build on them for the CLI and the server; the engine checks them again with
 * `intParam`/`numberParam` when it is called as a library. Nothing else writes these numbers.
 */

/** An inclusive integer range with its default. */
export interface IntRange {
  readonly min: number;
  readonly max: number;
  readonly default: number;
}

/** Results per query (default: 10). Above 1000 a query is an export: HNSW's beam grows with k. */
export const DEFAULT_K = 10;
export const MIN_K = 1;
export const MAX_K = 1000;

/** Average query expansion: best hits averaged into the query (default: 0 = off: it lowers instance P@1; README). */
export const DEFAULT_EXPAND = 0;
export const MAX_EXPAND = 10;

/** classify: below this confidence the label is null (default: 0, always a label when there is a vote). */
export const DEFAULT_CLASSIFY_MIN_CONFIDENCE = 0;
/** propagate: only suggest at or above this confidence (default: 0.8): a suggestion costs a person a look, so it should mostly be right. */
export const DEFAULT_PROPAGATE_MIN_CONFIDENCE = 0.8;

/** How classify decides: kNN vote over labelled neighbours, the trained head, or both averaged (default: knn). */
export const CLASSIFY_METHODS = Object.freeze(['knn', 'head', 'both'] as const);
export const DEFAULT_CLASSIFY_METHOD = 'knn';

/** The embedding spaces a query can name (default: the library's active one). */
export const SPACES = Object.freeze(['backbone', 'autoencoder'] as const);

/** A label: 1 to 200 printable characters (trimmed). A name, not a description. */
export const MAX_LABEL_LENGTH = 200;

/** `pixdex train` (the autoencoder): embedding size, passes over the sample, images trained on, step size. */
export const TRAIN_DIM: IntRange = Object.freeze({ min: 8, max: 4096, default: 256 });
export const TRAIN_EPOCHS: IntRange = Object.freeze({ min: 1, max: 10_000, default: 30 });
/** Feature maps are held in memory for training: 1000 MobileNetV2 maps (7x7x1280 float32) = 250 MB; 4000 at most. */
export const TRAIN_SAMPLE: IntRange = Object.freeze({ min: 2, max: 4000, default: 1000 });
/** Images per training step; the sample must hold at least one batch (the engine checks sample >= batchSize). */
export const TRAIN_BATCH_SIZE: IntRange = Object.freeze({ min: 2, max: 1024, default: 32 });

/** `pixdex train-classifier` (the softmax head): hidden units (0 = linear), most epochs, early-stopping patience. */
export const HEAD_HIDDEN: IntRange = Object.freeze({ min: 0, max: 4096, default: 0 });
export const HEAD_EPOCHS: IntRange = Object.freeze({ min: 1, max: 10_000, default: 200 });
export const HEAD_PATIENCE: IntRange = Object.freeze({ min: 1, max: 1000, default: 10 });
/** `train-classifier --mode`: the head on frozen vectors (default), the top blocks fine-tuned, or the whole network from fresh weights. */
export const CLASSIFIER_MODES = Object.freeze(['head', 'finetune', 'scratch'] as const);
/** Most epochs and patience of `--mode finetune|scratch` when not given (an epoch costs far more than a head's). */
export const FINETUNE_EPOCHS_DEFAULT = 30;
export const FINETUNE_PATIENCE_DEFAULT = 4;
/** `--mode scratch` (the whole network from fresh weights): input side, most epochs and patience when not given (an epoch costs ~10x a top's). */
export const SCRATCH_INPUT_DEFAULT = 128;
export const SCRATCH_EPOCHS_DEFAULT = 20;
export const SCRATCH_PATIENCE_DEFAULT = 8;
/** `train-classifier --blocks`: MobileNetV2 inverted-residual blocks retrained below `Conv_1` (0 = Conv_1 only; 3 = expanded_conv_14..16). */
export const FINETUNE_BLOCKS: IntRange = Object.freeze({ min: 0, max: 3, default: 2 });

/** Embedding worker threads of an index run (default: one per core, in src/config.ts). */
export const MAX_WORKERS = 64;
/** Folders or files per `POST /api/index`: a page or script names a few roots, not a file list. */
export const MAX_INDEX_PATHS = 64;

/** `pixdex eval`: generated instance queries (default in src/eval) and the seed of the generated set. */
export const MAX_EVAL_INSTANCES = 100_000;
export const MAX_SEED = 2 ** 31 - 1;

/**
 * Browsing the library (`GET /api/images`): images per page (default: 48, a few screens of
 * thumbnails on a phone, one or two on a desktop; at most 500, since each one costs the page a thumbnail request).
 */
export const PAGE_LIMIT: IntRange = Object.freeze({ min: 1, max: 500, default: 48 });

/** Image ids are uint32s; 0 is never used. */
export const MAX_IMAGE_ID = 0xffff_ffff;
