/**
 * The browser tests' shared setup: the real server on a loopback port (ready when /readyz says so)
 * and a headless Chromium page that records the page's own errors.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { createApp } from '../../server/app.ts';
import type { Engine } from '../../src/engine.ts';
import { CHROMIUM, CHROMIUM_ARGS } from './chromium.ts';

export interface TestServer {
  app: ReturnType<typeof createApp>;
  server: http.Server;
  /** `http://127.0.0.1:<port>` */
  base: string;
  close(): Promise<void>;
}

/** Serves `engine` with the real app on a free loopback port; resolves once /readyz answers 200. */
export async function startServer(engine: Engine, options: { token?: string } = {}): Promise<TestServer> {
  const app = createApp(engine, { ...options, log: () => {} });
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  for (let i = 0; (await fetch(`${base}/readyz`)).status !== 200; i++) {
    if (i > 300) throw new Error('/readyz never said ready');
    await new Promise((r) => setTimeout(r, 100));
  }
  return { app, server, base, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/**
 * Headless Chromium with a profile under `dir` (1280 × 860). Console errors and uncaught page
 * errors go to `errors`; Chromium's own "Failed to load resource" line for every 4xx fetch is
 * left out, since the page shows those answers itself.
 */
export async function openBrowser(dir: string, errors: string[]): Promise<{ context: BrowserContext; page: Page }> {
  const context = await chromium.launchPersistentContext(path.join(dir, 'profile'), {
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
    headless: true,
    viewport: { width: 1280, height: 860 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  return { context, page };
}

/** Closes what a browser test opened, browser first (any of them may be missing when `before` failed). */
export async function closeAll(o: { context?: BrowserContext; served?: TestServer; engine?: Engine; tmp: { cleanup(): void } }): Promise<void> {
  await o.context?.close();
  await o.served?.close();
  await o.engine?.close();
  o.tmp.cleanup();
}
