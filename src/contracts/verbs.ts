/**
 * One schema per verb (zod): the parameters of search, similar, classify, propagate, label, add,
 * index, train, train-classifier, eval and duplicates, with their defaults and limits (from ./limits.ts). The
 * CLI parses its options and the server its query strings and JSON bodies through `parseParams`,
 * which turns the first problem into INVALID_PARAMETER in the voice of `invalidParameter`
 * ("Expected integer between 1 and 1000 for k but received "0" of type string"); server/openapi.ts
 * documents them with `z.toJSONSchema`. Fields take strings as the CLI and query strings give them.
 */
import path from 'node:path';
import { z } from 'zod';
import { invalidParameter } from '../errors.ts';
import { DATE_EXPECTED, instantOf } from '../dates.ts';
import * as L from './limits.ts';

/** What each field expects, in words (the message of a bad value), and for arrays what each item expects. */
const EXPECTED = new WeakMap<z.ZodType, { field: string; item?: string }>();

function expects<T extends z.ZodType>(schema: T, field: string, item?: string): T {
  EXPECTED.set(schema, { field, item });
  return schema;
}

/** Decimal digits only, as `intParam` takes them: not "1e3", "0x10" nor "2.5". */
const digits = (v: unknown): unknown => (typeof v === 'string' && /^\s*[+-]?\d+\s*$/.test(v) ? Number(v) : v);
const numeric = (v: unknown): unknown => (typeof v === 'string' && v.trim() !== '' ? Number(v) : v);
const truth = (v: unknown): unknown => (v === 'true' ? true : v === 'false' ? false : v);

/** An integer in [min, max]; `dflt` undefined = optional with no default. */
function int(r: { min: number; max: number }, dflt: number | undefined, description: string) {
  const base = z.preprocess(digits, z.number().int().min(r.min).max(r.max));
  const s = (dflt === undefined ? base.optional() : base.default(dflt)).describe(description);
  return expects(s, `integer between ${r.min} and ${r.max}`);
}

function range(r: L.IntRange, description: string) {
  return int(r, r.default, `${description} (${r.min}..${r.max}, default: ${r.default}).`);
}

function confidence(dflt: number, description: string) {
  const s = z.preprocess(numeric, z.number().min(0).max(1)).default(dflt).describe(`${description} (0..1, default: ${dflt}).`);
  return expects(s, 'number between 0 and 1');
}

function oneOf<const T extends readonly [string, ...string[]]>(values: T, dflt: T[number] | undefined, description: string) {
  const base = z.enum(values);
  const s = (dflt === undefined ? base.optional() : base.default(dflt as never)).describe(description);
  return expects(s, `${values.slice(0, -1).join(', ')} or ${values[values.length - 1]}`);
}

/** `true` or `false`, as a boolean or (query strings) as text. */
function flag(description: string) {
  return expects(z.preprocess(truth, z.boolean()).default(false).describe(`${description} (default: false).`), 'true or false');
}

// ------------------------------------------------------------------------------------ fields

/** A label: 1 to MAX_LABEL_LENGTH printable characters, trimmed (the same rule as `checkLabel`). */
export const Label = z
  .string()
  .max(L.MAX_LABEL_LENGTH)
  .regex(/^[^\u0000-\u001f\u007f]*$/)
  .trim()
  .min(1);
const LABEL_EXPECTED = `a label of 1 to ${L.MAX_LABEL_LENGTH} printable characters`;

const { CLASSIFY_METHODS, SPACES } = L;

const k = range({ min: L.MIN_K, max: L.MAX_K, default: L.DEFAULT_K }, 'Number of results');
const expand = range({ min: 0, max: L.MAX_EXPAND, default: L.DEFAULT_EXPAND }, 'Average query expansion: average the query with its N best hits and search again (0 = off); helps "more of this kind", not "this exact photo"');
const space = oneOf(SPACES, undefined, 'Embedding space to search (default: the active one); backbone in an autoencoder library is an exact search.');
const labelFilter = expects(Label.optional().describe('Only images with this label; applied inside the ANN search, so k results still come back.'), LABEL_EXPECTED);

