/**
 * Typed errors, one voice: every message says what was expected, what was received and what to
 * do next. `code` is stable: one of the table in src/contracts/errors.ts, which gives its HTTP
 * status (server/) and exit code (the CLI).
 */
import type { ErrorCode } from './contracts/errors.ts';

export type { ErrorCode } from './contracts/errors.ts';

/** Base of every error pixdex throws on purpose. */
export class PixdexError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Codes of `BadImageError`: why an input could not be used as an image (a subset of `ErrorCode`). */
export type BadImageReason =
  | 'EMPTY_IMAGE' // 0 bytes
  | 'TRUNCATED_IMAGE' // the data ends before the image does
  | 'CORRUPT_IMAGE' // recognised format, undecodable data
  | 'UNSUPPORTED_IMAGE' // not an image, or a format this build cannot decode (PDF, SVG...)
  | 'IMAGE_TOO_LARGE'; // more pixels than `maxInputPixels`, or more bytes than allowed

/** The input is not a usable image. */
export class BadImageError extends PixdexError {
  constructor(reason: BadImageReason, message: string, options?: { cause?: unknown }) {
    super(reason, message, options);
  }
}

/** An id, path or label the caller named does not exist. */
export class NotFoundError extends PixdexError {
  constructor(message: string) {
    super('NOT_FOUND', message);
  }
}

/** A parameter is out of its documented range or of the wrong type. */
export class InvalidParameterError extends PixdexError {
  constructor(message: string) {
    super('INVALID_PARAMETER', message);
  }
}

/** A model directory or model file is missing or unreadable. */
export class ModelNotFoundError extends PixdexError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MODEL_NOT_FOUND', message, options);
  }
}

/** The store was built with another backbone or embedding space than the one requested. */
export class StoreMismatchError extends PixdexError {
  constructor(message: string) {
    super('STORE_MISMATCH', message);
  }
}

/**
 * An HNSW snapshot cannot be loaded: empty, truncated, corrupt, or written for other dims or
 * another M. Checked in TypeScript before hnswlib sees it; the store's vectors are the source of
 * truth, so the index is rebuilt from them.
 */
export class SnapshotUnusableError extends PixdexError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SNAPSHOT_UNUSABLE', message, options);
  }
}

/** A requested tfjs backend cannot be loaded. */
export class BackendError extends PixdexError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('BACKEND_UNAVAILABLE', message, options);
  }
}

/**
 * One helper for bad parameters, sharp's voice:
 * "Expected integer between 1 and 1000 for k but received 0 of type number".
 */
export function invalidParameter(name: string, expected: string, actual: unknown): InvalidParameterError {
  const shown = typeof actual === 'string' ? JSON.stringify(actual) : String(actual);
  return new InvalidParameterError(`Expected ${expected} for ${name} but received ${shown} of type ${typeof actual}`);
}

/** Parses an integer parameter within [min, max] (a string: decimal digits only) or throws `InvalidParameterError`. */
export function intParam(name: string, value: unknown, min: number, max: number): number {
  const n = typeof value === 'string' && /^\s*[+-]?\d+\s*$/.test(value) ? Number(value) : value; // not "1e3" nor "0x10"
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw invalidParameter(name, `integer between ${min} and ${max}`, value);
  }
  return n;
}

/** Parses a number parameter within [min, max] or throws `InvalidParameterError`. */
export function numberParam(name: string, value: unknown, min: number, max: number): number {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < min || n > max) {
    throw invalidParameter(name, `number between ${min} and ${max}`, value);
  }
  return n;
}
