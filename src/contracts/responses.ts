/**
 * The shapes the verbs answer with (DESIGN.md, CLI and HTTP contracts), as zod schemas: what
 * server/openapi.ts documents with `z.toJSONSchema`, and what a client can validate against.
 */
import { z } from 'zod';
import { ERROR_CODES } from './errors.ts';
import { CLASSIFY_METHODS } from './limits.ts';

/** `{ "error": { "code", "message" } }`: every failed request. */
export const ErrorBody = z.object({
  error: z.object({
    code: z.enum(ERROR_CODES as unknown as [string, ...string[]]).describe('Stable code; its status and meaning are in src/contracts/errors.ts.'),
    message: z.string().describe('One line: what was expected, what was received, what to do next.'),
  }),
});

const TAKEN_AT = 'When the photo was taken, ISO 8601, from its EXIF (DateTimeOriginal, else CreateDate), with the UTC offset when the camera recorded one (e.g. 2021-06-05T14:30:00+02:00); absent when unknown.';

/** One search hit. */
export const Result = z.object({
  id: z.number().int(),
  path: z.string(),
  score: z.number().describe('Visual similarity (cosine, or the regional match), at most 1. Without local features the results are in falling score; with them verified hits come first.'),
  label: z.string().nullable(),
  thumbnailUrl: z.string(),
  inliers: z.number().int().min(0).optional().describe('Local features only: keypoint matches between the query photo and this image that agree geometrically (the most that the local similarity of one match explains: src/local/verify.ts consistentInliers). Absent on a hit that was not checked: verification stops once a candidate has 40 inliers (src/local/rerank.ts CLEAR_WINNER_INLIERS).'),
  verified: z.boolean().optional().describe('Local features only: enough inliers (src/local/verify.ts VERIFIED_INLIERS) that this image shows the same object; verified hits come first, by inliers.'),
  outline: z.array(z.tuple([z.number(), z.number()])).length(4).optional().describe("A verified hit's four corners (x, y) in the query photo, as fractions of its width and height: where the object was found."),
  takenAt: z.string().optional().describe(TAKEN_AT),
});

export const SearchResponse = z.object({ results: z.array(Result), tookMs: z.number() });

export const ClassifyResponse = z.object({
  label: z.string().nullable().describe('null below minConfidence, when unknown (unlike every labelled class), or with no labelled neighbour.'),
  confidence: z.number().min(0).max(1).describe('Calibrated probability that the label (when null: the best candidate) is right: kNN fitted leave-one-out on the labelled images, the head temperature-scaled on its held-out split, both their mean. Before issue 17 it was the vote share, now `share`.'),
  share: z.number().min(0).max(1).describe("The best candidate's share of `votes` (the old confidence)."),
  unknown: z.boolean().describe('The photo is unlike every labelled class: label null whatever minConfidence.'),
  reason: z.string().optional().describe('Why the label is null, e.g. "unknown: unlike every labelled class".'),
  votes: z.record(z.string(), z.number()).describe('The distribution: kNN vote shares, the head\'s softmax, or their average.'),
  method: z.enum(CLASSIFY_METHODS),
  neighbors: z.array(Result),
  tookMs: z.number(),
});

export const Suggestion = z.object({ id: z.number().int(), path: z.string(), label: z.string(), confidence: z.number(), thumbnailUrl: z.string() });

export const PropagateReport = z.object({
  unlabelled: z.number().int(),
  suggested: z.number().int(),
  undecided: z.number().int(),
  unknown: z.number().int().describe('Of the undecided, images left alone as unlike every labelled class (open set).'),
  applied: z.boolean(),
  suggestions: z.array(Suggestion.omit({ thumbnailUrl: true })),
});