/** An ISO 8601 date or date-time bound on the capture date (src/image/metadata.ts `instantOf`). */
function dateBound(description: string, tail = '; applied inside the ANN search, so k results still come back') {
  const s = z.string().trim().refine((v) => instantOf(v) !== undefined).optional();
  return expects(s.describe(`${description} ISO 8601 date or date-time; without an offset read as UTC. Images without a capture date (EXIF) are left out when after or before is given${tail}.`), DATE_EXPECTED);
}
const AFTER = 'Only images taken at or after this time (inclusive).';
const BEFORE = 'Only images taken before this time (exclusive: 2021-06-06 ends with 5 June).';
const after = dateBound(AFTER);
const before = dateBound(BEFORE);

// ------------------------------------------------------------------------------------ verbs

const verify = expects(
  z.preprocess(truth, z.boolean()).default(true).describe('In a library with local features: verify the candidates geometrically and put the same object first (false: the visual ranking alone; default: true).'),
  'true or false',
);

/** `pixdex search`, `POST /api/search`: nearest images to a query photo. */
export const search = z.object({ k, label: labelFilter, after, before, space, expand, verify });

/** `GET /api/images/:id/similar`: nearest images to an indexed one (itself excluded). */
export const similar = z.object({ k, label: labelFilter, after, before, space, expand });

/** `pixdex classify`, `POST /api/classify`: a label from the neighbours' vote and/or the head. */
export const classify = z.object({
  k,
  minConfidence: confidence(L.DEFAULT_CLASSIFY_MIN_CONFIDENCE, 'Below this confidence the label is null'),
  method: oneOf(CLASSIFY_METHODS, L.DEFAULT_CLASSIFY_METHOD, 'knn (default), head (needs `pixdex train-classifier`; NO_CLASSIFIER otherwise) or both (average of the two distributions).'),
  space,
});

/** `pixdex label propagate`, `POST /api/suggestions/propagate`: suggest labels for unlabelled images. */
export const propagate = z.object({
  k,
  minConfidence: confidence(L.DEFAULT_PROPAGATE_MIN_CONFIDENCE, 'Only suggest at or above this confidence'),
  apply: flag('Save the suggestions (false: report only); never over a label a person set'),
});

/** `pixdex label`, `PUT /api/images/:id/label`: set a label, or clear it with null (HTTP). */
export const label = z.object({
  label: expects(Label.nullable().describe('The label, or null to clear it.'), `${LABEL_EXPECTED} or null`),
});

/** `POST /api/images`: add an image, optionally labelled. */
export const add = z.object({
  label: expects(Label.optional().describe('Label of the new image.'), LABEL_EXPECTED),
});

/** `pixdex index` options (the inputs are positional: any number, relative or absolute). */
export const index = z.object({
  labelFromFolder: expects(z.boolean().default(false).describe("Label each image with its parent folder's name (default: false)."), 'a boolean'),
  workers: int({ min: 1, max: L.MAX_WORKERS }, undefined, `Embedding worker threads (1..${L.MAX_WORKERS}, default: one per core).`),
  watch: expects(z.boolean().optional().describe('After indexing, keep following the folders: new, changed, moved and deleted files are picked up within seconds, until Ctrl-C (default: false).'), 'a boolean'),
});

/** An absolute path on the server: relative paths have no meaning to a server. */
const serverPath = z
  .string()
  .refine((p) => p.trim() !== '' && !/[\u0000-\u001f]/.test(p) && path.isAbsolute(p.trim()))
  .describe('Absolute path on the server.');

/** `POST /api/index` body: folders or files the server reads, indexed in the background. */
export const indexJob = z.object({
  paths: expects(
    z.array(serverPath).min(1).max(L.MAX_INDEX_PATHS).describe('Folders or files the server can read.'),
    `an array of 1 to ${L.MAX_INDEX_PATHS} absolute paths`,
    'absolute paths of folders or files on the server (e.g. "/home/me/Pictures")',
  ),
  labelFromFolder: index.shape.labelFromFolder,
});

