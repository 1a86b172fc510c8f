/**
 * The one table of error codes (DESIGN.md, Conventions): every code pixdex emits, with its exit
 * code (CLI), its HTTP status (server) and what it means. `cli/exit.ts` and `server/errors.ts`
 * derive their mappings from it; test/contracts.test.ts checks that every code thrown in src/,
 * indexer/ and server/ is here.
 */

/** Exit codes: 0 success, 1 unexpected failure, 2 usage/parameters, 3 not found, 4 bad input, 5 model/store, 130 interrupted. */
export const EXIT = Object.freeze({
  ok: 0,
  failure: 1,
  usage: 2,
  notFound: 3,
  badInput: 4,
  environment: 5,
  interrupted: 130,
});

/** One row of the table. */
export interface ErrorContract {
  /** Process exit code when a CLI command ends with this error. */
  exit: number;
  /** HTTP status when a request ends with this error (500s are logged with their stack). */
  status: number;
  /** What it means, in one line. */
  meaning: string;
}

/**
 * Every code, grouped by what the caller should do. Where the status is a judgement call, the
 * reason is beside it.
 */
export const ERRORS = Object.freeze({
  // ---------------------------------------------------------------- the request or command is wrong
  INVALID_PARAMETER: { exit: EXIT.usage, status: 400, meaning: 'A parameter is out of its documented range or of the wrong type.' },
  USAGE: { exit: EXIT.usage, status: 400, meaning: 'The command line is malformed: unknown command, wrong number of arguments, options that exclude each other.' },
  MISSING_IMAGE: { exit: EXIT.usage, status: 400, meaning: 'A request that needs an image sent none (multipart field "image" or a raw image/* body).' },
  BAD_REQUEST_BODY: { exit: EXIT.usage, status: 400, meaning: 'The request body is malformed: invalid JSON, a broken or incomplete multipart body, too many parts.' },
  UNAUTHORIZED: { exit: EXIT.usage, status: 401, meaning: 'A mutating route without the bearer token the server was started with.' },
  // ---------------------------------------------------------------- what was named does not exist
  NOT_FOUND: { exit: EXIT.notFound, status: 404, meaning: 'An id, path, label, job or library the caller named does not exist.' },
  ROUTE_NOT_FOUND: { exit: EXIT.notFound, status: 404, meaning: 'No HTTP route or page file has this path.' },
  // 405, not 404: the path exists, so the client has the method wrong; the Allow header names the right ones.
  METHOD_NOT_ALLOWED: { exit: EXIT.usage, status: 405, meaning: 'The HTTP path exists but does not take this method; the Allow header lists the methods it takes.' },
  // ---------------------------------------------------------------- the input is not a usable image
  EMPTY_IMAGE: { exit: EXIT.badInput, status: 400, meaning: 'The input is 0 bytes.' },
  TRUNCATED_IMAGE: { exit: EXIT.badInput, status: 400, meaning: 'The data ends before the image does.' },
  CORRUPT_IMAGE: { exit: EXIT.badInput, status: 400, meaning: 'A recognised image format with undecodable data.' },
  UNSUPPORTED_IMAGE: { exit: EXIT.badInput, status: 415, meaning: 'Not an image, or a format this build cannot decode (PDF, text, SVG...).' },
  IMAGE_TOO_LARGE: { exit: EXIT.badInput, status: 413, meaning: 'More pixels than maxInputPixels, or a file of more bytes than maxFileBytes.' },
  UPLOAD_TOO_LARGE: { exit: EXIT.badInput, status: 413, meaning: 'The request body is over the upload limit (maxUploadBytes).' },
  UNSUPPORTED_MEDIA_TYPE: { exit: EXIT.badInput, status: 415, meaning: 'The request body has a Content-Type, encoding or charset the route does not take.' },
  // 400 over HTTP as for the image codes it summarises (not sent by the server today: a job reports per file).
  INDEX_FAILED: { exit: EXIT.badInput, status: 400, meaning: 'An index run indexed nothing and its failures have different codes (CLI stderr line).' },
  // 500 over HTTP: the file is one the server indexed itself, so the fault is on the server side and gets logged.
  UNREADABLE_FILE: { exit: EXIT.badInput, status: 500, meaning: 'A file could not be read (permission denied, I/O error, not a regular file).' },
  // ---------------------------------------------------------------- the library's state does not allow it
  // 409: the request is fine, the library's state refuses it until someone trains a classifier.
  NO_CLASSIFIER: { exit: EXIT.environment, status: 409, meaning: 'classify with method head or both before `pixdex train-classifier`.' },
  // 409: two writers raced; sending the same request again succeeds.
  STORE_CONFLICT: { exit: EXIT.environment, status: 409, meaning: 'Another writer removed an image while it was being added: send it again.' },
  // 409: the library conflicts with the backbone/space/schema asked for; the same request fails until the library changes (was a 500).
  STORE_MISMATCH: { exit: EXIT.environment, status: 409, meaning: 'The library was built with another schema, backbone, descriptor or space, or has no metadata.' },
  // 409: one job at a time; retry when the running one ends or after cancelling it.
  INDEX_JOB_RUNNING: { exit: EXIT.environment, status: 409, meaning: 'An index job is already running on this server.' },
  // 503: the library lives in a PostgreSQL server (--store postgres://…) that cannot be reached or refuses the connection; the same request succeeds once it is back.
  STORE_UNAVAILABLE: { exit: EXIT.environment, status: 503, meaning: 'The PostgreSQL server of --store cannot be reached, refuses the login or has no such database.' },
  // ---------------------------------------------------------------- the model cannot run (yet)
  // 503: the server is up but cannot answer model requests until its models folder is fixed.
  MODEL_NOT_FOUND: { exit: EXIT.environment, status: 503, meaning: 'The models folder or a model file is missing or unreadable.' },
  // 503: as MODEL_NOT_FOUND, for the tfjs backend.
  BACKEND_UNAVAILABLE: { exit: EXIT.environment, status: 503, meaning: 'The requested tfjs backend cannot be loaded.' },
  // 503: the model files were fetched but are not the pinned bytes; nothing was installed.
  MODEL_CHECKSUM_MISMATCH: { exit: EXIT.environment, status: 503, meaning: 'A downloaded model file does not have its pinned SHA-256 (nothing was kept).' },
  // 503: as MODEL_NOT_FOUND, when fetching it from its public origin failed (offline, HTTP error).
  MODEL_DOWNLOAD_FAILED: { exit: EXIT.environment, status: 503, meaning: 'A missing model could not be downloaded from its origin (offline, HTTP error, cut connection).' },
  // 400: the file given to `pixdex models import` is not a TFLite model pixdex can convert.
  UNSUPPORTED_MODEL: { exit: EXIT.badInput, status: 400, meaning: 'A TFLite file that is malformed or uses an op the converter does not support (the message names it).' },
  NOT_READY: { exit: EXIT.environment, status: 503, meaning: 'The model is loading or failed to load, or the server is shutting down.' },
  // 503 with Retry-After: the server is healthy but its photo queries are at their bound; the same request later succeeds.
  BUSY: { exit: EXIT.environment, status: 503, meaning: 'Too many photo queries are running and waiting (server.maxQueuedQueries): retry after the Retry-After seconds.' },
  // ---------------------------------------------------------------- the unexpected
  // 500: the engine rebuilds the index from the stored vectors instead, so a request reaching it is a bug.
  SNAPSHOT_UNUSABLE: { exit: EXIT.environment, status: 500, meaning: 'The HNSW snapshot is empty, truncated, corrupt or for other dims (the index is rebuilt).' },
  // 500: the store breaks its own invariants; only `pixdex check --repair` fixes it, and the server logs it.
  STORE_INCONSISTENT: { exit: EXIT.environment, status: 500, meaning: '`pixdex check` found problems in the store (duplicates, orphans, a stale index...).' },
  // 500: a crashed worker thread is a bug or a resource problem on the server, logged with its stack.
  WORKER_FAILED: { exit: EXIT.failure, status: 500, meaning: 'An embedding worker thread failed to start or exited.' },
  LISTEN_FAILED: { exit: EXIT.failure, status: 500, meaning: '`pixdex serve` cannot listen on the host and port (in use, no permission, no such address).' },
  INTERNAL: { exit: EXIT.failure, status: 500, meaning: 'An unexpected error; the message says no more (the server log has the details).' },
} as const satisfies Record<string, ErrorContract>);

/** Every error code pixdex emits: a closed union, so a new code must be added to the table. */
export type ErrorCode = keyof typeof ERRORS;

/** The codes of the table, in its order. */
export const ERROR_CODES = Object.freeze(Object.keys(ERRORS) as ErrorCode[]);

/** True when `code` is a code of the table. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERRORS, code);
}
