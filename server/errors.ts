/**
 * The one place where errors become HTTP responses: a status per error code, and the body
 * `{ "error": { "code", "message" } }`. Nothing else in server/ picks a status for an error.
 */
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { ERRORS, ERROR_CODES, type ErrorCode } from '../src/contracts/errors.ts';
import { PixdexError } from '../src/errors.ts';
import { BusyError } from '../src/query-pool.ts';

/** Errors raised by the HTTP layer itself (auth, media types, uploads, routes). */
export class HttpError extends PixdexError {}

/** A known path asked with a method it does not take: 405 with an `Allow` header. */
export class MethodNotAllowedError extends HttpError {
  constructor(
    /** The methods the path takes, for the Allow header. */
    readonly allow: readonly string[],
    message: string,
  ) {
    super('METHOD_NOT_ALLOWED', message);
  }
}

/** HTTP status of every error code pixdex emits, from the one table (src/contracts/errors.ts). */
export const STATUS_BY_CODE: Readonly<Record<ErrorCode, number>> = Object.freeze(
  Object.fromEntries(ERROR_CODES.map((c) => [c, ERRORS[c].status])) as Record<ErrorCode, number>,
);

/** Multer's limit codes → ours: exceeding the file size is 413, any other multipart misuse is 400. */
const MULTER_CODES: Readonly<Record<string, [code: ErrorCode, message: string]>> = Object.freeze({
  LIMIT_FILE_SIZE: ['UPLOAD_TOO_LARGE', 'The uploaded file is over the upload limit'],
  LIMIT_FILE_COUNT: ['BAD_REQUEST_BODY', 'Send exactly one file, in the multipart field "image"'],
  LIMIT_UNEXPECTED_FILE: ['BAD_REQUEST_BODY', 'Send exactly one file, in the multipart field "image"'],
  LIMIT_PART_COUNT: ['BAD_REQUEST_BODY', 'Too many multipart parts'],
  LIMIT_FIELD_COUNT: ['BAD_REQUEST_BODY', 'Too many multipart fields'],
  LIMIT_FIELD_KEY: ['BAD_REQUEST_BODY', 'A multipart field name is too long'],
  LIMIT_FIELD_VALUE: ['BAD_REQUEST_BODY', 'A multipart field value is too long'],
});

/** What a failed request answers. */
export interface HttpFailure {
  status: number;
  code: ErrorCode;
  message: string;
  /** True when the error was not expected (status 500): it gets logged with its stack. */
  unexpected: boolean;
  /** Seconds for the Retry-After header (BUSY: when the photo-query queue has likely drained). */
  retryAfter?: number;
  /** The Allow header (METHOD_NOT_ALLOWED: the methods the path takes). */
  allow?: string;
}

/** Maps any thrown value to a status, a stable code and a message safe to show to a client. */
export function toHttpFailure(err: unknown, limits: { maxUploadBytes: number }): HttpFailure {
  if (err instanceof PixdexError) {
    const status = STATUS_BY_CODE[err.code] as number | undefined; // undefined: a code cast past the type (a bug)
    if (status === undefined) return internal();
    const f: HttpFailure = { status, code: err.code, message: err.message, unexpected: status === 500 };
    if (err instanceof BusyError) f.retryAfter = err.retryAfterSeconds;
    if (err instanceof MethodNotAllowedError) f.allow = err.allow.join(', ');
    return f;
  }
  const e = err as { name?: string; code?: string; type?: string; status?: number; field?: string; message?: string };
  if (e?.name === 'MulterError' && e.code) {
    const [code, message] = MULTER_CODES[e.code] ?? ['BAD_REQUEST_BODY', `Bad multipart body: ${e.message}`];
    const detail = code === 'UPLOAD_TOO_LARGE'
      ? ` of ${limits.maxUploadBytes} bytes (maxUploadBytes; pixdex serve --max-upload-mb)`
      : e.field ? ` (field "${e.field}")` : '';
    return { status: STATUS_BY_CODE[code], code, message: message + detail, unexpected: false };
  }
  // body-parser (express.raw / express.json) errors carry a `type`.
  switch (e?.type) {
    case 'entity.too.large':
      return { status: STATUS_BY_CODE.UPLOAD_TOO_LARGE, code: 'UPLOAD_TOO_LARGE', message: `The request body is over the upload limit of ${limits.maxUploadBytes} bytes (maxUploadBytes; pixdex serve --max-upload-mb)`, unexpected: false };
    case 'entity.parse.failed':
      return { status: STATUS_BY_CODE.BAD_REQUEST_BODY, code: 'BAD_REQUEST_BODY', message: 'The body is not valid JSON', unexpected: false };
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return { status: STATUS_BY_CODE.UNSUPPORTED_MEDIA_TYPE, code: 'UNSUPPORTED_MEDIA_TYPE', message: 'Unsupported body encoding or charset', unexpected: false };
    case 'request.aborted':
    case 'request.size.invalid':
    case 'stream.encoding.set':
      return { status: STATUS_BY_CODE.BAD_REQUEST_BODY, code: 'BAD_REQUEST_BODY', message: 'The request body was incomplete', unexpected: false };
  }
  // busboy: a malformed multipart body ("Unexpected end of form", "Malformed part header"...).
  if (typeof e?.message === 'string' && /multipart|unexpected end of form|malformed part header|boundary/i.test(e.message)) {
    return { status: STATUS_BY_CODE.BAD_REQUEST_BODY, code: 'BAD_REQUEST_BODY', message: `Bad multipart body: ${e.message}`, unexpected: false };
  }
  return internal();
}

function internal(): HttpFailure {
  return { status: STATUS_BY_CODE.INTERNAL, code: 'INTERNAL', message: 'Internal error; the server log has the details', unexpected: true };
}

/** JSON 404 for anything no route matched (after `methodNotAllowed`: no route or page file has the path at all). */
export const routeNotFound: RequestHandler = (req, _res, next) => {
  next(new HttpError('ROUTE_NOT_FOUND', `No route ${req.method} ${req.path}. GET /openapi.json lists the routes.`));
};

/** The one error middleware: writes the error body, logs the unexpected with its stack, never sends a stack. */
export function errorHandler(limits: { maxUploadBytes: number }, log: (line: string) => void): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const f = toHttpFailure(err, limits);
    if (f.unexpected) {
      log(`error: ${req.method} ${req.path}: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (f.status === 401) res.set('WWW-Authenticate', 'Bearer realm="pixdex"');
    if (f.retryAfter !== undefined) res.set('Retry-After', String(f.retryAfter));
    if (f.allow !== undefined) res.set('Allow', f.allow);
    res.status(f.status).json({ error: { code: f.code, message: f.message } });
  };
}
