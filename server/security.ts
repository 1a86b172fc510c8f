/** Security middleware: response headers for a JSON/image API, and the optional bearer token. */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { HttpError } from './errors.ts';

/**
 * Headers on every response: no MIME sniffing, no framing, no referrer, nothing loadable by
 * other origins (CORS is off: no Access-Control-* header is ever sent).
 */
export const securityHeaders: RequestHandler = (_req, res, next) => {
  res.set({
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
    'Content-Security-Policy': "default-src 'none'; frame-ancestors 'none'",
    'Cross-Origin-Resource-Policy': 'same-origin',
  });
  next();
};

/**
 * Requires `Authorization: Bearer <token>` when a token is configured; passes everything when
 * not. The comparison takes the same time whatever the prefix matched.
 */
export function requireToken(token: string | undefined): RequestHandler {
  if (token === undefined) return (_req, _res, next) => next();
  const expected = digest(token);
  return (req, _res, next) => {
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(req.get('authorization') ?? '');
    if (!m) return next(new HttpError('UNAUTHORIZED', 'This route changes the index: send the server token as "Authorization: Bearer <token>"'));
    if (!timingSafeEqual(digest(m[1]), expected)) return next(new HttpError('UNAUTHORIZED', 'The bearer token does not match the server token'));
    next();
  };
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}
