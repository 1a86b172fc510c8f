/**
 * A PostgreSQL with pgvector for a test: `test/helpers/pg-server.mjs` (PGlite + pglite-socket) in a
 * child process, reached by URL with the ordinary `pg` client, as a PostgreSQL server would be.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import pg from 'pg';
import { REPO } from '../fixtures.ts';

export interface PgServer {
  url: string;
  /** Drops every table (a fresh, empty database for the next library). */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

export async function startPg(): Promise<PgServer> {
  const child: ChildProcess = spawn(process.execPath, [path.join(REPO, 'test/helpers/pg-server.mjs')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`pg-server did not start in 120 s: ${stderr}`)), 120_000);
    readline.createInterface({ input: child.stdout! }).once('line', (line) => {
      clearTimeout(timer);
      resolve((JSON.parse(line) as { port: number }).port);
    });
    child.once('exit', (code) => reject(new Error(`pg-server exited (${code}): ${stderr}`)));
  });
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return {
    url,
    async reset() {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query('DROP SCHEMA public CASCADE; CREATE SCHEMA public');
      } finally {
        await client.end();
      }
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
