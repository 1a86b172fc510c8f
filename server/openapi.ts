/**
 * The OpenAPI 3 description of the HTTP API, served at /openapi.json. Generated: the parameters
 * and bodies from the verbs' zod schemas (src/contracts/verbs.ts), the response bodies from
 * src/contracts/responses.ts, the error responses from the error table (src/contracts/errors.ts).
 * What is written here is only the routes, their summaries and which codes each can answer.
 * test/server.test.ts checks that it lists exactly the routes the app has.
 */
import { z } from 'zod';
import { ERRORS, type ErrorCode } from '../src/contracts/errors.ts';
import { RESPONSES } from '../src/contracts/responses.ts';
import { VERBS, imageId, jobId } from '../src/contracts/verbs.ts';

export interface OpenApiOptions {
  maxUploadBytes: number;
  thumbnailSize: number;
  version: string;
}

type Json = Record<string, unknown>;
type ResponseName = keyof typeof RESPONSES;

/** zod → OpenAPI 3.0 schema; integers without bounds lose zod's ±2^53 bounds (noise in a document). */
function schemaOf(schema: z.ZodType, io: 'input' | 'output'): Json {
  const out = z.toJSONSchema(schema, { target: 'openapi-3.0', io, override: dropSafeIntegerBounds }) as Json;
  delete out.$schema;
  return out;
}

function dropSafeIntegerBounds(ctx: { jsonSchema: Json }): void {
  const s = ctx.jsonSchema;
  if (s.minimum === Number.MIN_SAFE_INTEGER) delete s.minimum;
  if (s.maximum === Number.MAX_SAFE_INTEGER) delete s.maximum;
}

/** The query parameters of a verb: name, required when it has neither default nor `optional`, description, schema. */
function query(schema: z.ZodObject): Json[] {
  return Object.entries(schema.shape as Record<string, z.ZodType>).map(([name, field]) => {
    const { description, ...s } = schemaOf(field, 'output');
    return { name, in: 'query', required: !field.safeParse(undefined).success, ...(description ? { description } : {}), schema: s };
  });
}

function pathParam(name: string, schema: z.ZodType): Json {
  const { description, ...s } = schemaOf(schema, 'output');
  return { name, in: 'path', required: true, description, schema: s };
}

const ref = (name: ResponseName): Json => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: Json, description: string): Json => ({ description, content: { 'application/json': { schema } } });

/**
 * Error responses of a route from the table: one per status, listing its codes with their
 * meanings (and in `x-error-codes`). INTERNAL (500) is added to every route.
 */
