/**
 * Image uploads: one file in the multipart field `image`, or a raw `image/*` body. Both are held
 * in memory under `maxUploadBytes`; the bytes are then sniffed by sharp (the declared type is
 * not trusted), so a PDF sent as image/jpeg is still refused.
 */
import express, { type Request, type RequestHandler } from 'express';
import multer from 'multer';
import { HttpError } from './errors.ts';

/** Multipart limits besides the file size: an upload has one file and at most a label field. */
const MULTIPART_LIMITS = Object.freeze({
  files: 1,
  /** `label` plus room for a client that sends its own (ignored) fields. */
  fields: 4,
  parts: 5,
  /** A label is at most 200 characters; 1 KiB leaves room for UTF-8. */
  fieldSize: 1024,
  fieldNameSize: 64,
});

/** Bytes of a multipart body besides the file: boundaries, part headers and the fields above. */
const MULTIPART_OVERHEAD = 16 * 1024;

/** Middleware that puts an uploaded image in `req.file` (multipart) or `req.body` (raw). */
export function imageUpload(maxUploadBytes: number): RequestHandler {
  const multipart = multer({ storage: multer.memoryStorage(), limits: { ...MULTIPART_LIMITS, fileSize: maxUploadBytes } }).single('image');
  const raw = express.raw({ type: 'image/*', limit: maxUploadBytes });
  return (req, res, next) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > maxUploadBytes + (req.is('multipart/form-data') ? MULTIPART_OVERHEAD : 0)) {
      // Refused at once, and the connection closed: the body parsers would first read it all.
      res.set('Connection', 'close');
      return next(new HttpError('UPLOAD_TOO_LARGE', `The request body is ${declared} bytes, over the upload limit of ${maxUploadBytes} bytes (maxUploadBytes; pixdex serve --max-upload-mb)`));
    }
    if (req.is('multipart/form-data')) return multipart(req, res, next);
    if (req.is('image/*')) return raw(req, res, next);
    if (!hasBody(req)) return next(missingImage());
    next(new HttpError('UNSUPPORTED_MEDIA_TYPE', `Expected multipart/form-data with a field "image" or an image/* body but received Content-Type ${JSON.stringify(req.get('content-type') ?? '')}`));
  };
}

/** The uploaded bytes, or a MISSING_IMAGE error when the request carried no image. */
export function uploadedImage(req: Request): Buffer {
  if (req.file) return req.file.buffer;
  if (Buffer.isBuffer(req.body)) return req.body;
  throw missingImage();
}

/** A text field of a multipart upload (undefined when absent). */
export function formField(req: Request, name: string): unknown {
  const body = req.body as Record<string, unknown> | undefined;
  return body && !Buffer.isBuffer(body) && typeof body === 'object' ? body[name] : undefined;
}

function hasBody(req: Request): boolean {
  return req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
}

function missingImage(): HttpError {
  return new HttpError('MISSING_IMAGE', 'Expected an image in the multipart field "image" (or as a raw image/* body) but the request has none');
}
