/**
 * The OpenAPI 3 description of the HTTP API, served at /openapi.json. test/server.test.ts checks
 * that it lists exactly the routes the app has.
 */

export interface OpenApiOptions {
  /** Largest k (engine MAX_K). */
  maxK: number;
  maxUploadBytes: number;
  thumbnailSize: number;
  version: string;
}

type Json = Record<string, unknown>;

const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: Json, description: string): Json => ({ description, content: { 'application/json': { schema } } });
const errorResponse = (description: string): Json => json(ref('Error'), description);

/** Builds the document; limits are filled in from the server's configuration. */
export function openApiDocument(o: OpenApiOptions): Json {
  const id = { name: 'id', in: 'path', required: true, description: 'Image id (positive integer).', schema: { type: 'integer', minimum: 1, maximum: 4294967295 } };
  const k = (dflt: number): Json => ({ name: 'k', in: 'query', description: `Number of results, 1..${o.maxK} (default: ${dflt}).`, schema: { type: 'integer', minimum: 1, maximum: o.maxK, default: dflt } });
  const expand = { name: 'expand', in: 'query', description: 'Average query expansion: average the query with its N best hits and search again (0 = off). Helps "more of this kind", not "this exact photo".', schema: { type: 'integer', minimum: 0, maximum: 10, default: 0 } };
  const labelFilter = { name: 'label', in: 'query', description: 'Only images with this label; applied inside the ANN search, so k results still come back.', schema: { type: 'string', minLength: 1, maxLength: 200 } };
  const uploadBody = (extra: Json = {}): Json => ({
    required: true,
    description: `The image: a multipart field \`image\` (one file) or a raw image/* body, at most ${o.maxUploadBytes} bytes. JPEG, PNG, WebP, GIF, TIFF or AVIF.`,
    content: {
      'multipart/form-data': { schema: { type: 'object', required: ['image'], properties: { image: { type: 'string', format: 'binary' }, ...extra } } },
      'image/*': { schema: { type: 'string', format: 'binary' } },
    },
  });
  const bad = {
    400: errorResponse('Bad parameter, no image, or an empty, truncated or corrupt image.'),
    413: errorResponse('Upload over the size limit, or image over the pixel limit.'),
    415: errorResponse('Not an image format pixdex decodes (PDF, text, SVG, HEIC...), or a body of another type.'),
    503: errorResponse('The model is not loaded.'),
  };
  const auth = { security: [{ bearer: [] }], responses401: { 401: errorResponse('A token is set and the request lacks it or has another one.') } };
  const results = json(ref('SearchResponse'), 'Most similar images, best first.');
  const jobId = { name: 'jobId', in: 'path', required: true, description: 'Index job id (16 hex digits, from POST /api/index).', schema: { type: 'string', pattern: '^[0-9a-f]{16}$' } };

  return {
    openapi: '3.0.3',
    info: {
      title: 'pixdex',
      version: o.version,
      description: 'Image similarity search over a local library. Errors are `{ "error": { "code", "message" } }`. When the server has a token, mutating routes need `Authorization: Bearer <token>`.',
    },
    paths: {
      '/healthz': { get: { summary: 'Liveness: the process answers.', responses: { 200: json({ type: 'object', properties: { status: { type: 'string', enum: ['ok'] } } }, 'Alive.') } } },
      '/readyz': { get: { summary: 'Readiness: model loaded and warmed up, index open.', responses: { 200: json({ type: 'object', properties: { status: { type: 'string', enum: ['ready'] } } }, 'Ready.'), 503: errorResponse('Loading, failed to load, or shutting down.') } } },
      '/openapi.json': { get: { summary: 'This document.', responses: { 200: json({ type: 'object' }, 'OpenAPI 3 document.') } } },
      '/api/stats': { get: { summary: 'Store, model and index facts.', responses: { 200: json({ type: 'object' }, 'Same fields as `pixdex stats --json`.') } } },
      '/api/labels': { get: { summary: 'Labels with their image counts, most frequent first.', responses: { 200: json({ type: 'object', properties: { labels: { type: 'array', items: { type: 'object', properties: { label: { type: 'string' }, count: { type: 'integer' } } } } } }, 'Labels.') } } },
      '/api/search': {
        post: { summary: 'Images most similar to an uploaded one.', parameters: [k(10), labelFilter, expand], requestBody: uploadBody(), responses: { 200: results, ...bad } },
      },
      '/api/classify': {
        post: {
          summary: 'Label of an uploaded image: distance-weighted kNN vote over labelled images, the trained head, or both.',
          parameters: [
            k(10),
            { name: 'minConfidence', in: 'query', description: 'Below this confidence the label is null (default: 0).', schema: { type: 'number', minimum: 0, maximum: 1, default: 0 } },
            { name: 'method', in: 'query', description: 'knn (default), head (needs `pixdex train-classifier`; 409 otherwise) or both (average of the two distributions).', schema: { type: 'string', enum: ['knn', 'head', 'both'], default: 'knn' } },
          ],
          requestBody: uploadBody(),
          responses: { 200: json(ref('ClassifyResponse'), 'The vote.'), ...bad },
        },
      },
      '/api/suggestions': {
        get: { summary: 'Pending label suggestions (from label propagation), most confident first.', responses: { 200: json({ type: 'object', properties: { suggestions: { type: 'array', items: ref('Suggestion') } } }, 'Suggestions.') } },
      },
      '/api/suggestions/propagate': {
        post: {
          summary: 'Suggest a label for every unlabelled image from its labelled neighbours; with apply=true the suggestions are saved (never over a label a person set).',
          security: auth.security,
          parameters: [
            k(10),
            { name: 'minConfidence', in: 'query', description: 'Only suggest at or above this confidence (default: 0.8).', schema: { type: 'number', minimum: 0, maximum: 1, default: 0.8 } },
            { name: 'apply', in: 'query', description: 'Save the suggestions (default: false: report only).', schema: { type: 'boolean', default: false } },
          ],
          responses: { 200: json({ type: 'object', properties: { unlabelled: { type: 'integer' }, suggested: { type: 'integer' }, undecided: { type: 'integer' }, applied: { type: 'boolean' }, suggestions: { type: 'array', items: ref('Suggestion') } } }, 'The propagation report.'), 400: errorResponse('Bad parameter.'), ...auth.responses401 },
        },
      },
      '/api/suggestions/{id}/accept': {
        post: { summary: 'Make the suggestion the image\'s label.', security: auth.security, parameters: [id], responses: { 200: json({ type: 'object', properties: { id: { type: 'integer' }, label: { type: 'string' } } }, 'Accepted.'), 400: errorResponse('Bad id.'), 404: errorResponse('No pending suggestion for this image.'), ...auth.responses401 } },
      },
      '/api/suggestions/{id}/reject': {
        post: { summary: 'Drop the suggestion; this label is not suggested for this image again.', security: auth.security, parameters: [id], responses: { 200: json({ type: 'object', properties: { id: { type: 'integer' }, rejected: { type: 'string' } } }, 'Rejected.'), 400: errorResponse('Bad id.'), 404: errorResponse('No pending suggestion for this image.'), ...auth.responses401 } },
      },
      '/api/images': {
        post: {
          summary: 'Add an image (kept under the data folder), with an optional label.',
          security: auth.security,
          parameters: [{ name: 'label', in: 'query', description: 'Label, for a raw image/* body (multipart uses the `label` field).', schema: { type: 'string' } }],
          requestBody: uploadBody({ label: { type: 'string', minLength: 1, maxLength: 200 } }),
          responses: {
            201: json(ref('Created'), 'Added.'),
            200: json(ref('Created'), 'Identical content was already indexed: its id (relabelled when a label was given).'),
            ...auth.responses401,
            ...bad,
          },
        },
      },
      '/api/images/{id}': {
        get: { summary: 'Metadata of an image.', parameters: [id], responses: { 200: json(ref('Image'), 'The image.'), 400: errorResponse('Bad id.'), 404: errorResponse('No such image.') } },
        delete: {
          summary: 'Remove an image from the index.',
          security: auth.security,
          parameters: [id],
          responses: { 200: json({ type: 'object', properties: { removed: { type: 'integer' } } }, 'Removed.'), 400: errorResponse('Bad id.'), ...auth.responses401, 404: errorResponse('No such image.') },
        },
      },
      '/api/images/{id}/similar': {
        get: { summary: 'Images most similar to an indexed one (itself excluded).', parameters: [id, k(10), labelFilter, expand], responses: { 200: results, 400: errorResponse('Bad id or parameter.'), 404: errorResponse('No such image.') } },
      },
      '/api/images/{id}/label': {
        put: {
          summary: 'Set or (with null) clear the label of an image.',
          security: auth.security,
          parameters: [id],
          requestBody: { required: true, content: { 'application/json': { schema: { type: 'object', required: ['label'], properties: { label: { type: 'string', nullable: true, minLength: 1, maxLength: 200 } } } } } },
          responses: { 200: json(ref('Image'), 'The updated image.'), 400: errorResponse('Bad id or label.'), ...auth.responses401, 404: errorResponse('No such image.'), 415: errorResponse('Body is not JSON.') },
        },
      },
      '/api/images/{id}/thumbnail': {
        get: {
          summary: `Thumbnail (longest side ${o.thumbnailSize} px) of an indexed image, JPEG or WebP.`,
          parameters: [id, { name: 'format', in: 'query', description: 'Overrides the Accept header (default: WebP when Accept names it, else JPEG).', schema: { type: 'string', enum: ['jpeg', 'webp'] } }],
          responses: {
            200: { description: 'The thumbnail.', content: { 'image/jpeg': { schema: { type: 'string', format: 'binary' } }, 'image/webp': { schema: { type: 'string', format: 'binary' } } } },
            400: errorResponse('Bad id or format.'),
            404: errorResponse('No such image, or its file is gone.'),
          },
        },
      },
      '/api/index': {
        get: { summary: 'Index jobs kept in memory (the running one and the last finished ones), newest first.', responses: { 200: json({ type: 'object', properties: { jobs: { type: 'array', items: ref('IndexJob') } } }, 'Jobs.') } },
        post: {
          summary: 'Start indexing folders (or files) the server can read, in the background; one job at a time.',
          description: 'Same as `pixdex index`: recursive, incremental, labels from folder names on request. Poll `GET /api/index/{jobId}` for progress.',
          security: auth.security,
          requestBody: {
            required: true,
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  required: ['paths'],
                  properties: {
                    paths: { type: 'array', minItems: 1, maxItems: 64, items: { type: 'string', description: 'Absolute path on the server.' } },
                    labelFromFolder: { type: 'boolean', default: false, description: "Label each image with its parent folder's name." },
                  },
                },
              },
            },
          },
          responses: {
            202: json({ type: 'object', properties: { jobId: { type: 'string' }, statusUrl: { type: 'string' } } }, 'Started; `Location` is the status URL.'),
            400: errorResponse('Bad body, a relative path, or a path the server cannot read.'),
            ...auth.responses401,
            404: errorResponse('A path does not exist on the server.'),
            409: errorResponse('A job is running (code INDEX_JOB_RUNNING).'),
            415: errorResponse('Body is not JSON.'),
          },
        },
      },
      '/api/index/{jobId}': {
        get: { summary: 'Progress of an index job: done, total, rate, ETA, summary so far.', parameters: [jobId], responses: { 200: json(ref('IndexJob'), 'The job.'), 400: errorResponse('Bad job id.'), 404: errorResponse('No such job (jobs are forgotten on restart).') } },
        delete: {
          summary: 'Cancel a running job after its batches in flight (what was indexed is kept); no-op on a finished job.',
          security: auth.security,
          parameters: [jobId],
          responses: { 200: json(ref('IndexJob'), 'The job, with cancelRequested.'), 400: errorResponse('Bad job id.'), ...auth.responses401, 404: errorResponse('No such job.') },
        },
      },
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        Suggestion: { type: 'object', properties: { id: { type: 'integer' }, path: { type: 'string' }, label: { type: 'string' }, confidence: { type: 'number' }, thumbnailUrl: { type: 'string' } } },
        Error: { type: 'object', required: ['error'], properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' } } } } },
        Result: {
          type: 'object',
          properties: {
            id: { type: 'integer' },
            path: { type: 'string' },
            score: { type: 'number', description: 'Cosine similarity, highest first.' },
            label: { type: 'string', nullable: true },
            thumbnailUrl: { type: 'string' },
          },
        },
        SearchResponse: { type: 'object', properties: { results: { type: 'array', items: ref('Result') }, tookMs: { type: 'number' } } },
        ClassifyResponse: {
          type: 'object',
          properties: {
            label: { type: 'string', nullable: true },
            confidence: { type: 'number', minimum: 0, maximum: 1 },
            votes: { type: 'object', additionalProperties: { type: 'number' } },
            method: { type: 'string', enum: ['knn', 'head', 'both'] },
            neighbors: { type: 'array', items: ref('Result') },
            tookMs: { type: 'number' },
          },
        },
        Created: { type: 'object', properties: { id: { type: 'integer' } } },
        IndexJob: {
          type: 'object',
          properties: {
            jobId: { type: 'string' },
            state: { type: 'string', enum: ['running', 'done', 'failed', 'cancelled'] },
            paths: { type: 'array', items: { type: 'string' } },
            labelFromFolder: { type: 'boolean' },
            done: { type: 'integer', description: 'Files handled so far (unchanged files count as done).' },
            total: { type: 'integer', nullable: true, description: 'Files found; null until the first batch is reported.' },
            rate: { type: 'number', description: 'Images per second.' },
            etaSeconds: { type: 'number' },
            startedAt: { type: 'number', description: 'Epoch ms.' },
            finishedAt: { type: 'number', nullable: true },
            summary: {
              type: 'object',
              nullable: true,
              description: 'Counts so far, then the `pixdex index --json` summary; `errors` lists at most 100 files.',
              properties: {
                added: { type: 'integer' }, updated: { type: 'integer' }, skipped: { type: 'integer' }, failed: { type: 'integer' }, removed: { type: 'integer' }, total: { type: 'integer' }, seconds: { type: 'number' },
                interrupted: { type: 'boolean' },
                errors: { type: 'array', items: { type: 'object', properties: { path: { type: 'string' }, error: { type: 'string' } } } },
              },
            },
            warnings: { type: 'array', items: { type: 'string' } },
            error: { type: 'object', nullable: true, properties: { code: { type: 'string' }, message: { type: 'string' } } },
            cancelRequested: { type: 'boolean' },
          },
        },
        Image: {
          type: 'object',
          properties: {
            id: { type: 'integer' },
            path: { type: 'string' },
            sha256: { type: 'string' },
            bytes: { type: 'integer' },
            width: { type: 'integer' },
            height: { type: 'integer' },
            mtimeMs: { type: 'number' },
            addedAt: { type: 'number' },
            label: { type: 'string', nullable: true },
            thumbnailUrl: { type: 'string' },
          },
        },
      },
    },
  };
}