function errors(...codes: ErrorCode[]): Json {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of [...codes, 'INTERNAL' as const]) {
    const status = ERRORS[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  return Object.fromEntries([...byStatus].sort(([a], [b]) => a - b).map(([status, list]) => [
    status,
    { ...json(ref('Error'), list.map((c) => `${c}: ${ERRORS[c].meaning}`).join(' ')), ...(list.includes('BUSY') ? RETRY_AFTER : {}), 'x-error-codes': list },
  ]));
}

/** The header a BUSY answer carries: seconds until the photo-query queue has likely drained. */
const RETRY_AFTER: Json = { headers: { 'Retry-After': { description: 'With BUSY: seconds to wait before sending the query again.', schema: { type: 'integer', minimum: 1 } } } };

/** Codes of any route that reads an uploaded image and runs the model on it. */
const UPLOAD_ERRORS: ErrorCode[] = [
  'INVALID_PARAMETER', 'MISSING_IMAGE', 'BAD_REQUEST_BODY', 'EMPTY_IMAGE', 'TRUNCATED_IMAGE', 'CORRUPT_IMAGE',
  'UNSUPPORTED_IMAGE', 'IMAGE_TOO_LARGE', 'UPLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE', 'MODEL_NOT_FOUND', 'BACKEND_UNAVAILABLE',
];

/** Builds the document; the upload limit and thumbnail size come from the server's configuration. */
export function openApiDocument(o: OpenApiOptions): Json {
  const id = pathParam('id', imageId);
  const job = pathParam('jobId', jobId);
  const secured = { security: [{ bearer: [] }] };
  const uploadBody = (extra: Json = {}): Json => ({
    required: true,
    description: `The image: a multipart field \`image\` (one file) or a raw image/* body, at most ${o.maxUploadBytes} bytes. JPEG, PNG, WebP, GIF, TIFF, AVIF or HEIC/HEIF.`,
    content: {
      'multipart/form-data': { schema: { type: 'object', required: ['image'], properties: { image: { type: 'string', format: 'binary' }, ...extra } } },
      'image/*': { schema: { type: 'string', format: 'binary' } },
    },
  });
  const jsonBody = (schema: z.ZodType): Json => ({ required: true, content: { 'application/json': { schema: schemaOf(schema, 'input') } } });
  const results = json(ref('SearchResponse'), 'Most similar images, best first.');
  const { label: addLabel } = schemaOf(VERBS.add, 'input').properties as Json;

  const registry = z.registry<{ id: string }>();
  for (const [name, schema] of Object.entries(RESPONSES)) registry.add(schema, { id: name });
  const generated = z.toJSONSchema(registry, { target: 'openapi-3.0', io: 'input', uri: (name) => `#/components/schemas/${name}`, override: dropSafeIntegerBounds });
  const schemas = Object.fromEntries(Object.entries(generated.schemas).map(([name, { $id: _id, $schema: _s, ...s }]) => [name, s]));

  return {
    openapi: '3.0.3',
    info: {
      title: 'pixdex',
      version: o.version,
      description: 'Image similarity search over a local library. Errors are `{ "error": { "code", "message" } }`, the code one of the table in src/contracts/errors.ts; a path asked with a method it does not take answers 405 METHOD_NOT_ALLOWED with an `Allow` header. When the server has a token, mutating routes need `Authorization: Bearer <token>`.',
    },
    paths: {
      '/healthz': { get: { summary: 'Liveness: the process answers.', responses: { 200: json({ type: 'object', properties: { status: { type: 'string', enum: ['ok'] } } }, 'Alive.') } } },
      '/readyz': { get: { summary: 'Readiness: model loaded and warmed up, index open.', responses: { 200: json({ type: 'object', properties: { status: { type: 'string', enum: ['ready'] } } }, 'Ready.'), ...errors('NOT_READY') } } },
      '/openapi.json': { get: { summary: 'This document.', responses: { 200: json({ type: 'object' }, 'OpenAPI 3 document.') } } },
      '/api/stats': { get: { summary: 'Store, model and index facts.', responses: { 200: json({ type: 'object' }, 'Same fields as `pixdex stats --json`.'), ...errors() } } },
      '/api/labels': { get: { summary: 'Labels with their image counts, most frequent first.', responses: { 200: json({ type: 'object', properties: { labels: { type: 'array', items: { type: 'object', properties: { label: { type: 'string' }, count: { type: 'integer' } } } } } }, 'Labels.'), ...errors() } } },
      '/api/duplicates': {
        get: { summary: 'Groups of copies, edits and bursts, best copy first (images not compared yet are compared first).', parameters: query(VERBS.duplicates), responses: { 200: json(ref('DuplicatesResponse'), 'Duplicate groups.'), ...errors('INVALID_PARAMETER') } },
      },
      '/api/search': {
        post: { summary: 'Images most similar to an uploaded one.', parameters: query(VERBS.search), requestBody: uploadBody(), responses: { 200: results, ...errors(...UPLOAD_ERRORS, 'STORE_MISMATCH', 'BUSY') } },
      },
      '/api/classify': {
        post: {
          summary: 'Label of an uploaded image: distance-weighted kNN vote over labelled images, the trained head, or both.',
          parameters: query(VERBS.classify),
          requestBody: uploadBody(),
          responses: { 200: json(ref('ClassifyResponse'), 'The vote.'), ...errors(...UPLOAD_ERRORS, 'NO_CLASSIFIER', 'STORE_MISMATCH', 'BUSY') },
        },
      },
      '/api/suggestions': {
        get: { summary: 'Pending label suggestions (from label propagation), most confident first.', responses: { 200: json({ type: 'object', properties: { suggestions: { type: 'array', items: ref('Suggestion') } } }, 'Suggestions.'), ...errors() } },
      },
      '/api/suggestions/propagate': {
        post: {
          summary: 'Suggest a label for every unlabelled image from its labelled neighbours; with apply=true the suggestions are saved (never over a label a person set).',
          ...secured,
          parameters: query(VERBS.propagate),
          responses: { 200: json(ref('PropagateReport'), 'The propagation report.'), ...errors('INVALID_PARAMETER', 'UNAUTHORIZED') },
        },
      },
      '/api/suggestions/{id}/accept': {
        post: { summary: "Make the suggestion the image's label.", ...secured, parameters: [id], responses: { 200: json({ type: 'object', properties: { id: { type: 'integer' }, label: { type: 'string' } } }, 'Accepted.'), ...errors('INVALID_PARAMETER', 'UNAUTHORIZED', 'NOT_FOUND') } },
      },
      '/api/suggestions/{id}/reject': {
        post: { summary: 'Drop the suggestion; this label is not suggested for this image again.', ...secured, parameters: [id], responses: { 200: json({ type: 'object', properties: { id: { type: 'integer' }, rejected: { type: 'string' } } }, 'Rejected.'), ...errors('INVALID_PARAMETER', 'UNAUTHORIZED', 'NOT_FOUND') } },
      },
      '/api/images': {
        get: {
          summary: "The library page by page, in the order images were added: all images, or one label's.",
          parameters: query(VERBS.images),
          responses: { 200: json(ref('ImagesPage'), 'One page of images.'), ...errors('INVALID_PARAMETER') },
        },
        post: {
          summary: 'Add an image (kept under the data folder), with an optional label.',
          ...secured,
          parameters: query(VERBS.add).map((p) => ({ ...p, description: 'Label, for a raw image/* body (multipart uses the `label` field).' })),
          requestBody: uploadBody({ label: addLabel }),
          responses: {
            201: json(ref('Created'), 'Added.'),
            200: json(ref('Created'), 'Identical content was already indexed: its id (relabelled when a label was given).'),
            ...errors(...UPLOAD_ERRORS, 'UNAUTHORIZED', 'STORE_CONFLICT', 'STORE_MISMATCH'),
          },
        },
      },
      '/api/images/{id}': {
        get: { summary: 'Metadata of an image.', parameters: [id], responses: { 200: json(ref('Image'), 'The image.'), ...errors('INVALID_PARAMETER', 'NOT_FOUND') } },
        delete: {
          summary: 'Remove an image from the index.',
          ...secured,
          parameters: [id],
          responses: { 200: json({ type: 'object', properties: { removed: { type: 'integer' } } }, 'Removed.'), ...errors('INVALID_PARAMETER', 'UNAUTHORIZED', 'NOT_FOUND') },
        },
      },
      '/api/images/{id}/similar': {
        get: { summary: 'Images most similar to an indexed one (itself excluded).', parameters: [id, ...query(VERBS.similar)], responses: { 200: results, ...errors('INVALID_PARAMETER', 'NOT_FOUND') } },
      },
      '/api/images/{id}/label': {
        put: {
          summary: 'Set or (with null) clear the label of an image.',
          ...secured,
          parameters: [id],
          requestBody: jsonBody(VERBS.label),
          responses: { 200: json(ref('Image'), 'The updated image.'), ...errors('INVALID_PARAMETER', 'BAD_REQUEST_BODY', 'UNAUTHORIZED', 'NOT_FOUND', 'UNSUPPORTED_MEDIA_TYPE', 'UPLOAD_TOO_LARGE') },
        },
      },
      '/api/preview': {
        post: {
          summary: `JPEG thumbnail (longest side ${o.thumbnailSize} px) of an uploaded HEIC/HEIF photo, which most browsers cannot show; nothing is stored. Other formats: 415.`,
          requestBody: uploadBody(),
          responses: {
            200: { description: 'The thumbnail.', content: { 'image/jpeg': { schema: { type: 'string', format: 'binary' } } } },
            ...errors('MISSING_IMAGE', 'BAD_REQUEST_BODY', 'EMPTY_IMAGE', 'TRUNCATED_IMAGE', 'CORRUPT_IMAGE', 'UNSUPPORTED_IMAGE', 'IMAGE_TOO_LARGE', 'UPLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE', 'WORKER_FAILED'),
          },
        },
      },
      '/api/images/{id}/thumbnail': {
        get: {
          summary: `Thumbnail (longest side ${o.thumbnailSize} px) of an indexed image, JPEG or WebP.`,
          parameters: [id, { name: 'format', in: 'query', description: 'Overrides the Accept header (default: WebP when Accept names it, else JPEG).', schema: { type: 'string', enum: ['jpeg', 'webp'] } }],
          responses: {
            200: { description: 'The thumbnail.', content: { 'image/jpeg': { schema: { type: 'string', format: 'binary' } }, 'image/webp': { schema: { type: 'string', format: 'binary' } } } },
            ...errors('INVALID_PARAMETER', 'NOT_FOUND'),
          },
        },
      },
      '/api/images/{id}/original': {
        get: {
          summary: 'The original file of an indexed image, while it holds the content that was indexed (never a path the library does not record).',
          parameters: [id, ...query(VERBS.original)],
          responses: {
            200: { description: 'The file, with its sniffed image type; `Content-Disposition` inline (attachment with download=true) and the file name.', content: { 'image/*': { schema: { type: 'string', format: 'binary' } } } },
            ...errors('INVALID_PARAMETER', 'NOT_FOUND'),
          },
        },
      },
      '/api/index': {
        get: { summary: 'Index jobs kept in memory (the running one and the last finished ones), newest first.', responses: { 200: json({ type: 'object', properties: { jobs: { type: 'array', items: ref('IndexJob') } } }, 'Jobs.'), ...errors() } },
        post: {
          summary: 'Start indexing folders (or files) the server can read, in the background; one job at a time.',
          description: 'Same as `pixdex index`: recursive, incremental, labels from folder names on request. Poll `GET /api/index/{jobId}` for progress.',
          ...secured,
          requestBody: jsonBody(VERBS['index-job']),
          responses: {
            202: json({ type: 'object', properties: { jobId: { type: 'string' }, statusUrl: { type: 'string' } } }, 'Started; `Location` is the status URL.'),
            ...errors('INVALID_PARAMETER', 'BAD_REQUEST_BODY', 'UNAUTHORIZED', 'NOT_FOUND', 'INDEX_JOB_RUNNING', 'UNSUPPORTED_MEDIA_TYPE', 'UPLOAD_TOO_LARGE'),
          },
        },
      },
      '/api/index/{jobId}': {
        get: { summary: 'Progress of an index job: done, total, rate, ETA, summary so far.', parameters: [job], responses: { 200: json(ref('IndexJob'), 'The job.'), ...errors('INVALID_PARAMETER', 'NOT_FOUND') } },
        delete: {
          summary: 'Cancel a running job after its batches in flight (what was indexed is kept); no-op on a finished job.',
          ...secured,
          parameters: [job],
          responses: { 200: json(ref('IndexJob'), 'The job, with cancelRequested.'), ...errors('INVALID_PARAMETER', 'UNAUTHORIZED', 'NOT_FOUND') },
        },
      },
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas,
    },
  };
}