/** `pixdex train`: train the library's autoencoder and switch search to it. */
export const train = z.object({
  dim: range(L.TRAIN_DIM, 'Embedding size'),
  epochs: range(L.TRAIN_EPOCHS, 'Passes over the sample'),
  sample: range(L.TRAIN_SAMPLE, 'Images trained on, drawn evenly from the library'),
});

/** `pixdex train-classifier`: train the softmax head on the labelled images. */
export const trainClassifier = z.object({
  mode: oneOf(L.CLASSIFIER_MODES, 'head', `head (default): a softmax layer on the frozen vectors; finetune: the backbone\'s top (--blocks inverted-residual blocks + the last 1x1 conv, pretrained, lower learning rate) plus a new softmax layer, on augmented views (mobilenet_v2; mobilenet_v1_embedding retrains its last 1x1 conv); scratch: the whole MobileNetV2 architecture from fresh weights at ${L.SCRATCH_INPUT_DEFAULT} px, trained end to end (a baseline that shows what pretraining buys; tensorflow backend only)`),
  blocks: int({ min: L.FINETUNE_BLOCKS.min, max: L.FINETUNE_BLOCKS.max }, undefined, `finetune: MobileNetV2 inverted-residual blocks retrained below the last 1x1 conv (${L.FINETUNE_BLOCKS.min}..${L.FINETUNE_BLOCKS.max}, default: ${L.FINETUNE_BLOCKS.default} = expanded_conv_15 and 16). Blocks need the tensorflow backend (npm run setup:tensorflow; on wasm a clear BACKEND_UNAVAILABLE error); --blocks 0 (Conv_1 alone) also trains on wasm. A mobilenet_v1_embedding library retrains its last 1x1 conv (Conv2d_13_pointwise) only: 0, on every backend. Not with scratch, which trains every block.`),
  hidden: range(L.HEAD_HIDDEN, 'Hidden units of the head (0 = a linear head)'),
  epochs: int({ min: L.HEAD_EPOCHS.min, max: L.HEAD_EPOCHS.max }, undefined, `Most epochs; early stopping usually ends sooner (${L.HEAD_EPOCHS.min}..${L.HEAD_EPOCHS.max}, default: ${L.HEAD_EPOCHS.default} for head, ${L.FINETUNE_EPOCHS_DEFAULT} for finetune, ${L.SCRATCH_EPOCHS_DEFAULT} for scratch).`),
  patience: int({ min: L.HEAD_PATIENCE.min, max: L.HEAD_PATIENCE.max }, undefined, `Epochs without a better held-out loss before stopping (${L.HEAD_PATIENCE.min}..${L.HEAD_PATIENCE.max}, default: ${L.HEAD_PATIENCE.default} for head, ${L.FINETUNE_PATIENCE_DEFAULT} for finetune, ${L.SCRATCH_PATIENCE_DEFAULT} for scratch).`),
  refit: expects(
    z.preprocess(truth, z.boolean()).optional().describe('finetune: after early stopping has chosen the number of epochs on the held-out split, train again from the start on every labelled image, held-out ones included, for that many epochs (false: keep the first run\'s best weights; default: true).'),
    'true or false',
  ),
});

/** A folder given on the command line (relative to the working directory). */
function folder(description: string) {
  return expects(z.string().refine((p) => p.trim() !== '' && !/[\u0000-\u001f]/.test(p)).optional().describe(description), 'a folder path');
}

/**
 * `pixdex eval`: quality figures on a folder-per-class dataset, or (queries and references) the
 * same object in real photos, paired by file name (src/eval/pairs.ts).
 */
export const evaluate = z.object({
  space,
  instance: int({ min: 0, max: L.MAX_EVAL_INSTANCES }, undefined, 'Generated instance queries (0 = none).'),
  seed: int({ min: 0, max: L.MAX_SEED }, undefined, 'Seed of the generated instance set.'),
  queries: folder('Folder of query photos, each named like its reference (e.g. smvs/book_covers/query).'),
  references: folder('Folder of reference images, indexed into the library (e.g. smvs/book_covers/reference).'),
  workers: index.shape.workers,
});