export const Image = z.object({
  id: z.number().int(),
  path: z.string(),
  sha256: z.string(),
  bytes: z.number().int(),
  width: z.number().int(),
  height: z.number().int(),
  mtimeMs: z.number(),
  addedAt: z.number(),
  label: z.string().nullable(),
  takenAt: z.string().optional().describe(TAKEN_AT),
  camera: z.object({ make: z.string().optional(), model: z.string().optional() }).optional().describe('Camera maker and model (EXIF Make, Model).'),
  orientation: z.number().int().min(1).max(8).optional().describe('EXIF orientation (1 = as stored); thumbnails and search apply it.'),
  gps: z.object({ lat: z.number(), lon: z.number() }).optional().describe('Where it was taken, decimal degrees (EXIF GPS).'),
  thumbnailUrl: z.string(),
});

export const Created = z.object({ id: z.number().int() });

/** `GET /api/images`: one page of the library, in the order images were added. */
export const ImagesPage = z.object({
  images: z.array(Image),
  total: z.number().int().describe('Images in the library, or with the label when filtered: the page after the last has none.'),
  offset: z.number().int(),
  limit: z.number().int(),
});

/** `pixdex index --json`, and an index job's summary. */
export const IndexSummary = z.object({
  added: z.number().int(),
  updated: z.number().int(),
  skipped: z.number().int(),
  failed: z.number().int(),
  removed: z.number().int(),
  total: z.number().int(),
  seconds: z.number(),
  interrupted: z.boolean().optional(),
  errors: z.array(z.object({ path: z.string(), error: z.string() })),
});

export const IndexJob = z.object({
  jobId: z.string(),
  origin: z.enum(['request', 'watch']).describe('request: POST /api/index; watch: a pass of `pixdex serve --watch`.'),
  state: z.enum(['running', 'done', 'failed', 'cancelled']),
  paths: z.array(z.string()),
  labelFromFolder: z.boolean(),
  done: z.number().int().describe('Files handled so far (unchanged files count as done).'),
  total: z.number().int().nullable().describe('Files found; null until the first batch is reported.'),
  rate: z.number().describe('Images per second.'),
  etaSeconds: z.number(),
  startedAt: z.number().describe('Epoch ms.'),
  finishedAt: z.number().nullable(),
  summary: IndexSummary.nullable().describe('Counts so far, then the `pixdex index --json` summary; `errors` lists at most 100 files.'),
  warnings: z.array(z.string()),
  error: ErrorBody.shape.error.nullable(),
  cancelRequested: z.boolean(),
});

/** Every response schema, by the name the OpenAPI document gives it. */
/** One image of a duplicate group. */
export const DuplicateMember = z.object({
  id: z.number().int(),
  path: z.string(),
  width: z.number().int(),
  height: z.number().int(),
  bytes: z.number().int(),
  mtimeMs: z.number().describe("The file's modification time (ms since 1970; 0 for uploads)."),
  label: z.string().optional(),
  thumbnailUrl: z.string(),
  evidence: z
    .object({ kind: z.enum(['near', 'similar']), cosine: z.number(), inliers: z.number().int().describe('Geometrically consistent keypoint matches; -1 when either image has no local features.') })
    .nullable()
    .optional()
    .describe("What joins it to the group's first member (absent on the first; null when joined only through another member)."),
});

export const DuplicatesResponse = z.object({
  kind: z.enum(['exact', 'near', 'similar']),
  thresholds: z.object({ nearCosine: z.number(), nearInliers: z.number(), nearCosineAlone: z.number(), similarCosine: z.number() }),
  images: z.number().int(),
  groups: z.array(z.object({ kind: z.enum(['exact', 'near', 'similar']), members: z.array(DuplicateMember).describe('Best copy first: most pixels, then the oldest file.') })),
  checked: z.object({ checked: z.number().int(), seconds: z.number(), interrupted: z.boolean() }).describe('Images compared with their neighbours by this request (new since the last check).'),
  tookMs: z.number(),
});

export const RESPONSES = Object.freeze({ Error: ErrorBody, Result, SearchResponse, ClassifyResponse, Suggestion, PropagateReport, Image, Created, ImagesPage, IndexSummary, IndexJob, DuplicateMember, DuplicatesResponse });
