/**
 * A loopback HTTP server standing in for the models' public origins: it serves a folder's bytes
 * (../shared/models, the layout PIXDEX_MODELS_MIRROR expects) with Range support, logs every
 * request, and misbehaves on demand — a connection cut after N bytes, other bytes than the
 * real file, a slow line — so the fetcher is tested against real sockets.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

export interface Fault {
  /** Destroy the socket after sending this many bytes of the body. */
  cutAfter?: number;
  /** Flip one byte in the middle of the file. */
  corrupt?: boolean;
  /** Bytes per write, with `delayMs` between writes (a slow line). */
  chunk?: number;
  delayMs?: number;
  /** How many requests the fault applies to (default: every one). */
  times?: number;
}

export interface Served {
  path: string;
  range?: string;
  status: number;
  /** Body bytes actually written. */
  bytes: number;
}

export interface Mirror {
  url: string;
  log: Served[];
  /** Faults by path suffix (`…/x.tflite`). */
  faults: Map<string, Fault>;
  close(): Promise<void>;
}

export async function startMirror(root: string): Promise<Mirror> {
  const log: Served[] = [];
  const faults = new Map<string, Fault>();
  const server = http.createServer(async (req, res) => {
    const rel = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname).replace(/^\/+/, '');
    const file = path.join(root, rel);
    const entry: Served = { path: rel, range: req.headers.range, status: 0, bytes: 0 };
    log.push(entry);
    let data: Buffer;
    try {
      if (!file.startsWith(root) || !(await fs.stat(file)).isFile()) throw new Error('not a file');
      data = await fs.readFile(file);
    } catch {
      entry.status = 404;
      res.writeHead(404).end();
      return;
    }
    const key = [...faults.keys()].find((k) => rel.endsWith(k));
    const fault = key === undefined ? undefined : faults.get(key);
    if (fault && fault.times !== undefined && fault.times-- <= 0) faults.delete(key!);
    const active = key !== undefined && faults.has(key) ? fault : undefined;
    if (active?.corrupt) {
      data = Buffer.from(data);
      data[data.length >> 1] ^= 0xff;
    }
    let start = 0;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (m) start = Number(m[1]);
    if (start >= data.length && m) {
      entry.status = 416;
      res.writeHead(416, { 'content-range': `bytes */${data.length}` }).end();
      return;
    }
    const body = data.subarray(start);
    entry.status = m ? 206 : 200;
    res.writeHead(entry.status, {
      'content-length': body.length,
      'accept-ranges': 'bytes',
      ...(m ? { 'content-range': `bytes ${start}-${data.length - 1}/${data.length}` } : {}),
    });
    const limit = active?.cutAfter ?? Infinity;
    const step = active?.chunk ?? 64 * 1024;
    for (let i = 0; i < body.length; i += step) {
      const piece = body.subarray(i, Math.min(i + step, body.length, limit));
      if (piece.length === 0 || i >= limit) break;
      await new Promise<void>((resolve) => res.write(piece, () => resolve()));
      entry.bytes += piece.length;
      if (active?.delayMs) await new Promise((r) => setTimeout(r, active.delayMs));
      if (i + step >= limit) break;
    }
    if (entry.bytes < body.length) {
      // The connection closes mid-file, after a pause in which the client has taken in what was
      // sent: fetch (undici) drops the chunks still queued in the body stream when it sees the
      // premature end (seen: 655,210 of 700,000 bytes kept), and the test counts what the
      // application received. A graceful close (FIN), not a reset that could discard bytes in flight.
      await new Promise((r) => setTimeout(r, 250));
      res.socket?.end();
      return;
    }
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    faults,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