/** `pixdex duplicates` / `GET /api/duplicates`: groups of copies, edits and bursts (src/duplicates/). */
export const duplicates = z.object({
  kind: oneOf(['exact', 'near', 'similar'] as const, 'near', 'exact: the same bytes; near: the same picture resized, re-saved, cropped or edited; similar: the same scene moments apart (default: near).'),
  threshold: expects(
    z.preprocess(numeric, z.number().gt(0).max(1)).optional().describe('Cosine a pair needs for this kind (default: the measured threshold; not for exact).'),
    'number above 0 and at most 1',
  ),
});

/** `GET /api/images`: the library page by page, in the order images were added or by capture date, all or one label's, in a date range. */
export const images = z.object({
  offset: int({ min: 0, max: L.MAX_IMAGE_ID }, 0, 'Images to skip (default: 0).'),
  limit: range(L.PAGE_LIMIT, 'Images per page'),
  label: expects(Label.optional().describe("Only this label's images."), LABEL_EXPECTED),
  order: oneOf(['added', 'taken'], 'added', 'added: in the order images were added (default); taken: by capture date (EXIF), newest first, undated images last.'),
  after: dateBound(AFTER, ''),
  before: dateBound(BEFORE, ''),
});

/** `GET /api/images/:id/original`: the original file, shown in the browser or downloaded. */
export const original = z.object({
  download: flag('Send it as an attachment, to save, rather than to show in the browser'),
});

/** Path parameters of the HTTP API. */
export const imageId = expects(
  z.string().regex(/^[1-9][0-9]{0,9}$/).transform(Number).pipe(z.number().int().min(1).max(L.MAX_IMAGE_ID)).describe('Image id (positive integer).'),
  'a positive integer image id',
);
export const jobId = expects(z.string().regex(/^[0-9a-f]{16}$/).describe('Index job id (16 hex digits, from POST /api/index).'), 'a job id of 16 hex digits (from POST /api/index)');

/** Every verb's schema, by the name the CLI gives it. */
export const VERBS = Object.freeze({ search, similar, classify, propagate, label, add, index, 'index-job': indexJob, train, 'train-classifier': trainClassifier, eval: evaluate, duplicates, images, original });

// ------------------------------------------------------------------------------------ parsing

/** How parameter names are shown in messages: as the API spells them, or as CLI options (`min-confidence`). */
export type NameStyle = 'api' | 'cli';

const kebab = (name: string): string => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/**
 * Parses `input` (parsed CLI options, a query string object, a JSON body) with a verb's schema:
 * defaults filled in, strings made numbers. Unknown keys are ignored. The first problem throws
 * INVALID_PARAMETER naming the parameter; `body` names what a non-object input should have been.
 */
export function parseParams<S extends z.ZodObject>(schema: S, input: unknown, o: { names?: NameStyle; body?: string } = {}): z.output<S> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw invalidParameter('body', o.body ?? 'a JSON object', JSON.stringify(input));
  }
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const key = String(issue.path[0] ?? '');
  const field = schema.shape[key] as z.ZodType | undefined;
  const e = field ? EXPECTED.get(field) : undefined;
  const name = o.names === 'cli' ? kebab(key) : key;
  const value = (input as Record<string, unknown>)[key];
  if (issue.path.length > 1 && e?.item && Array.isArray(value)) {
    return fail(name, e.item, value[Number(issue.path[1])]);
  }
  return fail(name, e?.field ?? issue.message, value);
}

/** Parses one value with a field schema (`imageId`, `jobId`...) or throws INVALID_PARAMETER for `name`. */
export function parseParam<T extends z.ZodType>(schema: T, name: string, value: unknown): z.output<T> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  return fail(name, EXPECTED.get(schema)?.field ?? r.error.issues[0].message, value);
}

function fail(name: string, expected: string, value: unknown): never {
  throw invalidParameter(name, expected, typeof value === 'object' && value !== null ? JSON.stringify(value) : value);
}
