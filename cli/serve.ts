/**
 * `pixdex serve`: opens the engine once, binds the HTTP app (server/app.ts), warms the model up
 * before /readyz says ready, logs one line per request to stderr, and on SIGINT/SIGTERM lets
 * in-flight requests finish before the engine snapshots its index and closes the store.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PixdexOptions, ServerConfig } from '../src/config.ts';
import { Engine } from '../src/engine.ts';
import { PixdexError, intParam, numberParam } from '../src/errors.ts';
import { createApp } from '../server/app.ts';
import type { IndexJobs } from '../server/jobs.ts';
import type { FolderWatcher } from '../indexer/watch.ts';
import { runWatchPass } from '../indexer/watch-pass.ts';
import { passLine, startWatcher, watchRoots } from './watch.ts';
import { EXIT } from './exit.ts';
import { engineOptions } from './args.ts';
import type { Parsed } from './spec.ts';

/** Runs the server until SIGINT/SIGTERM; returns the exit code. */
export async function serve({ values: v }: Parsed): Promise<number> {
  const server: Partial<ServerConfig> = {};
  if (v.host !== undefined) server.host = String(v.host);
  if (v.port !== undefined) server.port = intParam('port', v.port, 0, 65535);
  if (v.token !== undefined) server.token = String(v.token);
  if (v['max-upload-mb'] !== undefined) server.maxUploadBytes = Math.max(1, Math.round(numberParam('max-upload-mb', v['max-upload-mb'], 0, 2047) * 1024 * 1024));
  const options: PixdexOptions = { ...engineOptions(v), server };
  const watchDirs = Array.isArray(v.watch) ? await watchRoots(v.watch) : []; // before the store is opened: a typo creates nothing

  const log = (line: string): void => void process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  const engine = await Engine.open(options);
  let app: ReturnType<typeof createApp> | undefined;
  let watcher: FolderWatcher | undefined;
  try {
    const cfg = engine.config.server;
    const shutdown = new AbortController();
    const ready = engine.model();
    app = createApp(engine, { ready, signal: shutdown.signal, log });
    const httpServer = http.createServer(app);
    await listen(httpServer, cfg.port, cfg.host);
    const { address, port } = httpServer.address() as AddressInfo;
    process.stdout.write(`pixdex: listening on http://${address.includes(':') ? `[${address}]` : address}:${port}\n`);
    if (!isLoopback(address) && !cfg.token) {
      log(`warning: bound to ${address} without a token: anyone who can reach it can add and delete images (set PIXDEX_TOKEN)`);
    }
    if (watchDirs.length > 0) watcher = await watchAsJobs(engine, app.locals.indexJobs as IndexJobs, watchDirs, log);
    ready.then(
      async () => {
        const s = await engine.stats();
        log(`ready: ${s.images} images, ${s.backbone} on ${s.backend}`);
      },
      (err: unknown) => log(`error: the model failed to load, /readyz stays 503: ${err instanceof Error ? err.message : String(err)}`),
    );

    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    log(`${signal}: finishing in-flight requests, then saving the index`);
    shutdown.abort();
    const force = (): void => {
      log('closing open connections now');
      httpServer.closeAllConnections();
    };
    process.once('SIGINT', force);
    process.once('SIGTERM', force);
    await close(httpServer, cfg.shutdownGraceMs, force);
    process.off('SIGINT', force);
    process.off('SIGTERM', force);
    await ready.catch(() => undefined);
  } finally {
    await watcher?.stop(); // its pass in flight stops after its batch, before the store closes
    await (app?.locals.indexJobs as { stop(): Promise<void> } | undefined)?.stop(); // its last batch must land before the store closes
    await engine.close();
  }
  log('stopped');
  return EXIT.ok;
}

/** Watches `roots`; each pass runs as an index job (server/jobs.ts), taking turns with POST /api/index. */
async function watchAsJobs(engine: Engine, jobs: IndexJobs, roots: string[], log: (line: string) => void): Promise<FolderWatcher> {
  const watcher = await startWatcher(engine, roots, log, (pass, signal) => jobs.runWatchPass(roots, signal, (o) => runWatchPass(engine, pass, o)), (report, summary) => {
    log(passLine(report));
    for (const e of summary.errors) log(`watch: ${e.path}: ${e.error}`);
  });
  log(`watching ${roots.join(', ')}`);
  return watcher;
}

function listen(server: http.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      const why = err.code === 'EADDRINUSE' ? 'the port is in use (pick another with --port, or 0 for any free one)'
        : err.code === 'EACCES' ? 'permission denied (ports below 1024 need privileges)'
        : err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND' ? 'no such local address (--host)'
        : err.message;
      reject(new PixdexError('LISTEN_FAILED', `Cannot listen on ${host}:${port}: ${why}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/** Stops accepting, lets in-flight requests finish, and closes what is left after `graceMs`. */
function close(server: http.Server, graceMs: number, force: () => void): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(force, graceMs);
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}

function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.') || address === 'localhost';
}
