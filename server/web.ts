/**
 * The web page (`server/public`: index.html, app.js, style.css), served as static files at `/`.
 * No build step: the files are what the browser runs. They get a Content-Security-Policy that
 * allows exactly what they use, all same-origin; every other response keeps the API's
 * `default-src 'none'` from server/security.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type RequestHandler } from 'express';

/** Where the page's files are. */
export const PUBLIC_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'public');

/**
 * The page's policy: scripts, styles, images and fetches from this origin only (plus `blob:`
 * images, for the preview of a photo before it is uploaded); no inline code, no plugins, no
 * framing, no form posts (forms are handled by app.js).
 */
export const PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Serves the page's files; anything else falls through to the routes after it (JSON 404). */
export function webPage(): RequestHandler {
  return express.static(PUBLIC_DIR, {
    index: 'index.html',
    dotfiles: 'ignore',
    redirect: false,
    fallthrough: true,
    setHeaders: (res) => {
      res.setHeader('Content-Security-Policy', PAGE_CSP);
      // Revalidate on every load (ETag), so an upgraded server never runs a stale app.js.
      res.setHeader('Cache-Control', 'no-cache');
    },
  });
}

/** The URL paths the page's files answer GET at (`/` and `/<file>`), for 405 on other methods. */
export function pagePaths(): Set<string> {
  const files = fs.readdirSync(PUBLIC_DIR, { withFileTypes: true }).filter((e) => e.isFile() && !e.name.startsWith('.'));
  return new Set(['/', ...files.map((e) => `/${e.name}`)]);
}
